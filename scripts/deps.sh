#!/usr/bin/env bash
# Installs, with apt, the system tools the build and the tests need when they are missing:
#   protoc   protobuf-compiler: etcd-client's build script compiles etcd's .proto files with it;
#   etcd     etcd-server: the registry tests (server/tests/registry_etcd.rs, the Go suite's
#            etcd cases) start a real etcd on free 127.0.0.1 ports;
#   wrk      the HTTP load generator of scripts/http-bench.sh (not needed by the tests).
# Usage: scripts/deps.sh [protoc] [etcd] [wrk]   (no argument: protoc and etcd)
# Without apt-get or root it only says what is missing; the build or the tests then say the rest.
set -euo pipefail

wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=(protoc etcd)

missing=()
for tool in "${wanted[@]}"; do
	case "$tool" in
	protoc) command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler) ;;
	etcd) command -v etcd >/dev/null 2>&1 || [[ -x /usr/bin/etcd ]] || missing+=(etcd-server) ;;
	wrk) command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
	*)
		echo "deps: unknown tool $tool (protoc, etcd, wrk)" >&2
		exit 2
		;;
	esac
done
[[ ${#missing[@]} -gt 0 ]] || exit 0

if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) != 0 ]]; then
	echo "deps: missing ${missing[*]}, and cannot install it here (needs apt-get as root): install it by hand" >&2
	exit 0
fi
echo "deps: installing ${missing[*]} with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
