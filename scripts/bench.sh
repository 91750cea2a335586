#!/usr/bin/env bash
# The README's benchmark: ringrpc-server on one half of the cores, ringrpc-bench on the other.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/bench.sh [options] [-- ringrpc-bench arguments...]

Builds ringrpc-server and ringrpc-bench (cargo build --release), starts ringrpc-server on a free
127.0.0.1 port pinned to the server CPUs (one worker per CPU), runs ringrpc-bench pinned to the
client CPUs, prints its report and stops the server. On a 2-core machine: server on CPU 0, client
on CPU 1; in general the server gets the first half of the CPUs and the client the rest.

Default load: closed loop, 10 connections x 32 requests in flight, 581-byte Echo.Echo, 5 s after
a 1 s warm-up.

Options:
  --duration D       measured time (default 5s)
  --conns N          connections (default 10)
  --inflight N       requests in flight per connection (default 32)
  --target S.M       service and method (default Echo.Echo)
  --payload-size N   payload bytes (default 581)
  --server-cpus L    CPUs for the server, e.g. 0 or 0-3 (default: first half)
  --client-cpus L    CPUs for ringrpc-bench (default: the rest)
  --server PATH      server binary to run instead of target/release/ringrpc-server; it is started
                     with --addr 127.0.0.1:PORT --threads N --cpus L like ringrpc-server
  --no-build         do not run cargo build first
  -h, --help         this help

Everything after -- goes to ringrpc-bench, e.g. `-- --rate 100000 --json` or
`-- --target Arith.Mul --serialize json --verify`.
EOF
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=5s
conns=10
inflight=32
target=Echo.Echo
payload_size=""
server_bin=""
build=1
extra=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--duration | --conns | --inflight | --target | --payload-size | --server-cpus | --client-cpus | --server)
		[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
		case "$1" in
		--duration) duration=$2 ;;
		--conns) conns=$2 ;;
		--inflight) inflight=$2 ;;
		--target) target=$2 ;;
		--payload-size) payload_size=$2 ;;
		--server-cpus) server_cpus=$2 ;;
		--client-cpus) client_cpus=$2 ;;
		--server) server_bin=$2 ;;
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

need taskset "it pins the server and the client (util-linux)"
split_cpus

if ((build)); then
	say "building ringrpc-server and ringrpc-bench (release)"
	"$root/scripts/deps.sh" protoc
	(cd "$root" && cargo build --release -p ringrpc-server -p ringrpc-bench-client \
		--bin ringrpc-server --bin ringrpc-bench)
fi
server_bin=${server_bin:-$target_dir/release/ringrpc-server}
bench_bin=$target_dir/release/ringrpc-bench
[[ -x "$server_bin" ]] || die "no server binary at $server_bin (build it, or drop --no-build)"
[[ -x "$bench_bin" ]] || die "no ringrpc-bench at $bench_bin (build it, or drop --no-build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
cleanup() {
	stop_servers
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_threads=$(cpu_list_len "$server_cpus")
client_threads=$(cpu_list_len "$client_cpus")
start_server ringrpc-server "$server_cpus" "$work/server.log" \
	"$server_bin" --addr "{addr}" --threads "$server_threads" --cpus "$server_cpus" ||
	die "could not start $server_bin"
say "server $server_bin on $server_addr, CPUs $server_cpus; client on CPUs $client_cpus"

taskset -c "$client_cpus" "$bench_bin" --addr "$server_addr" \
	--threads "$client_threads" --cpus "$client_cpus" \
	--conns "$conns" --inflight "$inflight" --duration "$duration" \
	--target "$target" ${payload_size:+--payload-size "$payload_size"} "${extra[@]}"
