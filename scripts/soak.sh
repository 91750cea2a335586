#!/usr/bin/env bash
# Soak test: 10,000 connections to ringrpc-server (2 workers), 1,000,000 pipelined echo requests,
# 1% of the connections sending garbage; prints the counts (right, wrong, lost, garbage closed),
# the rate and the server's peak RSS. Too long for CI: server/tests/soak.rs is #[ignore]d and run
# from here.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/soak.sh [--conns N] [--requests N] [--garbage-percent N]

Defaults: 10000 connections, 1000000 requests, 1 % garbage connections. Raises the soft
RLIMIT_NOFILE to the hard limit (the test needs about two descriptors per connection).
USAGE
}

conns=10000
requests=1000000
garbage=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--conns)
		conns=$2
		shift
		;;
	--requests)
		requests=$2
		shift
		;;
	--garbage-percent)
		garbage=$2
		shift
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
	shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ulimit -n "$(ulimit -Hn)"
SOAK_CONNS=$conns SOAK_REQUESTS=$requests SOAK_GARBAGE_PERCENT=$garbage \
	cargo test -p ringrpc-server --test soak -- --ignored --nocapture
