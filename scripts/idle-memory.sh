#!/usr/bin/env bash
# RSS of ringrpc-server and the Go rpcx server with many idle connections, side by side.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/idle-memory.sh [--counts LIST] [--threads N] [--servers LIST] [--bulk N]
                              [--profile NAME] [--no-build]

Starts each server (2 workers / GOMAXPROCS=2 by default), opens idle connections and reads the
server's RSS from /proc/PID/status: empty, at each count of LIST (default 1000,10000), right
after every connection made one 581-byte Echo.Echo call, and once they are idle again; then
right after the first N of them (--bulk, default 1000; 0 skips it) made one 48 KiB call each,
and once quiet again. Prints one table; needs python3, and go for the Go server.

Servers (--servers, default ringrpc,go-rpcx):
  ringrpc       ringrpc-server
  go-rpcx       the Go rpcx server (benches/peers/go-rpcx)
  echo-limit    ringrpc-echo-limit, the bare framed echo on ringrpc's runtime
  echo-bufring  ringrpc-echo-bufring, the echo on a provided buffer ring (one thread only: use
                --threads 1 to compare it with the others)
The Rust binaries come from target/PROFILE (--profile, default release).
USAGE
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

counts=1000,10000
threads=2
servers=ringrpc,go-rpcx
bulk=1000
profile=release
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
	--servers)
		servers=$2
		shift 2
		;;
	--bulk)
		bulk=$2
		shift 2
		;;
	--profile)
		profile=$2
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
	(cd "$root" && cargo build --profile "$profile" -p ringrpc-server -p ringrpc-benches \
		--bin ringrpc-server --bin ringrpc-echo-limit --bin ringrpc-echo-bufring)
	if command -v go >/dev/null 2>&1; then
		mkdir -p "$target_dir/go"
		(cd "$root/benches/peers/go-rpcx" && go build -o "$target_dir/go/go-rpcx-server" .)
	fi
fi

cpus="0-$((threads - 1))"
# Each server holds one end of every connection (the client raises its own limit).
ulimit -n "$(ulimit -Hn)"
printf '%-10s %10s' server empty
IFS=, read -ra count_list <<<"$counts"
for n in "${count_list[@]}"; do printf ' %10s' "idle $n"; done
printf ' %14s %12s' "after 1 call" "idle again"
((bulk == 0)) || printf ' %14s %12s' "after 48 KiB" "quiet again"
printf '\n'
IFS=, read -ra server_list <<<"$servers"
for name in "${server_list[@]}"; do
	case $name in
	ringrpc) cmd=("$target_dir/$profile/ringrpc-server" --addr "{addr}" --threads "$threads") ;;
	go-rpcx) cmd=(env GOMAXPROCS="$threads" "$target_dir/go/go-rpcx-server" -addr "{addr}" -procs "$threads") ;;
	echo-limit) cmd=("$target_dir/$profile/ringrpc-echo-limit" --addr "{addr}" --threads "$threads") ;;
	echo-bufring) cmd=("$target_dir/$profile/ringrpc-echo-bufring" --addr "{addr}" --threads "$threads") ;;
	*) die "unknown server: $name (see --help)" ;;
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
	json=$(python3 "$root/scripts/idle_memory.py" "$server_addr" "$pid" "$counts" "$bulk")
	mib() { python3 -c "import json,sys; print('%.1f MiB' % (json.loads(sys.argv[1])[sys.argv[2]] / 1024))" "$json" "$1"; }
	printf '%-10s %10s' "$name" "$(mib empty_kib)"
	for n in "${count_list[@]}"; do printf ' %10s' "$(mib "idle_${n}_kib")"; done
	printf ' %14s %12s' "$(mib after_one_call_kib)" "$(mib idle_again_kib)"
	((bulk == 0)) || printf ' %14s %12s' "$(mib after_bulk_kib)" "$(mib bulk_idle_kib)"
	printf '\n'
	stop_server "$server_pid"
done
