#!/usr/bin/env bash
# A CPU flamegraph of ringrpc-server under ringrpc-bench load (perf + inferno).
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/flamegraph.sh [options] [-- ringrpc-bench arguments...]

Builds ringrpc-server with the `profiling` profile (release with debug symbols) and ringrpc-bench
(release), starts the server pinned to the server CPUs, loads it with ringrpc-bench from the
client CPUs (default: closed loop, 10 conns x 32 in flight, 581-byte Echo.Echo), records the
server with `perf record -e cpu-clock -g` (hardware counters are not available in these VMs)
after the warm-up, and writes an SVG flamegraph with inferno. Installs inferno with
`cargo install inferno` if inferno-flamegraph is missing.

Options:
  --duration D        seconds recorded (default 10)
  --freq HZ           sampling frequency (default 999)
  --call-graph MODE   perf's unwinding: dwarf (default; works without frame pointers) or fp
  --out FILE          the SVG (default: results/flamegraph-DATE.svg); the folded stacks are
                      written beside it as FILE.folded
  --server-cpus L     CPUs for the server (default: first half)
  --client-cpus L     CPUs for ringrpc-bench (default: the rest)
  --no-build          use the binaries as they are
  -h, --help          this help

Everything after -- goes to ringrpc-bench, e.g. `-- --target Arith.Mul --serialize json`.
Needs perf (linux-perf / linux-tools) and permission to profile (perf_event_paranoid <= 2 for
your own processes, or root).
EOF
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=10
freq=999
callgraph=dwarf
out=""
build=1
extra=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--duration | --freq | --call-graph | --out | --server-cpus | --client-cpus)
		[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
		case "$1" in
		--duration) duration=${2%s} ;;
		--freq) freq=$2 ;;
		--call-graph) callgraph=$2 ;;
		--out) out=$2 ;;
		--server-cpus) server_cpus=$2 ;;
		--client-cpus) client_cpus=$2 ;;
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
	--)
		shift
		extra=("$@")
		break
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
[[ "$duration" =~ ^[0-9]+$ ]] || die "--duration takes whole seconds"

need taskset "it pins the server and the client (util-linux)"
need perf "install linux-perf (Debian) or linux-tools (Ubuntu)"
split_cpus

if ((build)); then
	say "building ringrpc-server (profiling profile) and ringrpc-bench (release)"
	"$root/scripts/deps.sh" protoc
	(cd "$root" && cargo build --profile profiling -p ringrpc-server --bin ringrpc-server)
	(cd "$root" && cargo build --release -p ringrpc-bench-client --bin ringrpc-bench)
fi
if ! command -v inferno-flamegraph >/dev/null 2>&1 || ! command -v inferno-collapse-perf >/dev/null 2>&1; then
	say "installing inferno (cargo install inferno)"
	cargo install inferno
	export PATH=$HOME/.cargo/bin:$PATH
fi
server_bin=$target_dir/profiling/ringrpc-server
bench_bin=$target_dir/release/ringrpc-bench
[[ -x "$server_bin" ]] || die "no $server_bin (build it, or drop --no-build)"
[[ -x "$bench_bin" ]] || die "no $bench_bin (build it, or drop --no-build)"

mkdir -p "$root/results"
out=${out:-$root/results/flamegraph-$(date +%Y%m%d-%H%M%S).svg}
work=$(mktemp -d "${TMPDIR:-/tmp}/flamegraph.XXXXXX")
bench_pid=""
cleanup() {
	[[ -n "$bench_pid" ]] && kill "$bench_pid" 2>/dev/null || true
	stop_servers
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_threads=$(cpu_list_len "$server_cpus")
start_server ringrpc-server "$server_cpus" "$work/server.log" \
	"$server_bin" --addr "{addr}" --threads "$server_threads" --cpus "$server_cpus" ||
	die "could not start $server_bin"
say "server on $server_addr (CPUs $server_cpus), load from CPUs $client_cpus"

# The load runs a little longer than the recording: 1 s warm-up before, 1 s after.
taskset -c "$client_cpus" "$bench_bin" --addr "$server_addr" \
	--threads "$(cpu_list_len "$client_cpus")" --cpus "$client_cpus" \
	--conns 10 --inflight 32 --warmup 1s --duration "$((duration + 1))s" --quiet \
	"${extra[@]}" >"$work/bench.txt" 2>&1 &
bench_pid=$!
sleep 1

say "recording $duration s of the server at $freq Hz (call graph: $callgraph)"
perf record -e cpu-clock -F "$freq" -g --call-graph "$callgraph" -p "$server_pid" \
	-o "$work/perf.data" -- sleep "$duration" 2>"$work/perf.log" ||
	{ cat "$work/perf.log" >&2; die "perf record failed"; }

wait "$bench_pid" || true
bench_pid=""
cat "$work/bench.txt"

say "folding stacks"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$out.folded"
inferno-flamegraph --title "ringrpc-server under ringrpc-bench" <"$out.folded" >"$out"
say "wrote $out ($(wc -l <"$out.folded") distinct stacks in $out.folded)"
