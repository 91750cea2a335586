#!/usr/bin/env bash
# A fleet behind etcd, measured: etcd, then 1, 2, ... N ringrpc-servers registering in it, and
# ringrpc-bench discovering them through etcd (as a Go XClient does) after each start.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/fleet.sh [options]

Starts etcd on free 127.0.0.1 ports, then ringrpc-server instances one by one (--threads 1 each,
pinned to the server CPUs, registered with --etcd), and after each start runs ringrpc-bench with
--etcd (pinned to the client CPUs) against every server etcd lists. Prints one line per fleet
size: aggregate req/s and each server's share. Then SIGKILLs the last server and says how long
etcd still listed it (its lease TTL bounds that). Everything it started is stopped at the end.
On a 2-core machine every server shares CPU 0 and the client has CPU 1.

Options:
  --servers N        largest fleet (default 3)
  --duration D       measured time per fleet size (default 3s)
  --conns N          connections, spread over the servers (default 12)
  --ttl S            the servers' --etcd-ttl in seconds (default 10, the server's default)
  --server-cpus L    CPUs for the servers (default: first half)
  --client-cpus L    CPUs for ringrpc-bench (default: the rest)
  --no-build         do not run cargo build first
  -h, --help         this help
USAGE
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

servers=3
duration=3s
conns=12
ttl=10
build=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--servers | --duration | --conns | --ttl | --server-cpus | --client-cpus)
		[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
		case "$1" in
		--servers) servers=$2 ;;
		--duration) duration=$2 ;;
		--conns) conns=$2 ;;
		--ttl) ttl=$2 ;;
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
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

need taskset "it pins the servers and the client (util-linux)"
"$root/scripts/deps.sh" protoc etcd
split_cpus

if ((build)); then
	say "building ringrpc-server and ringrpc-bench (release)"
	(cd "$root" && cargo build --release -p ringrpc-server -p ringrpc-bench-client \
		--bin ringrpc-server --bin ringrpc-bench)
fi
server_bin=$target_dir/release/ringrpc-server
bench_bin=$target_dir/release/ringrpc-bench
[[ -x "$server_bin" ]] || die "no server binary at $server_bin (build it, or drop --no-build)"
[[ -x "$bench_bin" ]] || die "no ringrpc-bench at $bench_bin (build it, or drop --no-build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fleet.XXXXXX")
cleanup() {
	stop_servers
	stop_etcd
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_etcd "$work"
base=/rpcx_fleet
say "etcd on $etcd_addr; servers on CPUs $server_cpus, ringrpc-bench on CPUs $client_cpus"

# listed ADDR: whether etcd lists ADDR among the servers of Echo.
listed() {
	local servers
	# Into a variable first: `grep -q` in a pipe would stop reading early, and under pipefail the
	# listing's SIGPIPE would read as "not listed".
	servers=$("$bench_bin" --etcd "$etcd_addr" --base-path "$base" --list-servers 2>/dev/null) || return 1
	grep -qx "$1" <<<"$servers"
}

client_threads=$(cpu_list_len "$client_cpus")
addrs=()
for ((n = 1; n <= servers; n++)); do
	start_server "server-$n" "$server_cpus" "$work/server-$n.log" \
		"$server_bin" --addr "{addr}" --threads 1 --etcd "$etcd_addr" --base-path "$base" \
		--etcd-ttl "$ttl" || die "could not start server $n"
	addrs+=("$server_addr")
	# Registration follows the bind by a few milliseconds: wait until etcd lists the new server.
	for ((i = 0; i < 100; i++)); do
		listed "$server_addr" && break
		sleep 0.05
	done
	json=$(taskset -c "$client_cpus" "$bench_bin" --etcd "$etcd_addr" --base-path "$base" \
		--threads "$client_threads" --cpus "$client_cpus" --conns "$conns" --duration "$duration" \
		--quiet --json)
	rps=$(json_field "$json" throughput_rps)
	shares=$(python3 -c 'import json, sys
r = json.loads(sys.argv[1])
total = sum(s["requests"] for s in r["servers"]) or 1
print(", ".join("%s %.0f%%" % (s["addr"], 100 * s["requests"] / total) for s in r["servers"]))' "$json")
	printf 'fleet of %d: %10.0f req/s   (%s)\n' "$n" "$rps" "$shares"
done

# How long a killed server stays listed: SIGKILL the last one and poll what etcd lists.
last=${addrs[-1]}
last_pid=${server_pids[-1]}
kill -9 "$last_pid"
killed=$(date +%s.%N)
{ wait "$last_pid"; } 2>/dev/null || true # braces: also silences bash's "Killed" notice
while listed "$last"; do
	sleep 0.1
done
awk -v a="$killed" -v b="$(date +%s.%N)" -v ttl="$ttl" \
	'BEGIN { printf "SIGKILLed server %s listed for %.1f s more (lease TTL %d s)\n", "'"$last"'", b - a, ttl }'
