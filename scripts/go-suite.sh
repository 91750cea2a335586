#!/usr/bin/env bash
# Runs the Go rpcx conformance suite (server/tests/go-client) against the Go rpcx reference server
# (benches/peers/go-rpcx) and, when its binary exists, against ringrpc-server; optionally writes a
# Markdown table comparing the two. See --help.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/go-suite.sh [--ringrpc PATH] [--markdown FILE] [--help]

Runs the rpcx conformance suite in server/tests/go-client with the stock Go rpcx client:

  1. builds the Go reference server benches/peers/go-rpcx into target/go/go-rpcx-server;
  2. starts six instances of it on free 127.0.0.1 ports (two plain, one with -auth-token, one
     with -rate, one with -tls-cert/-tls-key, one with -network http for CONNECT mode) and runs
     the suite with RPCX_SERVER_KIND=go: every case must pass there;
  3. if a ringrpc server binary exists, starts five instances of it the same way (--addr
     127.0.0.1:PORT --threads 1; two plain, one with --auth-token, one with --rate-limit, one with
     --tls-cert/--tls-key --tls-only; CONNECT is served on the plain port) and runs the suite with
     RPCX_SERVER_KIND=ringrpc: every case must pass there too.

For the etcd cases (etcd_test.go) it starts one etcd on free 127.0.0.1 ports for both runs
(RPCX_ETCD) and gives the suite the server binary to start fleets of (RPCX_FLEET_BIN). Without an
etcd binary those cases are skipped, except under CI=true, where they fail (scripts/deps.sh
installs etcd-server).

Options:
  --ringrpc PATH    ringrpc server binary (default: target/release/ringrpc-server, else
                    target/debug/ringrpc-server, whichever exists; none: that part is skipped)
  --markdown FILE   write the counts and the table "case | ringrpc | Go rpcx" of every case to
                    FILE (scripts/readme.sh puts it into the README)
  -h, --help        show this help

Exits non-zero if any suite run fails. Without a go command it skips with one line and exits 0,
except under CI=true, where it fails. Server logs are kept in a temporary directory that is
printed when something fails.
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ringrpc_bin=""
markdown=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--ringrpc)
		[[ $# -ge 2 ]] || { echo "go-suite: --ringrpc needs a PATH" >&2; exit 2; }
		ringrpc_bin=$2
		shift 2
		;;
	--markdown)
		[[ $# -ge 2 ]] || { echo "go-suite: --markdown needs a FILE" >&2; exit 2; }
		markdown=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "go-suite: unknown argument: $1 (see --help)" >&2
		exit 2
		;;
	esac
done

if ! command -v go >/dev/null 2>&1; then
	if [[ "${CI:-}" == "true" ]]; then
		echo "go-suite: FAILED: the go command is not installed, and CI needs it for the rpcx conformance suite" >&2
		exit 1
	fi
	echo "go-suite: skipped: the go command is not installed (the rpcx conformance suite needs Go)"
	exit 0
fi

if [[ -n "$ringrpc_bin" ]]; then
	[[ -x "$ringrpc_bin" ]] || { echo "go-suite: --ringrpc $ringrpc_bin is not an executable file" >&2; exit 2; }
elif [[ -x "$root/target/release/ringrpc-server" ]]; then
	ringrpc_bin=$root/target/release/ringrpc-server
elif [[ -x "$root/target/debug/ringrpc-server" ]]; then
	ringrpc_bin=$root/target/debug/ringrpc-server
fi
[[ -z "$markdown" || "$markdown" == /* ]] || markdown=$PWD/$markdown
# The etcd cases start the binary from the suite's own directory: make the path absolute.
[[ -z "$ringrpc_bin" || "$ringrpc_bin" == /* ]] || ringrpc_bin=$PWD/$ringrpc_bin

work=$(mktemp -d "${TMPDIR:-/tmp}/go-suite.XXXXXX")
pids=()
etcd_pid=""
keep_work=0

# stop_servers: stop every server this script started (SIGTERM: the Go server shuts down gracefully).
stop_servers() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

cleanup() {
	stop_servers
	if [[ -n "$etcd_pid" ]]; then
		kill "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
	fi
	if [[ $keep_work == 1 ]]; then
		echo "go-suite: logs kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# show_log NAME: print the end of a server's log, after a failure.
show_log() {
	echo "---- last lines of $1.log ----" >&2
	tail -n 20 "$work/$1.log" >&2 || true
}

# start_go NAME ARGS...: start the Go server on a free port (-addr 127.0.0.1:0) and wait for its
# "listening on ADDR" line; sets $addr.
start_go() {
	local name=$1 pid line i
	shift
	"$root/target/go/go-rpcx-server" -addr 127.0.0.1:0 "$@" >"$work/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for ((i = 0; i < 200; i++)); do
		line=$(head -n 1 "$work/$name.log" 2>/dev/null || true)
		if [[ "$line" == "listening on "* ]]; then
			addr=${line#listening on }
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.05
	done
	echo "go-suite: the Go server $name did not start listening" >&2
	show_log "$name"
	keep_work=1
	exit 1
}

# port_open PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_ringrpc NAME ARGS...: start ringrpc-server on a free port with ARGS and wait until it
# accepts connections; sets $addr. If another process takes the port between the check and the
# bind, try another port.
start_ringrpc() {
	local name=$1 pid port try i status
	shift
	for ((try = 0; try < 5; try++)); do
		# Below the kernel's ephemeral ports (32768 and up): a port that a client connection
		# holds as its local port cannot be listened on, and no free-port check sees it.
		port=$((10000 + RANDOM % 22000))
		port_open "$port" && continue
		"$ringrpc_bin" --addr "127.0.0.1:$port" --threads 1 "$@" >"$work/$name.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		for ((i = 0; i < 200; i++)); do
			if port_open "$port"; then
				addr=127.0.0.1:$port
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "go-suite: ringrpc server $name ($ringrpc_bin) is not listening on 127.0.0.1:$port after 10 s" >&2
			break
		fi
		status=0
		wait "$pid" 2>/dev/null || status=$?
		if ! grep -qi "in use" "$work/$name.log"; then
			echo "go-suite: ringrpc server $name ($ringrpc_bin --addr 127.0.0.1:$port --threads 1 $*) exited with status $status before listening" >&2
			break
		fi
	done
	show_log "$name"
	keep_work=1
	exit 1
}

# start_etcd: start etcd on two free ports with its data in $work; sets RPCX_ETCD, or leaves it
# unset (saying why) when there is no etcd binary.
start_etcd() {
	local bin port peer try i
	bin=$(command -v etcd || true)
	if [[ -z "$bin" ]]; then
		echo "go-suite: no etcd binary: the etcd cases will be skipped (scripts/deps.sh etcd installs etcd-server)"
		return 0
	fi
	for ((try = 0; try < 5; try++)); do
		# Below the kernel's ephemeral ports (32768 and up): a port that a client connection
		# holds as its local port cannot be listened on, and no free-port check sees it.
		port=$((10000 + RANDOM % 22000))
		peer=$((port + 1))
		if port_open "$port" || port_open "$peer"; then
			continue
		fi
		"$bin" --name go-suite --data-dir "$work/etcd-data" \
			--listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
			--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
			--initial-cluster "go-suite=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
		etcd_pid=$!
		for ((i = 0; i < 200; i++)); do
			if port_open "$port"; then
				export RPCX_ETCD=127.0.0.1:$port
				echo "go-suite: etcd ($("$bin" --version | head -n 1)) on $RPCX_ETCD"
				return 0
			fi
			kill -0 "$etcd_pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
		etcd_pid=""
		rm -rf "$work/etcd-data"
	done
	echo "go-suite: etcd did not start; last lines of its log:" >&2
	tail -n 20 "$work/etcd.log" >&2 || true
	keep_work=1
	exit 1
}

# run_suite KIND MARKDOWN: run the suite with the RPCX_* variables already exported.
run_suite() {
	local kind=$1 md=$2 status=0
	echo "go-suite: running the conformance suite against $kind ($RPCX_ADDR, $RPCX_ADDR2)"
	(cd "$root/server/tests/go-client" &&
		RPCX_SERVER_KIND=$kind go test -count=1 -v -timeout 5m . -markdown "$md") || status=$?
	return $status
}

# Suite tables have rows "| case | result |", the result being "pass", "FAIL" or "skip: reason".
# rows FILE: print "case<TAB>result" for each row.
rows() {
	[[ -f "$1" ]] || return 0
	awk 'FNR > 2 { sub(/^[|] /, ""); sub(/ [|]$/, ""); i = index($0, " | "); print substr($0, 1, i - 1) "\t" substr($0, i + 3) }' "$1"
}

# count RESULT FILE: number of cases of a suite table with that result.
count() {
	rows "$2" | awk -F'\t' -v r="$1" '$2 == r || index($2, r ":") == 1 { n++ } END { print n + 0 }'
}

t0=$(now)
echo "go-suite: downloading Go modules"
(cd "$root/benches/peers/go-rpcx" && go mod download)
(cd "$root/server/tests/go-client" && go mod download)
echo "go-suite: modules ready in $(since "$t0") s"

t1=$(now)
mkdir -p "$root/target/go"
(cd "$root/benches/peers/go-rpcx" && go build -o "$root/target/go/go-rpcx-server" .)
echo "go-suite: built target/go/go-rpcx-server in $(since "$t1") s"

failed=()
start_etcd

# ---- the Go reference server: every case must pass ----
t2=$(now)
auth_token=go-suite-token-$RANDOM$RANDOM
rate=20
start_go go-main
go_addr=$addr
start_go go-second
go_addr2=$addr
start_go go-auth -auth-token "$auth_token"
go_auth_addr=$addr
start_go go-rate -rate "$rate"
go_rate_addr=$addr
# TLS (and the gateway inside it) on a server of its own; CONNECT needs Go's Serve("http", …) mode,
# which serves nothing else, so a server of its own too.
tls_cert=$root/server/tests/data/test-cert.pem
tls_ca=$root/server/tests/data/test-ca.pem
tls_key=$root/server/tests/data/test-key.pem
start_go go-tls -tls-cert "$tls_cert" -tls-key "$tls_key"
go_tls_addr=$addr
start_go go-connect -network http
go_connect_addr=$addr
export RPCX_TLS_ADDR=$go_tls_addr RPCX_TLS_CERT=$tls_ca RPCX_CONNECT_ADDR=$go_connect_addr
export RPCX_ADDR=$go_addr RPCX_ADDR2=$go_addr2
export RPCX_AUTH_ADDR=$go_auth_addr RPCX_AUTH_TOKEN=$auth_token
export RPCX_RATE_ADDR=$go_rate_addr RPCX_RATE=$rate
export RPCX_FLEET_BIN=$root/target/go/go-rpcx-server
run_suite go "$work/go.md" || failed+=("Go rpcx")
echo "go-suite: Go rpcx run took $(since "$t2") s"
stop_servers

# ---- ringrpc ----
if [[ -n "$ringrpc_bin" ]]; then
	t3=$(now)
	start_ringrpc ringrpc-main
	rr_addr=$addr
	start_ringrpc ringrpc-second
	rr_addr2=$addr
	# The same auth token and rate as the Go instances; with one worker, its bucket is the rate.
	start_ringrpc ringrpc-auth --auth-token "$auth_token"
	rr_auth_addr=$addr
	start_ringrpc ringrpc-rate --rate-limit "$rate"
	rr_rate_addr=$addr
	start_ringrpc ringrpc-tls --tls-cert "$tls_cert" --tls-key "$tls_key" --tls-only
	rr_tls_addr=$addr
	# CONNECT mode is served on the main port, with everything else.
	export RPCX_TLS_ADDR=$rr_tls_addr RPCX_CONNECT_ADDR=$rr_addr
	export RPCX_ADDR=$rr_addr RPCX_ADDR2=$rr_addr2
	export RPCX_AUTH_ADDR=$rr_auth_addr RPCX_AUTH_TOKEN=$auth_token
	export RPCX_RATE_ADDR=$rr_rate_addr RPCX_RATE=$rate
	export RPCX_FLEET_BIN=$ringrpc_bin
	run_suite ringrpc "$work/ringrpc.md" || failed+=("ringrpc")
	echo "go-suite: ringrpc run took $(since "$t3") s"
else
	echo "go-suite: ringrpc part skipped: no target/release/ringrpc-server or target/debug/ringrpc-server (build it, or pass --ringrpc PATH)"
fi

# ---- the comparison table ----
if [[ -n "$markdown" ]]; then
	{
		# The summary the README shows above the table, counted from the same rows.
		awk -F'\t' '
			FILENAME == ARGV[1] { n_rr++; if ($2 == "pass") p_rr++; else if ($2 ~ /^skip/) s_rr++; next }
			{ n_go++; if ($2 == "pass") p_go++; else if ($2 ~ /^skip/) s_go++ }
			END {
				printf "%d cases. Go rpcx server: %d passed, %d skipped, %d failed. ringrpc: %d passed, %d skipped, %d failed.\n\n", \
					n_go, p_go, s_go, n_go - p_go - s_go, p_rr, s_rr, n_rr - p_rr - s_rr
				print "<details><summary>The table (from <code>scripts/go-suite.sh --markdown</code>)</summary>\n"
			}
		' <(rows "$work/ringrpc.md") <(rows "$work/go.md")
		echo "| case | ringrpc | Go rpcx |"
		echo "|---|---|---|"
		# Go rpcx runs every case, so its table gives the rows and their order.
		awk -F'\t' '
			FILENAME == ARGV[1] { rr[$1] = $2; next }
			{ printf "| %s | %s | %s |\n", $1, ($1 in rr) ? rr[$1] : "not run", $2 }
		' <(rows "$work/ringrpc.md") <(rows "$work/go.md")
		printf '\n</details>\n'
	} >"$markdown"
	echo "go-suite: wrote $markdown"
fi

passed=0 fails=0 skipped=0
for md in "$work/go.md" "$work/ringrpc.md"; do
	[[ -f "$md" ]] || continue
	kind=$(basename "$md" .md)
	p=$(count pass "$md") f=$(count FAIL "$md") s=$(count skip "$md")
	echo "go-suite: $kind: $p passed, $f failed, $s skipped"
	passed=$((passed + p)) fails=$((fails + f)) skipped=$((skipped + s))
done
if [[ ${#failed[@]} -gt 0 ]]; then
	keep_work=1
	echo "go-suite: FAILED against: ${failed[*]}"
	echo "go-suite: $passed passed, $((fails > 0 ? fails : 1)) failed, $skipped skipped"
	exit 1
fi
echo "go-suite: total time $(since "$t0") s"
echo "go-suite: $passed passed, 0 failed, $skipped skipped"
