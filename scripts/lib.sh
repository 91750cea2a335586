# Shared bash functions of the benchmark scripts (bench.sh, compare.sh, flamegraph.sh).
# Source it; it defines functions and a few variables, and runs nothing.
#
#   root          the repository root
#   target_dir    cargo's target directory ($CARGO_TARGET_DIR, else target/)
#   split_cpus    server_cpus / client_cpus: the first half of the CPUs for servers, the rest for
#                 the client (both CPU 0 on a one-CPU machine)
#   start_server  start a server pinned with taskset on a free 127.0.0.1 port, wait until it
#                 accepts connections; stop_servers (call it from an EXIT trap) stops them all
#   cpu_list_len  the number of CPUs in a list like 0-3,6
#   request_args  ringrpc-bench's arguments for the request of a standard load (echo, arith-json,
#                 hello), so that every script sends the same bytes
#   start_etcd    start a one-member etcd on free 127.0.0.1 ports (stop_etcd stops it)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
script_name=$(basename "$0" .sh)

# PIDs of the servers started by start_server.
server_pids=()

die() {
	echo "$script_name: $*" >&2
	exit 1
}

say() {
	echo "$script_name: $*" >&2
}

# need COMMAND HINT: fail with a hint unless COMMAND exists.
need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

# cpu_list_len LIST: the number of CPUs in LIST ("1", "0-3", "0,2,4-5").
cpu_list_len() {
	local n=0 part lo hi
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then
			lo=${part%-*}
			hi=${part#*-}
			n=$((n + hi - lo + 1))
		else
			n=$((n + 1))
		fi
	done
	echo "$n"
}

# split_cpus: set server_cpus and client_cpus (unless already set) to the first half of the
# online CPUs and the rest.
split_cpus() {
	local n half
	n=$(nproc)
	if ((n < 2)); then
		server_cpus=${server_cpus:-0}
		client_cpus=${client_cpus:-0}
		return
	fi
	half=$((n / 2))
	if ((half == 1)); then
		server_cpus=${server_cpus:-0}
	else
		server_cpus=${server_cpus:-0-$((half - 1))}
	fi
	if ((n - half == 1)); then
		client_cpus=${client_cpus:-$half}
	else
		client_cpus=${client_cpus:-$half-$((n - 1))}
	fi
}

# port_open PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_server NAME CPUS LOG COMMAND...: run COMMAND pinned to CPUS (taskset), with every "{addr}"
# in its arguments replaced by 127.0.0.1:PORT for a free PORT, output to LOG; wait up to 15 s
# until the port accepts connections. Sets server_addr and server_pid. Returns 1 (after saying
# why) if the server exits or never listens.
start_server() {
	local name=$1 cpus=$2 log=$3 port try i arg
	shift 3
	for ((try = 0; try < 5; try++)); do
		# Below the kernel's ephemeral ports (32768 and up): a port that a client connection
		# holds as its local port cannot be listened on, and no free-port check sees it.
		port=$((10000 + RANDOM % 22000))
		port_open "$port" && continue
		local argv=()
		for arg in "$@"; do
			argv+=("${arg//\{addr\}/127.0.0.1:$port}")
		done
		taskset -c "$cpus" "${argv[@]}" >"$log" 2>&1 &
		server_pid=$!
		server_pids+=("$server_pid")
		for ((i = 0; i < 300; i++)); do
			if port_open "$port"; then
				server_addr=127.0.0.1:$port
				return 0
			fi
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			say "$name is not listening on 127.0.0.1:$port after 15 s (log: $log)"
			stop_server "$server_pid"
			return 1
		fi
		# It exited: retry only if another process took the port first.
		wait "$server_pid" 2>/dev/null || true
		grep -qi "in use" "$log" || break
	done
	say "$name exited before listening; last lines of $log:"
	tail -n 5 "$log" >&2 || true
	return 1
}

# stop_server PID: stop one server started by start_server (SIGTERM, then SIGKILL after 5 s).
stop_server() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# stop_servers: stop every server still running; for EXIT traps.
stop_servers() {
	local pid
	for pid in "${server_pids[@]}"; do
		stop_server "$pid"
	done
	server_pids=()
}

# request_args LOAD: ringrpc-bench's arguments for the request of LOAD: what is sent, not how many
# or how fast (the caller adds those). Returns 1 for an unknown LOAD.
#   echo        581-byte Echo.Echo, raw
#   arith-json  Arith.Mul with JSON {"A":10,"B":20}
#   hello       Hello.Say with rpcx-benchmark's 581-byte protobuf BenchmarkMessage
request_args() {
	case "$1" in
	echo) echo "--target Echo.Echo --payload-size 581" ;;
	arith-json) echo "--target Arith.Mul --serialize json" ;;
	hello) echo "--target Hello.Say --serialize protobuf" ;;
	*) return 1 ;;
	esac
}

# json_field JSON PATH: print a field of a ringrpc-bench --json report ("requests",
# "latency_us.p99", ...), with python3 if present, else with a regex good enough for our flat keys.
json_field() {
	local json=$1 path=$2
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$json" "$path"
	else
		local key=${path##*.}
		sed -n "s/.*\"$key\":\([^,}]*\).*/\1/p" <<<"$json" | head -n 1
	fi
}

# start_etcd DIR: start a one-member etcd with its data in DIR on two free 127.0.0.1 ports; wait
# until it accepts connections. Sets etcd_addr (HOST:PORT) and etcd_pid. Dies if it cannot.
start_etcd() {
	local dir=$1 port peer try i
	need etcd "install etcd-server (scripts/deps.sh etcd)"
	for ((try = 0; try < 5; try++)); do
		# Below the kernel's ephemeral ports (32768 and up): a port that a client connection
		# holds as its local port cannot be listened on, and no free-port check sees it.
		port=$((10000 + RANDOM % 22000))
		peer=$((port + 1))
		if port_open "$port" || port_open "$peer"; then
			continue
		fi
		etcd --name fleet --data-dir "$dir/etcd-data" \
			--listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
			--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
			--initial-cluster "fleet=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
		etcd_pid=$!
		for ((i = 0; i < 200; i++)); do
			if port_open "$port"; then
				etcd_addr=127.0.0.1:$port
				return 0
			fi
			kill -0 "$etcd_pid" 2>/dev/null || break
			sleep 0.05
		done
		stop_etcd
		rm -rf "$dir/etcd-data"
	done
	tail -n 5 "$dir/etcd.log" >&2 || true
	die "etcd did not start (log: $dir/etcd.log)"
}

# stop_etcd: stop the etcd that start_etcd started, if any.
stop_etcd() {
	[[ -n "${etcd_pid:-}" ]] || return 0
	kill "$etcd_pid" 2>/dev/null || true
	wait "$etcd_pid" 2>/dev/null || true
	etcd_pid=""
}
