#!/usr/bin/env bash
# Requests per second of the HTTP gateway, JSON-RPC and TLS against the binary protocol, same
# method, same server, side by side in one run. See --help.
set -euo pipefail

usage() {
	cat <<'EOF_USAGE'
Usage: scripts/http-bench.sh [--duration D] [--conns N] [--no-build] [--help]

Starts one release ringrpc-server (one worker, pinned to the server CPUs as compare.sh pins it,
with the test certificate of server/tests/data so it serves TLS too) and loads it with Arith.Mul,
JSON {"A":10,"B":20}, in turn:

  binary        ringrpc-bench, CONNS connections, 1 request in flight each (as wrk does)
  binary-32     ringrpc-bench, CONNS connections, 32 in flight each (compare.sh's load)
  binary-tls    both again over TLS 1.3 (ringrpc-bench --tls-ca), on the same port
  gateway       wrk, CONNS keep-alive connections, POST /Arith with X-RPCX-* headers
  jsonrpc       wrk, CONNS keep-alive connections, POST / with X-JSONRPC-2.0: true
  gateway-tls   wrk over https (TLS 1.3 through the same port), as gateway
  *-32          the three wrk loads again with 32 requests pipelined per write (wrk's pipeline
                example), against binary-32

and prints req/s with the ratios gateway/binary, jsonrpc/binary, and TLS against plain TCP
(binary-tls/binary, gateway-tls/gateway). wrk and ringrpc-bench are different clients (their own costs differ): the
pipelined pair, where the server is the bottleneck, is the fairer comparison of server cost. ringrpc-bench and wrk run pinned to the client CPUs. wrk is installed by
scripts/deps.sh wrk when missing.

Options:
  --duration D   seconds per load (default 5)
  --conns N      connections (default 10)
  --no-build     use target/release binaries as they are
EOF_USAGE
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=5
conns=10
build=1
while [[ $# -gt 0 ]]; do
	case "$1" in
	--duration)
		duration=${2%s}
		shift 2
		;;
	--conns)
		conns=$2
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
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

"$root/scripts/deps.sh" wrk
need wrk "scripts/deps.sh wrk installs it"
need taskset "util-linux"
split_cpus
if [[ $build == 1 ]]; then
	say "building ringrpc-server and ringrpc-bench (release)"
	(cd "$root" && cargo build --release -p ringrpc-server -p ringrpc-bench-client --bin ringrpc-server --bin ringrpc-bench)
fi
server_bin=$target_dir/release/ringrpc-server
bench_bin=$target_dir/release/ringrpc-bench
[[ -x "$server_bin" && -x "$bench_bin" ]] || die "no release ringrpc-server or ringrpc-bench (drop --no-build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/http-bench.XXXXXX")
trap 'stop_servers; rm -rf "$work"' EXIT
data=$root/server/tests/data
start_server ringrpc "$server_cpus" "$work/server.log" "$server_bin" --addr "{addr}" --threads 1 \
	--cpus "$server_cpus" --tls-cert "$data/test-cert.pem" --tls-key "$data/test-key.pem" ||
	die "ringrpc-server did not start"

cat >"$work/gateway.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"A":10,"B":20}'
wrk.headers["X-RPCX-SerializeType"] = "1"
wrk.headers["X-RPCX-ServiceMethod"] = "Mul"
LUA
cat >"$work/jsonrpc.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":10,"B":20},"id":1}'
wrk.headers["X-JSONRPC-2.0"] = "true"
LUA
# Pipelined variants (wrk's own pipeline example): each write carries 32 requests, as
# ringrpc-bench keeps 32 frames in flight per connection.
for name in gateway jsonrpc; do
	cat "$work/$name.lua" - >"$work/$name-32.lua" <<'LUA'
init = function(args)
  local r = {}
  for i = 1, 32 do r[i] = wrk.format() end
  pipelined = table.concat(r)
end
request = function() return pipelined end
LUA
done

# binary INFLIGHT [ARGS...]: req/s of ringrpc-bench.
binary() {
	local json inflight=$1
	shift
	json=$(taskset -c "$client_cpus" "$bench_bin" --addr "$server_addr" --cpus "$client_cpus" \
		--conns "$conns" --inflight "$inflight" --duration "${duration}s" --warmup 1s --quiet --json \
		$(request_args arith-json) "$@")
	json_field "$json" throughput_rps
}

# http SCRIPT URL: req/s of wrk, after a one-second warm-up; fails on any non-2xx answer.
http() {
	local out
	taskset -c "$client_cpus" wrk -t1 -c "$conns" -d1s -s "$1" "$2" >/dev/null
	out=$(taskset -c "$client_cpus" wrk -t1 -c "$conns" -d"${duration}s" -s "$1" "$2")
	if grep -q "Non-2xx" <<<"$out"; then
		say "non-2xx answers from $2:"
		echo "$out" >&2
		return 1
	fi
	awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' <<<"$out"
}

say "server on CPU $server_cpus, load on CPU $client_cpus, $conns connections, ${duration}s per load"
bin=$(binary 1)
bin32=$(binary 32)
bintls=$(binary 1 --tls-ca "$data/test-ca.pem")
bintls32=$(binary 32 --tls-ca "$data/test-ca.pem")
gw=$(http "$work/gateway.lua" "http://$server_addr/Arith")
rpc=$(http "$work/jsonrpc.lua" "http://$server_addr/")
tls=$(http "$work/gateway.lua" "https://$server_addr/Arith")
gw32=$(http "$work/gateway-32.lua" "http://$server_addr/Arith")
rpc32=$(http "$work/jsonrpc-32.lua" "http://$server_addr/")
tls32=$(http "$work/gateway-32.lua" "https://$server_addr/Arith")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '| load (Arith.Mul, JSON) | req/s | ratio |\n|---|---|---|\n'
printf '| binary rpcx, %s conns x 1 in flight (ringrpc-bench) | %.0f | 1.00 |\n' "$conns" "$bin"
printf '| binary rpcx, %s conns x 32 in flight (ringrpc-bench) | %.0f | %s x binary |\n' "$conns" "$bin32" "$(ratio "$bin32" "$bin")"
printf '| binary rpcx over TLS, %s conns x 1 in flight | %.0f | %s x binary over TCP |\n' "$conns" "$bintls" "$(ratio "$bintls" "$bin")"
printf '| binary rpcx over TLS, %s conns x 32 in flight | %.0f | %s x binary-32 over TCP |\n' "$conns" "$bintls32" "$(ratio "$bintls32" "$bin32")"
printf '| HTTP gateway, %s keep-alive conns (wrk) | %s | %s x binary |\n' "$conns" "$gw" "$(ratio "$gw" "$bin")"
printf '| JSON-RPC 2.0, %s keep-alive conns (wrk) | %s | %s x binary |\n' "$conns" "$rpc" "$(ratio "$rpc" "$bin")"
printf '| HTTP gateway over TLS (wrk, https) | %s | %s x gateway over TCP |\n' "$tls" "$(ratio "$tls" "$gw")"
printf '| HTTP gateway, 32 pipelined per conn (wrk) | %s | %s x binary-32 |\n' "$gw32" "$(ratio "$gw32" "$bin32")"
printf '| JSON-RPC 2.0, 32 pipelined per conn (wrk) | %s | %s x binary-32 |\n' "$rpc32" "$(ratio "$rpc32" "$bin32")"
printf '| HTTP gateway over TLS, 32 pipelined (wrk) | %s | %s x gateway-32 over TCP |\n' "$tls32" "$(ratio "$tls32" "$gw32")"
