#!/usr/bin/env bash
# RSS of ringrpc-server and the Go rpcx server with many idle connections, side by side.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/idle-memory.sh [--counts LIST] [--threads N] [--no-build]

Starts each server (2 workers / GOMAXPROCS=2 by default), opens idle connections and reads the
server's RSS from /proc/PID/status: empty, at each count of LIST (default 1000,10000), right
after every connection made one 581-byte Echo.Echo call, and once they are idle again.
Prints one table; needs python3, and go for the Go server.
USAGE
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

counts=1000,10000
threads=2
build=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--counts)
		counts=$2
		shift 2
		;;
	--threads)
		threads=$2
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
	*)
		usage >&2
		exit 2
		;;
	esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
server_pids=()
trap 'stop_servers; rm -rf "$work"' EXIT

if ((build)); then
	(cd "$root" && cargo build --release -p ringrpc-server --bin ringrpc-server)
	if command -v go >/dev/null 2>&1; then
		mkdir -p "$target_dir/go"
		(cd "$root/benches/peers/go-rpcx" && go build -o "$target_dir/go/go-rpcx-server" .)
	fi
fi

cpus="0-$((threads - 1))"
printf '%-10s %10s' server empty
IFS=, read -ra count_list <<<"$counts"
for n in "${count_list[@]}"; do printf ' %10s' "idle $n"; done
printf ' %14s %12s\n' "after 1 call" "idle again"
for name in ringrpc go-rpcx; do
	case $name in
	ringrpc) cmd=("$target_dir/release/ringrpc-server" --addr "{addr}" --threads "$threads") ;;
	go-rpcx) cmd=(env GOMAXPROCS="$threads" "$target_dir/go/go-rpcx-server" -addr "{addr}" -procs "$threads") ;;
	esac
	[[ -x ${cmd[0]} || $name == go-rpcx ]] || {
		say "no ${cmd[0]}: skipping $name"
		continue
	}
	start_server "$name" "$cpus" "$work/$name.log" "${cmd[@]}" || continue
	pid=$server_pid
	# With `env` in front, the server is env's child: measure the server itself.
	child=$(pgrep -P "$pid" | head -n 1 || true)
	[[ -n $child ]] && pid=$child
	json=$(python3 "$root/scripts/idle_memory.py" "$server_addr" "$pid" "$counts")
	mib() { python3 -c "import json,sys; print('%.1f MiB' % (json.loads(sys.argv[1])[sys.argv[2]] / 1024))" "$json" "$1"; }
	printf '%-10s %10s' "$name" "$(mib empty_kib)"
	for n in "${count_list[@]}"; do printf ' %10s' "$(mib "idle_${n}_kib")"; done
	printf ' %14s %12s\n' "$(mib after_one_call_kib)" "$(mib idle_again_kib)"
	stop_server "$server_pid"
done
