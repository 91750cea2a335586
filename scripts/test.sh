#!/usr/bin/env bash
# The whole test suite, as the README names it and .ci/run calls it.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/test.sh [--help]

Runs, in order (after installing protoc and etcd-server with apt when missing: scripts/deps.sh):
  1. cargo test --workspace            unit, property, end-to-end and smoke tests of every crate,
                                       then the doctests of scripts/callgrind_top.py;
  2. scripts/rpcx-rs-client.sh         the rpcx-rs client (crates.io) against a fresh ringrpc-server;
  3. scripts/go-suite.sh               the stock Go rpcx client suite against the Go rpcx server
                                       and against a fresh ringrpc-server.
Exits non-zero on the first failure. Needs cargo and go (go missing: step 3 is skipped with a
line, except under CI=true where it fails).
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	usage >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
started=$(date +%s)

echo "== system tools: protoc (etcd client build), etcd (registry tests)"
scripts/deps.sh protoc etcd

echo "== cargo test --workspace"
cargo test --workspace

echo "== the scripts' own tests (doctests of the profile reader)"
python3 -m doctest scripts/callgrind_top.py

echo "== building ringrpc-server for the foreign-client suites"
cargo build -p ringrpc-server
server="${CARGO_TARGET_DIR:-$root/target}/debug/ringrpc-server"

echo "== rpcx-rs client (crates.io rpcx_client 0.3) against ringrpc-server"
scripts/rpcx-rs-client.sh --server "$server"

echo "== Go rpcx client suite against the Go rpcx server and ringrpc-server"
scripts/go-suite.sh --ringrpc "$server"

echo "== all tests passed in $(($(date +%s) - started)) s"
