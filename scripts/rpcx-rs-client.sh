#!/usr/bin/env bash
# Runs the rpcx-rs client interop tests (server/tests/rpcx-rs-client) against a server binary.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/rpcx-rs-client.sh [--server PATH] [--kind ringrpc|rpcx-rs] [--threads N]
                                 [--wait SECS] [-- CARGO_TEST_ARGS...]

Starts a server, runs the rpcx-rs client test suite (rpcx_client 0.3 from crates.io,
server/tests/rpcx-rs-client) against it, stops the server, and exits with the test result.

  --server PATH   server binary to test; it is started as
                    PATH --addr 127.0.0.1:<free port> --threads N
                  Default: the rpcx-rs peer, built first with
                    cargo build --release --manifest-path benches/peers/rpcx-rs/Cargo.toml
  --kind KIND     which expectations to apply where servers legitimately differ
                  (error replies): ringrpc (Go behaviour) or rpcx-rs. Default: rpcx-rs for the
                  rpcx-rs peer (binary named rpcx-rs-peer), ringrpc for anything else.
  --threads N     value passed to the server's --threads (default 1)
  --wait SECS     how long to wait for the server to accept connections (default 15)
  -h, --help      this help

Arguments after -- go to `cargo test` (e.g. `-- concurrent` to run matching tests only,
or `-- -- --nocapture`).

Examples:
  scripts/rpcx-rs-client.sh                                   # rpcx-rs client vs rpcx-rs peer
  scripts/rpcx-rs-client.sh --server target/release/ringrpc-server
EOF
}

die() {
    echo "rpcx-rs-client.sh: $*" >&2
    exit 2
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

server=""
kind=""
threads=1
wait_secs=15
cargo_args=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --server) [[ $# -ge 2 ]] || die "--server needs a path"; server=$2; shift 2 ;;
        --server=*) server=${1#*=}; shift ;;
        --kind) [[ $# -ge 2 ]] || die "--kind needs a value"; kind=$2; shift 2 ;;
        --kind=*) kind=${1#*=}; shift ;;
        --threads) [[ $# -ge 2 ]] || die "--threads needs a value"; threads=$2; shift 2 ;;
        --threads=*) threads=${1#*=}; shift ;;
        --wait) [[ $# -ge 2 ]] || die "--wait needs a value"; wait_secs=$2; shift 2 ;;
        --wait=*) wait_secs=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; cargo_args=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ $threads =~ ^[0-9]+$ ]] || die "--threads: not a number: $threads"
[[ $wait_secs =~ ^[0-9]+$ ]] || die "--wait: not a number: $wait_secs"
case "$kind" in
    "" | ringrpc | rpcx-rs) ;;
    *) die "--kind must be ringrpc or rpcx-rs, not '$kind'" ;;
esac

if [[ -z $server ]]; then
    echo "==> building the rpcx-rs peer"
    cargo build --release --manifest-path "$repo_root/benches/peers/rpcx-rs/Cargo.toml"
    server="$repo_root/benches/peers/rpcx-rs/target/release/rpcx-rs-peer"
else
    # Resolve relative to where the script was called from.
    [[ $server == */* ]] || server="./$server"
    [[ -e $server ]] || die "server binary not found: $server"
    server="$(cd "$(dirname "$server")" && pwd)/$(basename "$server")"
fi
[[ -x $server ]] || die "server binary is not executable: $server"

if [[ -z $kind ]]; then
    if [[ $(basename "$server") == rpcx-rs-peer ]]; then kind=rpcx-rs; else kind=ringrpc; fi
fi

# A free TCP port on 127.0.0.1: ask the kernel (python3), else probe random ports.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p i
    for i in $(seq 1 100); do
        # Below the kernel's ephemeral ports (32768 and up): a port that a client connection
        # holds as its local port cannot be listened on, and no free-port check sees it.
        p=$((10000 + RANDOM % 22000))
        if ! port_in_use "$p"; then echo "$p"; return; fi
    done
    die "no free port found"
}

port=$(free_port)
addr="127.0.0.1:$port"
log=$(mktemp "${TMPDIR:-/tmp}/rpcx-rs-client-server.XXXXXX.log")
server_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Give it a moment to exit, then force it.
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            kill -9 "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -f "$log"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> starting $server --addr $addr --threads $threads (kind $kind)"
"$server" --addr "$addr" --threads "$threads" >"$log" 2>&1 &
server_pid=$!

# Poll every 0.1 s, counting polls rather than reading the clock (SECONDS follows the wall
# clock, which can jump when the machine is suspended).
polls=0
until port_in_use "$port"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        wait "$server_pid" 2>/dev/null && st=0 || st=$?
        server_pid=""
        echo "rpcx-rs-client.sh: the server exited (status $st) before accepting connections; its output:" >&2
        sed 's/^/    /' "$log" >&2
        exit 1
    fi
    if ((polls >= wait_secs * 10)); then
        echo "rpcx-rs-client.sh: $addr does not accept connections after ${wait_secs}s; server output:" >&2
        sed 's/^/    /' "$log" >&2
        exit 1
    fi
    polls=$((polls + 1))
    sleep 0.1
done
echo "==> server is up on $addr (pid $server_pid)"

echo "==> cargo test --manifest-path server/tests/rpcx-rs-client/Cargo.toml ${cargo_args[*]:-}"
rc=0
RPCX_ADDR=$addr RPCX_SERVER_KIND=$kind \
    cargo test --manifest-path "$repo_root/server/tests/rpcx-rs-client/Cargo.toml" "${cargo_args[@]}" ||
    rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "rpcx-rs-client.sh: the server died during the tests" >&2
    [[ $rc -ne 0 ]] || rc=1
fi
if [[ $rc -ne 0 ]]; then
    echo "==> tests FAILED (exit $rc); last lines of the server output:" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
else
    echo "==> tests passed against $server (kind $kind)"
fi
exit "$rc"
