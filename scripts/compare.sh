#!/usr/bin/env bash
# The same load against ringrpc, the echo limit and every peer server, in one run; one table.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/compare.sh [options]

Runs the same loads with ringrpc-bench against each server, one server at a time, every server
pinned to the same CPUs (the first half) and the client to the others, and prints one table
(with --rounds N, every server N times in turn, and each figure is the median run):

  ringrpc      target/release/ringrpc-server (cargo build --release -p ringrpc-server)
  echo-limit   target/release/ringrpc-echo-limit: reads frames by their prefix, sets the response
               bit, writes them back, with ringrpc's connection structure (reader and writer tasks,
               batched writes); the IO cost alone, i.e. the ceiling
  go-rpcx      the Go rpcx server, benches/peers/go-rpcx, built with go into target/go/
  rpcx-rs      the rpcx-rs server, benches/peers/rpcx-rs (its own Cargo.lock and target/)
  extra        any server named in RPCX_EXTRA_SERVER, e.g.
                 RPCX_EXTRA_SERVER="mine=/path/to/server --listen {addr}"
               ({addr} becomes 127.0.0.1:PORT; several servers separated by ';')

A server that cannot be built or started is skipped with a line saying why.

Loads (each after a warm-up):
  echo         closed loop, CONNS x INFLIGHT in flight, 581-byte Echo.Echo (raw)
  arith-json   closed loop, same concurrency, Arith.Mul with JSON {"A":10,"B":20}
  hello        closed loop, same concurrency, Hello.Say with the 581-byte protobuf BenchmarkMessage
               of rpcx-benchmark, the load of rpcx's published figures (the echo limit echoes it)
  open         open loop at RATE req/s of 581-byte Echo.Echo; latency from the intended send
               times (coordinated omission corrected)

The table gives req/s, p50, p99, p99.9 and errors for each (load, server), and the ratio to
ringrpc and to the echo limit: of req/s for the closed loops (higher is better), of p99 for the
open loop (lower is better). All reports are also written as JSON to results/. With --markdown,
the README's table is written too: one row per load, one column per server, the limit's own
figure beside ringrpc's "x limit".

Options:
  --rounds N        run every server N times, in turn (ringrpc, limit, peers, ringrpc, ...), and
                    report for each load and server its median run (by req/s, by p99 for the
                    open loop): a hiccup of the machine in one run then moves no figure; all runs
                    are in the JSON (default 1)
  --duration D      measured time per load (default 5s)
  --warmup D        warm-up per load (default 1s)
  --conns N         connections (default 10)
  --inflight N      requests in flight per connection (default 32)
  --rate R          open-loop rate, req/s (default 50000)
  --servers LIST    servers to run, comma-separated (default: all of the above)
  --loads LIST      loads to run, comma-separated (default: echo,arith-json,hello,open)
  --server-cpus L   CPUs for the servers (default: first half)
  --client-cpus L   CPUs for ringrpc-bench (default: the rest)
  --out FILE        JSON output (default: results/compare-DATE.json)
  --markdown FILE   also write the results as the README's Markdown table
  --no-build        use the binaries as they are
  -h, --help        this help
EOF
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=5s
warmup=1s
conns=10
inflight=32
rate=50000
servers_wanted=""
loads="echo,arith-json,hello,open"
rounds=1
out=""
markdown=""
build=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--duration | --warmup | --conns | --inflight | --rate | --servers | --loads | --rounds | --server-cpus | --client-cpus | --out | --markdown)
		[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
		case "$1" in
		--duration) duration=$2 ;;
		--warmup) warmup=$2 ;;
		--conns) conns=$2 ;;
		--inflight) inflight=$2 ;;
		--rate) rate=$2 ;;
		--servers) servers_wanted=$2 ;;
		--loads) loads=$2 ;;
		--rounds) rounds=$2 ;;
		--server-cpus) server_cpus=$2 ;;
		--client-cpus) client_cpus=$2 ;;
		--out) out=$2 ;;
		--markdown) markdown=$2 ;;
		esac
		shift 2
		;;
	--no-build)
		build=0
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a whole number of 1 or more, not $rounds"
need taskset "it pins the servers and the client (util-linux)"
split_cpus
server_threads=$(cpu_list_len "$server_cpus")
client_threads=$(cpu_list_len "$client_cpus")

work=$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX")
cleanup() {
	stop_servers
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Servers in table order: parallel arrays of name and command (one string, words split on use).
names=()
commands=()
skipped=()  # "name<TAB>reason"

wanted() {
	[[ -z "$servers_wanted" || ",$servers_wanted," == *",$1,"* ]]
}

skip() {
	say "skipping $1: $2"
	skipped+=("$1"$'\t'"$2")
}

# --- build ---------------------------------------------------------------------------------------

bench_bin=$target_dir/release/ringrpc-bench
if ((build)); then
	say "building ringrpc-bench and ringrpc-echo-limit (release)"
	"$root/scripts/deps.sh" protoc
	(cd "$root" && cargo build --release -p ringrpc-bench-client -p ringrpc-benches \
		--bin ringrpc-bench --bin ringrpc-echo-limit)
fi
[[ -x "$bench_bin" ]] || die "no ringrpc-bench at $bench_bin (build it, or drop --no-build)"

if wanted ringrpc; then
	if ((build)) && ! (cd "$root" && cargo build --release -p ringrpc-server --bin ringrpc-server); then
		skip ringrpc "cargo build --release -p ringrpc-server failed"
	elif [[ ! -x "$target_dir/release/ringrpc-server" ]]; then
		skip ringrpc "no $target_dir/release/ringrpc-server"
	else
		names+=(ringrpc)
		commands+=("$target_dir/release/ringrpc-server --addr {addr} --threads $server_threads --cpus $server_cpus")
	fi
fi

if wanted echo-limit; then
	if [[ -x "$target_dir/release/ringrpc-echo-limit" ]]; then
		names+=(echo-limit)
		commands+=("$target_dir/release/ringrpc-echo-limit --addr {addr} --threads $server_threads --cpus $server_cpus")
	else
		skip echo-limit "no $target_dir/release/ringrpc-echo-limit"
	fi
fi

if wanted go-rpcx; then
	go_bin=$root/target/go/go-rpcx-server
	if [[ ! -d "$root/benches/peers/go-rpcx" ]]; then
		skip go-rpcx "benches/peers/go-rpcx is not in this checkout"
	elif ((build)) && command -v go >/dev/null 2>&1; then
		say "building the Go rpcx server"
		mkdir -p "$root/target/go"
		if (cd "$root/benches/peers/go-rpcx" && go build -o "$go_bin" .); then
			names+=(go-rpcx)
			commands+=("$go_bin -addr {addr} -procs $server_threads")
		else
			skip go-rpcx "go build of benches/peers/go-rpcx failed"
		fi
	elif [[ -x "$go_bin" ]]; then
		names+=(go-rpcx)
		commands+=("$go_bin -addr {addr} -procs $server_threads")
	else
		skip go-rpcx "the go command is not installed and $go_bin does not exist"
	fi
fi

if wanted rpcx-rs; then
	rs_dir=$root/benches/peers/rpcx-rs
	rs_bin=$rs_dir/target/release/rpcx-rs-peer
	if [[ ! -f "$rs_dir/Cargo.toml" ]]; then
		skip rpcx-rs "benches/peers/rpcx-rs is not in this checkout"
	elif ((build)) && ! cargo build --release --manifest-path "$rs_dir/Cargo.toml" --target-dir "$rs_dir/target"; then
		skip rpcx-rs "cargo build of benches/peers/rpcx-rs failed"
	elif [[ ! -x "$rs_bin" ]]; then
		skip rpcx-rs "no $rs_bin"
	else
		names+=(rpcx-rs)
		commands+=("$rs_bin --addr {addr}")
	fi
fi

if [[ -n "${RPCX_EXTRA_SERVER:-}" ]]; then
	IFS=';' read -ra extras <<<"$RPCX_EXTRA_SERVER"
	for spec in "${extras[@]}"; do
		[[ -n "${spec// /}" ]] || continue
		if [[ "$spec" != *=* ]]; then
			skip "$spec" "RPCX_EXTRA_SERVER entries are name=command"
			continue
		fi
		name=${spec%%=*}
		name=${name// /}
		cmd=${spec#*=}
		wanted "$name" || continue
		read -ra words <<<"$cmd"
		if [[ ${#words[@]} -eq 0 || ! -x "${words[0]}" ]]; then
			skip "$name" "${words[0]:-(empty command)} is not an executable"
		elif [[ "$cmd" != *"{addr}"* ]]; then
			skip "$name" "its command has no {addr} to put the address in"
		else
			names+=("$name")
			commands+=("$cmd")
		fi
	done
fi

((${#names[@]} > 0)) || die "no server to run"

# --- run -----------------------------------------------------------------------------------------

# load_args LOAD: the ringrpc-bench arguments of a load.
load_args() {
	case "$1" in
	echo | arith-json | hello) request_args "$1" ;;
	open) echo "$(request_args echo) --rate $rate" ;;
	*) die "unknown load: $1 (see --help)" ;;
	esac
}

IFS=, read -ra load_list <<<"$loads"
for load in "${load_list[@]}"; do load_args "$load" >/dev/null; done

# results[i] = "load<TAB>server<TAB>round<TAB>json"
results=()
# Servers that did not start or died: not run again in later rounds.
broken=" "
say "servers on CPUs $server_cpus, client on CPUs $client_cpus; $conns conns x $inflight in flight, $duration per load, $rounds round(s)"
for ((round = 1; round <= rounds; round++)); do
	for i in "${!names[@]}"; do
		name=${names[$i]}
		[[ "$broken" != *" $name "* ]] || continue
		read -ra argv <<<"${commands[$i]}"
		if ! start_server "$name" "$server_cpus" "$work/$name.log" "${argv[@]}"; then
			skip "$name" "did not start (see the lines above)"
			broken+="$name "
			continue
		fi
		pid=$server_pid
		for load in "${load_list[@]}"; do
			read -ra args <<<"$(load_args "$load")"
			say "$name: $load (round $round of $rounds)"
			json=$(taskset -c "$client_cpus" "$bench_bin" --addr "$server_addr" \
				--threads "$client_threads" --cpus "$client_cpus" \
				--conns "$conns" --inflight "$inflight" --duration "$duration" --warmup "$warmup" \
				--json --quiet "${args[@]}" 2>"$work/bench.err") || true
			if [[ "$json" != "{"* ]]; then
				say "$name: $load failed: $(tail -n 1 "$work/bench.err")"
				json='{"requests":0,"errors":0,"throughput_rps":0,"latency_us":{"p50":0,"p99":0,"p999":0},"failed":true}'
			fi
			results+=("$load"$'\t'"$name"$'\t'"$round"$'\t'"$json")
			if ! kill -0 "$pid" 2>/dev/null; then
				say "$name died during $load; last lines of its log:"
				tail -n 5 "$work/$name.log" >&2 || true
				broken+="$name "
				break
			fi
		done
		stop_server "$pid"
	done
done

# --- report --------------------------------------------------------------------------------------

# metric_of LOAD: the field a load is judged by (and its runs ordered by).
metric_of() {
	if [[ "$1" == open ]]; then echo latency_us.p99; else echo throughput_rps; fi
}

# median_run LOAD SERVER: the report of the median run of that load on that server (ordered by
# the load's metric; of an even number, the lower middle one), empty if it never ran. Every field
# of a row then comes from one real run.
median_run() {
	local r metric runs=()
	metric=$(metric_of "$1")
	for r in "${results[@]}"; do
		IFS=$'\t' read -r l s _ j <<<"$r"
		[[ "$l" == "$1" && "$s" == "$2" ]] && runs+=("$(json_field "$j" "$metric")"$'\t'"$j")
	done
	((${#runs[@]} > 0)) || return 0
	printf '%s\n' "${runs[@]}" | sort -g -t $'\t' -k1,1 | sed -n "$(((${#runs[@]} + 1) / 2))p" | cut -f2-
}

# value LOAD SERVER FIELD: a field of the median run, empty if that load never ran on it.
value() {
	local j
	j=$(median_run "$1" "$2")
	[[ -n "$j" ]] || return 0
	json_field "$j" "$3"
}

# ratio A B: A / B with two decimals, or "-" when either is missing or zero.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else printf "-" }'
}

printf '\n%-11s %-12s %12s %10s %10s %10s %8s %10s %10s\n' \
	load server "req/s" "p50 µs" "p99 µs" "p99.9 µs" errors "vs ringrpc" "vs limit"
for load in "${load_list[@]}"; do
	metric=$(metric_of "$load")
	ref=$(value "$load" ringrpc "$metric")
	limit=$(value "$load" echo-limit "$metric")
	for name in "${names[@]}"; do
		rps=$(value "$load" "$name" throughput_rps)
		[[ -n "$rps" ]] || continue
		mine=$(value "$load" "$name" "$metric")
		printf '%-11s %-12s %12.0f %10.1f %10.1f %10.1f %8s %10s %10s\n' "$load" "$name" "$rps" \
			"$(value "$load" "$name" latency_us.p50)" "$(value "$load" "$name" latency_us.p99)" \
			"$(value "$load" "$name" latency_us.p999)" "$(value "$load" "$name" errors)" \
			"$(ratio "$mine" "$ref")" "$(ratio "$mine" "$limit")"
	done
done
if ((${#skipped[@]} > 0)); then
	echo
	for s in "${skipped[@]}"; do
		IFS=$'\t' read -r n why <<<"$s"
		echo "skipped $n: $why"
	done
fi
echo "(closed loops: ratio of req/s, higher is better; open loop: ratio of p99, lower is better)"

# --- Markdown (the README's table) -------------------------------------------------------------

# human N: req/s as "2.58 M" or "96 k".
human() {
	awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%.2f M", n / 1e6; else printf "%.0f k", n / 1e3 }'
}

# cell LOAD SERVER: one cell of the Markdown table.
cell() {
	local load=$1 name=$2 rps metric mine ref limit text
	rps=$(value "$load" "$name" throughput_rps)
	[[ -n "$rps" ]] || {
		echo "not run"
		return
	}
	[[ "$(value "$load" "$name" failed 2>/dev/null)" != True ]] || {
		echo "failed"
		return
	}
	# Not a single answer: the server does not serve this load (a peer without the method) or
	# broke at once; say so rather than print zeros.
	if [[ "$(value "$load" "$name" requests)" == 0 ]]; then
		echo "no reply ($(value "$load" "$name" errors) errors)"
		return
	fi
	metric=$(metric_of "$load")
	mine=$(value "$load" "$name" "$metric")
	ref=$(value "$load" ringrpc "$metric")
	limit=$(value "$load" echo-limit "$metric")
	if [[ "$load" == open ]]; then
		text=$(awk -v us="$mine" 'BEGIN { printf "%.2f ms", us / 1e3 }')
	else
		text=$(human "$rps")
	fi
	case "$name" in
	ringrpc) [[ -z "$limit" ]] || text+=" ($(ratio "$mine" "$limit" | sed 's/x$/×/') limit)" ;;
	echo-limit) ;;
	*) [[ "$load" == open || -z "$ref" ]] || text+=" (ringrpc = $(ratio "$ref" "$mine" | sed 's/x$/×/'))" ;;
	esac
	local errors
	errors=$(value "$load" "$name" errors)
	[[ "${errors:-0}" == 0 ]] || text+=", $errors errors"
	echo "$text"
}

# label LOAD: the first column of the Markdown table.
label() {
	case "$1" in
	echo) echo '581 B `Echo.Echo`, req/s' ;;
	arith-json) echo '`Arith.Mul` JSON, req/s' ;;
	hello) echo '`Hello.Say` (rpcx-benchmark, 581 B protobuf), req/s' ;;
	open) echo "open loop $rate/s 581 B, p99" ;;
	esac
}

if [[ -n "$markdown" ]]; then
	{
		printf '| load |'
		for name in "${names[@]}"; do
			case "$name" in
			ringrpc) printf ' ringrpc |' ;;
			echo-limit) printf ' echo limit |' ;;
			go-rpcx) printf ' Go rpcx |' ;;
			*) printf ' %s |' "$name" ;;
			esac
		done
		printf '\n|---|'
		for name in "${names[@]}"; do printf -- '---|'; done
		printf '\n'
		for load in "${load_list[@]}"; do
			printf '| %s |' "$(label "$load")"
			for name in "${names[@]}"; do printf ' %s |' "$(cell "$load" "$name")"; done
			printf '\n'
		done
	} >"$markdown"
	say "wrote $markdown"
fi

# JSON: one object with the setup, every report, and what was skipped.
escape() { sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1"; }
mkdir -p "$root/results"
out=${out:-$root/results/compare-$(date +%Y%m%d-%H%M%S).json}
{
	printf '{"date":"%s","kernel":"%s","nproc":%s,' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$(nproc)"
	printf '"server_cpus":"%s","client_cpus":"%s","conns":%s,"inflight":%s,"duration":"%s","warmup":"%s","rate":%s,"rounds":%s,' \
		"$server_cpus" "$client_cpus" "$conns" "$inflight" "$duration" "$warmup" "$rate" "$rounds"
	printf '"results":['
	sep=""
	for r in "${results[@]}"; do
		IFS=$'\t' read -r l s round j <<<"$r"
		printf '%s{"load":"%s","server":"%s","round":%s,"report":%s}' "$sep" "$l" "$(escape "$s")" "$round" "$j"
		sep=,
	done
	printf '],"skipped":['
	sep=""
	for s in "${skipped[@]}"; do
		IFS=$'\t' read -r n why <<<"$s"
		printf '%s{"server":"%s","reason":"%s"}' "$sep" "$(escape "$n")" "$(escape "$why")"
		sep=,
	done
	printf ']}\n'
} >"$out"
say "wrote $out"
