#!/usr/bin/env bash
# Userspace instructions per request of the server alone (callgrind), and syscalls per request
# (strace), for ringrpc-server and the echo limit on the standard loads.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/instructions.sh [options]

For each server and load: starts the server (one worker) under `valgrind --tool=callgrind`,
pinned to the server CPU; ringrpc-bench, pinned to the client CPU, sends a warm-up of
--warmup-requests requests; `callgrind_control -d` dumps; ringrpc-bench sends --requests more;
dump again. Callgrind zeroes its counters at every dump, so the second dump holds the measured
requests alone:

  instructions/request = Ir of dump 2 / --requests

Only the server process is counted, and only userspace: the kernel's share of the IO is not in it.

requests/write is the measured requests over the send operations the server completed (from the
callgrind dump). At 10 x 1 it is 1; at 10 x 32 it is the batch size, which the client's timing
decides (more on a loaded machine, fewer on a quiet one), and the per-request count follows it:
reads and writes are shared by the requests of a batch. Compare 10 x 32 counts at similar
requests/write only.
"Other crates" names the three costliest crates outside this workspace, in instructions per
request, inlined code counted for the crate it comes from and the code of other objects (glibc's
memcpy) as "C" (scripts/callgrind_top.py --by-crate; needs addr2line): how much of a load's count
is a library's own work (serde_json's for arith-json, prost's for hello) rather than the server's.
These counts are stable between runs of one binary (unlike timings on a shared machine), so they
show what a change costs on the hot path. Compare builds made the same way: this script builds all
three binaries in one cargo command, and LTO's inlining, a whole-program decision, can move a
count by 10 % when anything else in the program changes.

Copies: callgrind counts every iteration of a `rep movsb` as one instruction, and glibc's memcpy
uses `rep movsb` from 2 KiB up, so one batched copy of N bytes would count as N instructions. The
server under valgrind therefore runs with GLIBC_TUNABLES raising glibc's rep movsb/stosb
thresholds out of reach: its copies run as vector loops, counted as the CPU runs them. Set
GLIBC_TUNABLES yourself to override that (GLIBC_TUNABLES= for glibc's defaults).

With --strace N (default 200000; 0 skips it), the server also runs without valgrind, and after a
warm-up `strace -c -f` is attached to all its threads for N requests:

  syscalls/request = syscalls made during those N requests / N

Syscall counts depend on timing (how many completions one io_uring_enter reaps): expect them to
move between runs, unlike the instruction counts.

Servers (built with the `profiling` cargo profile: release with debug symbols):
  ringrpc      ringrpc-server
  echo-limit   ringrpc-echo-limit, the bare framed echo
  echo-bufring ringrpc-echo-bufring, the same echo on a raw io_uring with multishot receive into
               a provided buffer ring (the kernel picks a buffer only when bytes arrive)
  ringrpc-noop ringrpc-server's demo services with one interceptor that does nothing
               (server/examples/noop_interceptor.rs): what the interceptor hooks cost

Loads (the same request bytes as scripts/compare.sh):
  echo         10 conns x 32 in flight, 581-byte Echo.Echo (raw)
  echo-1       10 conns x 1 in flight, 581-byte Echo.Echo
  arith-json   10 conns x 32 in flight, Arith.Mul with JSON {"A":10,"B":20}
  hello        10 conns x 32 in flight, Hello.Say with the 581-byte protobuf BenchmarkMessage of
               rpcx-benchmark

Options:
  --servers LIST          servers, comma-separated (default: ringrpc,echo-limit)
  --loads LIST            loads, comma-separated (default: echo,echo-1,arith-json,hello)
  --warmup-requests N     requests before the first dump (default 20000)
  --requests N            requests measured (default 100000)
  --strace N              requests traced for syscalls/request; 0: no strace (default 200000)
  --server-cpu N          CPU of the server (default 0)
  --client-cpu N          CPU of ringrpc-bench (default 1, or 0 on a one-CPU machine)
  --json                  one JSON object on stdout instead of the table
  --markdown FILE         also write the results as a Markdown table to FILE (scripts/readme.sh
                          puts it into the README)
  --no-build              use the binaries as they are
  --keep DIR              keep each run's callgrind dumps in DIR (callgrind.SERVER.LOAD.2 is the
                          measured batch: scripts/callgrind_top.py gives its cost per request by
                          function, and one function's by inlined source line; or callgrind_annotate)
  -h, --help              this help

Needs valgrind (callgrind_control comes with it), taskset and, for --strace, strace.
EOF
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

servers="ringrpc,echo-limit"
loads="echo,echo-1,arith-json,hello"
warmup_requests=20000
requests=100000
strace_requests=200000
server_cpu=0
client_cpu=1
(($(nproc) > 1)) || client_cpu=0
json=0
keep=""
markdown=""
build=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--servers | --loads | --warmup-requests | --requests | --strace | --server-cpu | --client-cpu)
		[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
		case "$1" in
		--servers) servers=$2 ;;
		--loads) loads=$2 ;;
		--warmup-requests) warmup_requests=$2 ;;
		--requests) requests=$2 ;;
		--strace) strace_requests=$2 ;;
		--server-cpu) server_cpu=$2 ;;
		--client-cpu) client_cpu=$2 ;;
		esac
		shift 2
		;;
	--markdown)
		[[ $# -ge 2 ]] || die "--markdown needs a FILE"
		markdown=$2
		shift 2
		;;
	--keep)
		[[ $# -ge 2 ]] || die "--keep needs a DIR"
		keep=$2
		shift 2
		;;
	--json)
		json=1
		shift
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

for n in "$warmup_requests" "$requests" "$strace_requests" "$server_cpu" "$client_cpu"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((requests > 0)) || die "--requests must be above 0"
need taskset "it pins the server and the client (util-linux)"
need valgrind "the instruction counts come from callgrind (apt-get install valgrind)"
need callgrind_control "it comes with valgrind"
((strace_requests == 0)) || need strace "for syscalls/request (apt-get install strace), or pass --strace 0"

IFS=, read -ra server_list <<<"$servers"
IFS=, read -ra load_list <<<"$loads"

# load_args LOAD: ringrpc-bench's arguments for LOAD (concurrency and request).
load_args() {
	case "$1" in
	echo) echo "--conns 10 --inflight 32 $(request_args echo)" ;;
	echo-1) echo "--conns 10 --inflight 1 $(request_args echo)" ;;
	arith-json) echo "--conns 10 --inflight 32 $(request_args arith-json)" ;;
	hello) echo "--conns 10 --inflight 32 $(request_args hello)" ;;
	*) die "unknown load: $1 (see --help)" ;;
	esac
}
for load in "${load_list[@]}"; do load_args "$load" >/dev/null; done

# Vector loops rather than rep movsb/stosb in glibc's memcpy/memset under callgrind (see --help).
no_rep_movsb=glibc.cpu.x86_rep_movsb_threshold=1000000000:glibc.cpu.x86_rep_stosb_threshold=1000000000
tunables=${GLIBC_TUNABLES-$no_rep_movsb}

bin_dir=$target_dir/profiling
# server_bin NAME: the binary of a server.
server_bin() {
	case "$1" in
	ringrpc) echo "$bin_dir/ringrpc-server" ;;
	echo-limit) echo "$bin_dir/ringrpc-echo-limit" ;;
	echo-bufring) echo "$bin_dir/ringrpc-echo-bufring" ;;
	ringrpc-noop) echo "$bin_dir/examples/noop_interceptor" ;;
	*) die "unknown server: $1 (see --help)" ;;
	esac
}
for name in "${server_list[@]}"; do server_bin "$name" >/dev/null; done

if ((build)); then
	say "building ringrpc-server, the echo servers and ringrpc-bench (profile profiling)"
	"$root/scripts/deps.sh" protoc
	(cd "$root" && cargo build --profile profiling -p ringrpc-server -p ringrpc-benches \
		-p ringrpc-bench-client --bin ringrpc-server --bin ringrpc-echo-limit \
		--bin ringrpc-echo-bufring --bin ringrpc-bench --example noop_interceptor)
fi
bench_bin=$bin_dir/ringrpc-bench
[[ -x "$bench_bin" ]] || die "no ringrpc-bench at $bench_bin (build it, or drop --no-build)"
for name in "${server_list[@]}"; do
	[[ -x "$(server_bin "$name")" ]] || die "no $(server_bin "$name") (build it, or drop --no-build)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/instructions.XXXXXX")
strace_pid=""
cleanup() {
	[[ -z "$strace_pid" ]] || kill "$strace_pid" 2>/dev/null || true
	stop_servers
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# send N LOAD: N requests of LOAD from the client CPU, no time-based warm-up, so exactly N are
# sent; fails unless all N are answered without error. Bounded: 10 minutes at most.
send() {
	local n=$1 load=$2 out answered errors
	read -ra args <<<"$(load_args "$load")"
	out=$(timeout 600 taskset -c "$client_cpu" "$bench_bin" --addr "$server_addr" \
		--threads 1 --cpus "$client_cpu" --warmup 0s --drain 10s --requests "$n" \
		--json --quiet "${args[@]}" 2>"$work/bench.err") || true
	if [[ "$out" != "{"* ]]; then
		say "ringrpc-bench failed: $(tail -n 1 "$work/bench.err")"
		return 1
	fi
	answered=$(json_field "$out" requests)
	errors=$(json_field "$out" errors)
	if [[ "$answered" != "$n" || "$errors" != 0 ]]; then
		say "ringrpc-bench: $answered of $n requests answered, $errors errors"
		return 1
	fi
}

# dump_total PID FILE N: ask callgrind for dump number N and print its Ir total.
dump_total() {
	local pid=$1 file=$2 n=$3 i
	timeout 60 callgrind_control -d "$pid" >/dev/null 2>&1 || return 1
	# callgrind_control returns once the dump is asked for; wait for the file to be complete.
	for ((i = 0; i < 600; i++)); do
		if [[ -f "$file.$n" ]] && grep -q '^totals:' "$file.$n"; then
			sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file.$n"
			return 0
		fi
		sleep 0.1
	done
	say "callgrind dump $n of $pid never appeared"
	return 1
}

# requests_per_write DUMP: measured requests per send operation the server completed, from the
# calls to the send op's destructor in callgrind dump DUMP ("-" if none were recorded); for
# ringrpc-echo-bufring, which submits its sends itself, the calls to its on_send_submitted. Batching
# sets the per-request count at 10 x 32: per-read and per-write costs are shared by the requests
# of a batch, and the client's timing, not the server, decides how many a batch holds.
requests_per_write() {
	awk -v n="$requests" '
		/^cfn=/ { sends = ($0 ~ /drop_in_place<monoio::driver::op::Op<monoio::driver::op::send::Send|ringrpc_echo_bufring::on_send_submitted/) }
		/^calls=/ && sends { split($0, f, /[= ]/); total += f[2]; sends = 0 }
		END { if (total > 0) printf "%.1f", n / total; else printf "-" }
	' "$1"
}

# outside_crates DUMP BIN: the three costliest crates outside this workspace in callgrind dump
# DUMP of BIN, per request ("serde_json 655, std 93, bytes 66"; inlined code counted for the crate
# it comes from: scripts/callgrind_top.py --by-crate). Empty without addr2line.
outside_crates() {
	command -v addr2line >/dev/null || return 0
	python3 "$root/scripts/callgrind_top.py" "$1" --requests "$requests" --by-crate \
		--binary "$2" --top 1000 |
		awk '$2 != "total" && $2 !~ /^ringrpc/ && n < 3 {
			printf "%s%s %.0f", (n++ ? ", " : ""), $2, $1
		}'
}

# instructions SERVER LOAD: set ir to the userspace instructions per measured request (empty on
# failure), per_write and outside. It sets variables rather than printing so that it runs in this
# shell, where the EXIT trap can stop the server.
instructions() {
	local name=$1 load=$2 bin pid cg total
	ir=""
	per_write=""
	outside=""
	bin=$(server_bin "$name")
	cg=$work/callgrind.$name.$load
	start_server "$name" "$server_cpu" "$work/$name.$load.valgrind.log" \
		env GLIBC_TUNABLES="$tunables" valgrind --tool=callgrind --compress-strings=no --dump-instr=yes --callgrind-out-file="$cg" \
		"$bin" --addr "{addr}" --threads 1 --cpus "$server_cpu" || return 1
	pid=$server_pid
	# Under valgrind a server does not stop on SIGTERM (its signals are queued until the guest
	# runs): kill it outright, whatever happens below.
	if send "$warmup_requests" "$load" && dump_total "$pid" "$cg" 1 >/dev/null &&
		send "$requests" "$load" && total=$(dump_total "$pid" "$cg" 2); then
		ir=$(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.1f", t / n }')
		per_write=$(requests_per_write "$cg.2")
		outside=$(outside_crates "$cg.2" "$bin" || true)
	fi
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if [[ -n $keep ]]; then
		mkdir -p "$keep" && cp "$cg".* "$keep"/ 2>/dev/null || true
	fi
	if grep -qi "epoll" "$work/$name.$load.valgrind.log"; then
		say "$name fell back to epoll under valgrind: the count is not io_uring's"
	fi
}

# traced PID: whether every thread of PID has a tracer.
traced() {
	local status
	for status in /proc/"$1"/task/*/status; do
		grep -q '^TracerPid:[[:space:]]*[1-9]' "$status" 2>/dev/null || return 1
	done
}

# syscalls SERVER LOAD: set sc to the syscalls per measured request (empty on failure).
syscalls() {
	local name=$1 load=$2 bin pid out i calls
	sc=""
	bin=$(server_bin "$name")
	out=$work/strace.$name.$load
	start_server "$name" "$server_cpu" "$work/$name.$load.log" \
		"$bin" --addr "{addr}" --threads 1 --cpus "$server_cpu" || return 1
	pid=$server_pid
	if send "$warmup_requests" "$load"; then
		# -f with -p attaches every thread of the process.
		strace -c -f -p "$pid" -o "$out" 2>"$work/strace.err" &
		strace_pid=$!
		for ((i = 0; i < 100; i++)); do
			traced "$pid" && break
			sleep 0.05
		done
		if traced "$pid" && send "$strace_requests" "$load"; then
			kill -INT "$strace_pid"
			wait "$strace_pid" 2>/dev/null || true
			# The last line: "100.00 SECONDS USECS/CALL CALLS [ERRORS] total".
			calls=$(awk '$NF == "total" { print $4 }' "$out")
			[[ -z "$calls" ]] ||
				sc=$(awk -v c="$calls" -v n="$strace_requests" 'BEGIN { printf "%.4f", c / n }')
		else
			say "strace did not attach to $name (or the load failed): $(tail -n 1 "$work/strace.err")"
		fi
		kill "$strace_pid" 2>/dev/null || true
		wait "$strace_pid" 2>/dev/null || true
		strace_pid=""
	fi
	stop_server "$pid"
}

# rows[i] = "server|load|instructions|syscalls|requests per write|outside crates" ('|': empty
# fields stay fields)
rows=()
for name in "${server_list[@]}"; do
	for load in "${load_list[@]}"; do
		say "$name, $load: callgrind, $warmup_requests + $requests requests"
		instructions "$name" "$load" || true
		sc=""
		if ((strace_requests > 0)); then
			say "$name, $load: strace, $warmup_requests + $strace_requests requests"
			syscalls "$name" "$load" || true
		fi
		rows+=("$name|$load|$ir|$sc|$per_write|$outside")
	done
done

if [[ -n $markdown ]]; then
	{
		echo "| server | load | userspace instructions / request | syscalls / request | requests / write | of which other crates |"
		echo "|---|---|---|---|---|---|"
		for r in "${rows[@]}"; do
			IFS='|' read -r s l ir sc pw oc <<<"$r"
			echo "| $s | $l | ${ir:--} | ${sc:--} | ${pw:--} | ${oc:--} |"
		done
		echo
		echo "Server alone on CPU $server_cpu, ringrpc-bench on CPU $client_cpu; callgrind over $requests" \
			"requests after $warmup_requests, strace -c -f over $strace_requests" \
			"(\`scripts/instructions.sh\`, $(date -u +%Y-%m-%d))."
	} >"$markdown"
fi

if ((json)); then
	printf '{"date":"%s","kernel":"%s","server_cpu":%s,"client_cpu":%s,' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$server_cpu" "$client_cpu"
	printf '"warmup_requests":%s,"requests":%s,"strace_requests":%s,"results":[' \
		"$warmup_requests" "$requests" "$strace_requests"
	sep=""
	for r in "${rows[@]}"; do
		IFS='|' read -r s l ir sc pw oc <<<"$r"
		[[ "$pw" != "-" ]] || pw=""
		printf '%s{"server":"%s","load":"%s","instructions_per_request":%s,"syscalls_per_request":%s,"requests_per_write":%s,"other_crates":"%s"}' \
			"$sep" "$s" "$l" "${ir:-null}" "${sc:-null}" "${pw:-null}" "$oc"
		sep=,
	done
	printf ']}\n'
else
	printf '\n%-12s %-11s %14s %14s %12s  %s\n' server load "instr/req" "syscalls/req" "req/write" \
		"of which other crates"
	for r in "${rows[@]}"; do
		IFS='|' read -r s l ir sc pw oc <<<"$r"
		printf '%-12s %-11s %14s %14s %12s  %s\n' "$s" "$l" "${ir:--}" "${sc:--}" "${pw:--}" "${oc:--}"
	done
	echo "(server side, userspace; callgrind over $requests requests after $warmup_requests," \
		"strace over $strace_requests)"
fi
