#!/usr/bin/env bash
# scripts/brokers.sh: find, start and stop the brokers the integration tests use.
#
# scripts/test.sh sources this file for its functions (kb_*). Tests also run it as a command, to get
# a Redis server of their own that they may kill and restart without disturbing other packages:
#
#   scripts/brokers.sh redis-start DIR [aof]    start a private redis-server whose state lives in DIR
#                                               and print its URL (redis://127.0.0.1:PORT/0). The first
#                                               start picks a free port (never 6379) and writes
#                                               DIR/redis.conf (with DIR/redis.extra.conf appended,
#                                               if it exists); later starts reuse that port. Returns
#                                               once the server answers PING, with our PID in INFO.
#                                               Idempotent.
#   scripts/brokers.sh redis-stop DIR [SIGNAL]  stop the server of DIR (SIGNAL: TERM, the default, or
#                                               KILL to simulate a crash). Returns once it is gone.
#   scripts/brokers.sh redis-restart DIR [aof]  redis-stop DIR KILL, then redis-start DIR [aof].
#   scripts/brokers.sh redis-cluster-start DIR  start a PRIVATE 6-node Redis Cluster (3 masters, 3
#                                               replicas) in DIR/n1 ... DIR/n6, one at a time, each a
#                                               redis-start server whose DIR/nK/redis.extra.conf adds
#                                               cluster-enabled yes, nodes.conf, cluster-node-timeout
#                                               2000 and protected-mode no, on a free port P (21000-
#                                               22767) whose bus port P+10000 is free too; then
#                                               redis-cli --cluster create --cluster-replicas 1. Prints
#                                               redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#                                               (the masters, in slot order) once every node says
#                                               cluster_state:ok with all 16384 slots served, sees
#                                               three masters and three replicas, none failing, and
#                                               every replica's link is up (30 s at most). Idempotent:
#                                               a created cluster only has its stopped nodes started
#                                               (they rejoin with their nodes.conf). Measured 2.7-4 s here.
#   scripts/brokers.sh redis-cluster-stop DIR [SIGNAL]
#                                               stop every node of DIR's cluster, in parallel.
#                                               redis-stop DIR/nK KILL and redis-start DIR/nK kill and
#                                               restart one node (it rejoins, as a replica if its
#                                               replica took over meanwhile).
#   scripts/brokers.sh redis-cluster-info DIR   one line per node of DIR, n1 first: "PORT ROLE PID",
#                                               ROLE master or replica as the live cluster sees it
#                                               ("master,fail" for a dead master not yet replaced),
#                                               PID "-" when the node is down.
#   scripts/brokers.sh rabbit-start DIR         start a PRIVATE RabbitMQ node whose state lives in DIR
#                                               and print its URL (amqp://guest:guest@127.0.0.1:PORT//).
#                                               The first start picks two free ports (AMQP and Erlang
#                                               distribution), names the node kombu-test-PORT@localhost
#                                               and writes DIR/rabbitmq.conf (a listener on
#                                               127.0.0.1:PORT only), an empty plugin list (no
#                                               management plugin) and an empty DIR/rabbitmq-env.conf
#                                               (so /etc/rabbitmq's is not read); HOME=DIR gives the
#                                               node an Erlang cookie of its own. Later starts reuse
#                                               all that and the data, so durable queues and
#                                               persistent messages survive rabbit-stop and
#                                               rabbit-start. Returns once the node runs (about 6 s).
#                                               Before the first start a test may put in DIR a file
#                                               rabbitmq.extra.conf (appended to rabbitmq.conf: TLS
#                                               listeners, auth_mechanisms ...) and a file plugins (one
#                                               plugin name a line, e.g. rabbitmq_auth_mechanism_ssl)
#                                               that becomes the node's plugin list.
#   scripts/brokers.sh rabbit-ctl DIR ARGS...   run rabbitmqctl ARGS against the node of DIR (its node
#                                               name and cookie), e.g. add_user, or
#                                               set_vm_memory_high_watermark to raise an alarm.
#   scripts/brokers.sh rabbit-stop DIR          stop the node of DIR (rabbitmqctl -n NODE stop, with
#                                               DIR's cookie); returns once it is gone. It addresses
#                                               no other node, so a shared broker is never touched.
#   scripts/brokers.sh rabbit-cluster-start DIR [N]
#                                               start a PRIVATE RabbitMQ cluster of N nodes (default 3)
#                                               in DIR/n1 ... DIR/nN, each a rabbit-start node (its own
#                                               name, ports and data) with one Erlang cookie shared by
#                                               all (DIR/cookie). The nodes start in parallel; then
#                                               n2..nN join n1 (stop_app, join_cluster, start_app).
#                                               Prints the failover URL list, Kombu's alternates:
#                                               amqp://guest:guest@127.0.0.1:P1//;amqp://...:P2//;...
#                                               Idempotent: a formed cluster is only started where a
#                                               node is down (a restarted node rejoins by itself).
#                                               Measured 1-2.5 min for 3 nodes on a busy 2-core VM.
#   scripts/brokers.sh rabbit-cluster-stop DIR  stop every node of DIR's cluster, in parallel.
#                                               rabbit-stop DIR/nK and rabbit-ctl DIR/nK address one
#                                               node (e.g. rabbit-ctl DIR/n1 list_queues name leader).
#
# By default the servers keep nothing on disk (save "", appendonly no): a restart starts empty. With
# the optional argument aof, the server writes an append-only file in DIR with an fsync after every
# write (appendonly yes, appendfsync always), so a SIGKILL loses no write it acknowledged and a
# restart reloads the data (the internal/faulttest Redis-restart tests use this). The PID of the
# running server is in DIR/redis.pid and its log in DIR/redis.log. When KOMBU_TEST_STATE_DIR is set
# (scripts/test.sh sets it), every DIR is recorded there, and scripts/test.sh stops them all on exit,
# even those of a test binary that was killed before its cleanup ran.
#
# Only processes started here are ever signalled: a PID is signalled only while its command line
# still names our port or our config file.

# shellcheck disable=SC2016 # the bash -c scripts below expand their own $0 $1
kb_say() { printf '%s\n' "${KB_NAME:-brokers.sh}: $*" >&2; }

kb_is_root() { [[ $(id -u) == 0 ]]; }

# kb_apt_install PKG...: install Debian packages (root only); apt-get update runs once per process.
kb_apt_install() {
	kb_is_root || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	local log=${KOMBU_TEST_STATE_DIR:-/tmp}/apt.log
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${KB_APT_UPDATED:-} ]]; then
		kb_say "apt-get update"
		if ! apt-get update -q >>"$log" 2>&1; then
			kb_say "apt-get update failed; last lines of $log:"
			tail -n 5 "$log" >&2
			return 1
		fi
		KB_APT_UPDATED=1
	fi
	kb_say "apt-get install -y $*"
	if ! apt-get install -y -q --no-install-recommends "$@" </dev/null >>"$log" 2>&1; then
		kb_say "apt-get install $* failed; last lines of $log:"
		tail -n 10 "$log" >&2
		return 1
	fi
}

# kb_port_open HOST PORT: something accepts TCP connections on HOST:PORT.
kb_port_open() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# kb_url_hostport URL DEFAULT_PORT: print "HOST PORT" of scheme://[user[:pass]@]host[:port][/path].
kb_url_hostport() {
	local hp=${1#*://}
	hp=${hp%%/*}
	hp=${hp##*@}
	local host=${hp%:*} port=${hp##*:}
	if [[ $hp != *:* ]]; then
		host=$hp port=$2
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

# kb_redis_ping HOST PORT: the server answers +PONG to an inline PING (no auth).
kb_redis_ping() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 &&
		IFS= read -r line <&3 && [[ $line == "+PONG"* ]]' "$1" "$2" 2>/dev/null
}

# kb_redis_ping_url URL: the server at URL answers PING (with its credentials when redis-cli exists).
kb_redis_ping_url() {
	if command -v redis-cli >/dev/null 2>&1; then
		[[ $(timeout 5 redis-cli -u "$1" ping 2>/dev/null) == PONG ]]
		return
	fi
	local host port
	read -r host port < <(kb_url_hostport "$1" 6379)
	kb_redis_ping "$host" "$port"
}

# kb_pid_args PID: the command line of PID (empty for a zombie or a missing process).
kb_pid_args() {
	if [[ -r /proc/$1/cmdline ]]; then
		tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline"
	elif [[ ! -d /proc/self ]]; then
		ps -o args= -p "$1" 2>/dev/null
	fi
}

# kb_redis_is_ours PID PORT DIR: PID is alive and is the redis-server of DIR. redis-server renames
# itself "redis-server 127.0.0.1:PORT" once started; before that its argv names DIR/redis.conf.
kb_redis_is_ours() {
	local args
	[[ -n $1 ]] || return 1
	args=$(kb_pid_args "$1")
	[[ $args == *redis* && ($args == *"127.0.0.1:$2"* || $args == *"$3/redis.conf"*) ]]
}

kb_free_port() {
	local port i
	for ((i = 0; i < 50; i++)); do
		port=$((21000 + RANDOM % 11000)) # below Linux's ephemeral range (32768-60999)
		kb_port_open 127.0.0.1 "$port" || {
			echo "$port"
			return 0
		}
	done
	return 1
}

# kb_free_cluster_port: a free port P for a Redis Cluster node whose cluster bus port, P+10000, is
# free too. P is in 21000-22767, so the bus port stays below Linux's ephemeral range.
kb_free_cluster_port() {
	local port i
	for ((i = 0; i < 50; i++)); do
		port=$((21000 + RANDOM % 1768))
		kb_port_open 127.0.0.1 "$port" || kb_port_open 127.0.0.1 $((port + 10000)) || {
			echo "$port"
			return 0
		}
	done
	return 1
}

# kb_redis_pid HOST PORT: print the process_id the server on HOST:PORT reports (INFO server).
kb_redis_pid() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "INFO server\r\n" >&3 &&
		while IFS= read -r line <&3; do
			if [[ $line == process_id:* ]]; then line=${line#process_id:}; echo "${line%$'"'"'\r'"'"'}"; exit 0; fi
		done; exit 1' "$1" "$2" 2>/dev/null
}

kb_redis_server_bin() {
	if [[ -n ${KOMBU_TEST_REDIS_SERVER:-} && -x ${KOMBU_TEST_REDIS_SERVER} ]]; then
		echo "$KOMBU_TEST_REDIS_SERVER"
	else
		command -v redis-server 2>/dev/null
	fi
}

# kb_redis_start DIR [aof]: see redis-start above. Prints the URL on stdout.
kb_redis_start() {
	local dir=$1 persist=${2:-} server port pid attempt tries=20 i extra='' pick=kb_free_port
	local persistence='appendonly no' what='nothing is persisted'
	case $persist in
	'') ;;
	aof)
		persistence=$'appendonly yes\nappendfsync always'
		what='append-only file, fsync on every write'
		;;
	*)
		kb_say "redis-start: unknown persistence '$persist' (expected: aof, or nothing)"
		return 2
		;;
	esac
	server=$(kb_redis_server_bin) || {
		kb_say "redis-server not found"
		return 1
	}
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd) || return 1
	if [[ -f $dir/redis.extra.conf ]]; then
		extra=$(<"$dir/redis.extra.conf")
		[[ $extra == *$'\n'"cluster-enabled yes"* || $extra == "cluster-enabled yes"* ]] && pick=kb_free_cluster_port
	fi
	if [[ -f $dir/redis.port ]]; then
		port=$(<"$dir/redis.port")
		tries=1
		pid=$(cat "$dir/redis.pid" 2>/dev/null)
		if kb_redis_is_ours "$pid" "$port" "$dir" && kb_redis_ping 127.0.0.1 "$port"; then
			echo "redis://127.0.0.1:$port/0"
			return 0
		fi
	fi
	if [[ -n ${KOMBU_TEST_STATE_DIR:-} ]] && ! grep -qxF "$dir" "$KOMBU_TEST_STATE_DIR/redis.dirs" 2>/dev/null; then
		echo "$dir" >>"$KOMBU_TEST_STATE_DIR/redis.dirs"
	fi
	for ((attempt = 0; attempt < tries; attempt++)); do
		if ((tries > 1)); then
			port=$($pick) || break
		fi
		cat >"$dir/redis.conf" <<-EOF
			# private test server written by scripts/brokers.sh; $what
			bind 127.0.0.1
			port $port
			save ""
			$persistence
			daemonize no
			dir $dir
			logfile ""
			$extra
		EOF
		echo "$port" >"$dir/redis.port"
		# Not daemonized, so $! is the server's own PID. stdin/stdout are detached so that a caller
		# reading our output (a Go test's exec.Command) does not wait for the server to exit.
		"$server" "$dir/redis.conf" </dev/null >>"$dir/redis.log" 2>&1 &
		pid=$!
		# Out of the job table: no "Killed" notice when a test kills it. Bash still reaps it.
		disown "$pid" 2>/dev/null
		echo "$pid" >"$dir/redis.pid"
		for ((i = 0; i < 200; i++)); do
			if kb_redis_ping 127.0.0.1 "$port"; then
				# Another server may have taken the port between kb_free_port and our bind.
				[[ $(kb_redis_pid 127.0.0.1 "$port") == "$pid" ]] && {
					echo "redis://127.0.0.1:$port/0"
					return 0
				}
				kb_say "port $port answers for another redis-server than ours ($pid)"
				break
			fi
			[[ -n $(kb_pid_args "$pid") ]] || break # exited (gone, or a zombie)
			sleep 0.05
		done
		kb_redis_stop "$dir" KILL
		kb_say "redis-server on port $port did not come up; last lines of $dir/redis.log:"
		tail -n 3 "$dir/redis.log" >&2
	done
	return 1
}

# kb_redis_stop DIR [TERM|KILL]: stop the server of DIR if it is running; wait until it is gone.
kb_redis_stop() {
	local dir=$1 sig=${2:-TERM} pid port i
	[[ -f $dir/redis.pid && -f $dir/redis.port ]] || return 0
	pid=$(<"$dir/redis.pid")
	port=$(<"$dir/redis.port")
	if kb_redis_is_ours "$pid" "$port" "$dir"; then
		kill "-$sig" "$pid" 2>/dev/null
		for ((i = 0; i < 200; i++)); do
			kb_redis_is_ours "$pid" "$port" "$dir" || break
			((i == 100)) && kill -KILL "$pid" 2>/dev/null
			sleep 0.05
		done
		if kb_redis_is_ours "$pid" "$port" "$dir"; then
			kb_say "redis-server $pid (port $port) would not stop"
			return 1
		fi
	fi
	rm -f "$dir/redis.pid"
	return 0
}

# kb_redis_cli_bin: the redis-cli beside the redis-server in use, else the one in PATH.
kb_redis_cli_bin() {
	local server
	server=$(kb_redis_server_bin)
	if [[ -n $server && -x ${server%/*}/redis-cli ]]; then
		echo "${server%/*}/redis-cli"
	else
		command -v redis-cli 2>/dev/null
	fi
}

# kb_rcli PORT ARGS...: redis-cli ARGS against 127.0.0.1:PORT, giving up after 5 s.
kb_rcli() {
	local port=$1
	shift
	timeout 5 "${KB_REDIS_CLI:-redis-cli}" -h 127.0.0.1 -p "$port" "$@" </dev/null 2>/dev/null
}

# kb_redis_cluster_ports DIR: the ports of DIR's cluster nodes (DIR/n1 ... DIR/n6), one a line.
kb_redis_cluster_ports() {
	local d
	for d in "$1"/n[1-6]; do
		[[ -f $d/redis.port ]] && cat "$d/redis.port"
	done
}

# kb_redis_cluster_ready DIR: every node of DIR answers, says cluster_state:ok, sees all 16384
# slots served, and sees six nodes, none failing, three of them masters and three replicas (so
# gossip has told it every role); and every replica's link to its master is up.
kb_redis_cluster_ready() {
	local port info n=0
	for port in $(kb_redis_cluster_ports "$1"); do
		info=$(kb_rcli "$port" cluster info) || return 1
		[[ $info == *cluster_state:ok* && $info == *cluster_slots_ok:16384* ]] || return 1
		info=$(kb_rcli "$port" cluster nodes) || return 1
		[[ $(awk '$3 !~ /fail|handshake|noaddr/ { r[$3 ~ /master/ ? "m" : "s"]++ }
			END { print r["m"] + 0, r["s"] + 0 }' <<<"$info") == "3 3" ]] || return 1
		info=$(kb_rcli "$port" info replication) || return 1
		[[ $info == *role:master* || $info == *master_link_status:up* ]] || return 1
		n=$((n + 1))
	done
	((n == 6))
}

# kb_redis_cluster_nodes DIR: CLUSTER NODES as seen by the first node of DIR that answers.
kb_redis_cluster_nodes() {
	local port out
	for port in $(kb_redis_cluster_ports "$1"); do
		out=$(kb_rcli "$port" cluster nodes) && [[ -n $out ]] && {
			printf '%s\n' "$out" | tr -d '\r'
			return 0
		}
	done
	kb_say "no node of the cluster in $1 answers"
	return 1
}

# kb_redis_cluster_url DIR: redis+cluster://127.0.0.1:P1,... listing the live masters, in slot order.
kb_redis_cluster_url() {
	local nodes
	nodes=$(kb_redis_cluster_nodes "$1") || return 1
	awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { split($2, a, "@"); split($9, s, "-"); print s[1], a[1] }' \
		<<<"$nodes" | sort -n | awk '{ u = u (NR > 1 ? "," : "") $2 } END { print "redis+cluster://" u }'
}

# kb_redis_cluster_info DIR: one line per node of DIR, n1 first: "PORT ROLE PID", ROLE master or
# replica as the live cluster sees it (master,fail while a dead master has not been replaced), PID
# that of our running server or - when it is down.
kb_redis_cluster_info() {
	local dir=$1 nodes d port pid role
	nodes=$(kb_redis_cluster_nodes "$dir") || return 1
	for d in "$dir"/n[1-6]; do
		[[ -f $d/redis.port ]] || continue
		port=$(<"$d/redis.port")
		pid=$(cat "$d/redis.pid" 2>/dev/null)
		kb_redis_is_ours "$pid" "$port" "$d" || pid=-
		role=$(awk -v hp="127.0.0.1:$port" '{ split($2, a, "@") } a[1] == hp {
			r = ($3 ~ /master/) ? "master" : "replica"
			if ($3 ~ /fail/ && $3 !~ /fail\?/) r = r ",fail"
			print r }' <<<"$nodes")
		echo "$port ${role:-unknown} $pid"
	done
}

# kb_redis_cluster_start DIR: see redis-cluster-start above. Prints the URL on stdout.
kb_redis_cluster_start() {
	local dir=$1 i hosts=() t0=$SECONDS
	KB_REDIS_CLI=$(kb_redis_cli_bin) || {
		kb_say "redis-cli not found"
		return 1
	}
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd) || return 1
	for ((i = 1; i <= 6; i++)); do
		mkdir -p "$dir/n$i" || return 1
		# Read by kb_redis_start on every start, so a restarted node is still a cluster node.
		[[ -f $dir/n$i/redis.extra.conf ]] || cat >"$dir/n$i/redis.extra.conf" <<-EOF
			# node $i of the Redis Cluster in $dir (scripts/brokers.sh redis-cluster-start)
			protected-mode no
			cluster-enabled yes
			cluster-config-file nodes.conf
			cluster-node-timeout 2000
			# A replica always stands for election (the default, 10, can leave a master that a test
			# killed just after its replica resynced without a successor).
			cluster-replica-validity-factor 0
			# A new replica syncs at once (the default waits 5 s for more replicas to share the transfer).
			repl-diskless-sync-delay 0
			# Nothing persisted: a replica deletes the RDB file of its sync, so a restart starts empty.
			rdb-del-sync-files yes
		EOF
		# One after the other: a node listens before the next one looks for a free port. A running
		# node is left as it is; a stopped one starts again with its nodes.conf and rejoins.
		kb_redis_start "$dir/n$i" >/dev/null || {
			kb_say "redis-cluster-start: node $i of $dir did not start"
			return 1
		}
		hosts+=("127.0.0.1:$(<"$dir/n$i/redis.port")")
	done
	if [[ ! -f $dir/cluster.created ]]; then
		if ! timeout 60 "$KB_REDIS_CLI" --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes \
			</dev/null >>"$dir/create.log" 2>&1; then
			kb_say "redis-cluster-start: redis-cli --cluster create failed; last lines of $dir/create.log:"
			tail -n 5 "$dir/create.log" >&2
			return 1
		fi
		: >"$dir/cluster.created"
	fi
	for ((i = 0; i < 600; i++)); do
		if kb_redis_cluster_ready "$dir"; then
			kb_redis_cluster_url "$dir"
			return
		fi
		sleep 0.05
	done
	kb_say "redis-cluster-start: the cluster in $dir is not ready after $((SECONDS - t0)) s:"
	kb_redis_cluster_info "$dir" >&2
	return 1
}

# kb_redis_cluster_stop DIR [SIGNAL]: stop every node of DIR's cluster, in parallel.
kb_redis_cluster_stop() {
	local dir=$1 sig=${2:-TERM} d dirs=()
	for d in "$dir"/n[1-6]; do
		[[ -f $d/redis.port ]] && dirs+=("$d")
	done
	kb_each_dir dirs kb_redis_stop "$sig"
}

# kb_each_dir ARRAY CMD [ARGS...]: run CMD D ARGS... for every D in the array named ARRAY, all at
# once; fails if any of them failed.
kb_each_dir() {
	local -n kb_dirs=$1
	local d pids=() p rc=0
	shift
	for d in "${kb_dirs[@]}"; do
		"$1" "$d" "${@:2}" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	return $rc
}

# kb_rabbit_bin NAME: the path of a RabbitMQ command. The Debian wrappers in /usr/sbin switch to the
# rabbitmq user and its home and cookie; the scripts they call do not.
kb_rabbit_bin() {
	if [[ -x /usr/lib/rabbitmq/bin/$1 ]]; then
		echo "/usr/lib/rabbitmq/bin/$1"
	else
		command -v "$1" 2>/dev/null
	fi
}

# kb_rabbit_env DIR: the environment of DIR's node, for env(1).
kb_rabbit_env() {
	local dir=$1 port node
	port=$(<"$dir/rabbit.port") node=$(<"$dir/rabbit.node")
	printf '%s\n' "HOME=$dir" "RABBITMQ_NODENAME=$node" "RABBITMQ_NODE_PORT=$port" \
		"RABBITMQ_DIST_PORT=$(<"$dir/rabbit.distport")" "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
		"RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
		"RABBITMQ_MNESIA_BASE=$dir/mnesia" "RABBITMQ_LOG_BASE=$dir/log" "RABBITMQ_PID_FILE=$dir/rabbit.pid" \
		"ERL_EPMD_ADDRESS=127.0.0.1"
}

# kb_rabbit_prepare DIR [PORT...]: on the first start of DIR's node, choose its ports (none of the
# PORTs given: ports other nodes of a cluster took but do not listen on yet) and write its
# configuration. Does nothing once DIR/rabbit.node exists.
kb_rabbit_prepare() {
	local dir=$1 port dist
	shift
	[[ -f $dir/rabbit.node ]] && return 0
	port=$(kb_free_port) || return 1
	while [[ " $* " == *" $port "* ]]; do port=$(kb_free_port) || return 1; done
	dist=$(kb_free_port) || return 1
	while [[ $dist == "$port" || " $* " == *" $dist "* ]]; do dist=$(kb_free_port) || return 1; done
	echo "$port" >"$dir/rabbit.port"
	echo "$dist" >"$dir/rabbit.distport"
	echo "kombu-test-$port@localhost" >"$dir/rabbit.node"
	echo "listeners.tcp.local = 127.0.0.1:$port" >"$dir/rabbitmq.conf"
	if [[ -f $dir/rabbitmq.extra.conf ]]; then
		cat "$dir/rabbitmq.extra.conf" >>"$dir/rabbitmq.conf"
	fi
	if [[ -f $dir/plugins ]]; then
		printf '[%s].\n' "$(grep -v '^[[:space:]]*$' "$dir/plugins" | paste -sd, -)" >"$dir/enabled_plugins"
	else
		echo "[]." >"$dir/enabled_plugins"
	fi
	: >"$dir/rabbitmq-env.conf"
}

# kb_rabbit_start DIR: see rabbit-start above. Prints the URL on stdout.
kb_rabbit_start() {
	local dir=$1 server ctl port dist envs
	server=$(kb_rabbit_bin rabbitmq-server) && ctl=$(kb_rabbit_bin rabbitmqctl) || {
		kb_say "rabbitmq-server not found"
		return 1
	}
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd) || return 1
	kb_rabbit_prepare "$dir" || return 1
	if [[ -n ${KOMBU_TEST_STATE_DIR:-} ]] && ! grep -qxF "$dir" "$KOMBU_TEST_STATE_DIR/rabbit.dirs" 2>/dev/null; then
		echo "$dir" >>"$KOMBU_TEST_STATE_DIR/rabbit.dirs"
	fi
	port=$(<"$dir/rabbit.port")
	mapfile -t envs < <(kb_rabbit_env "$dir")
	if ! kb_port_open 127.0.0.1 "$port"; then
		env "${envs[@]}" "$server" -detached </dev/null >>"$dir/start.log" 2>&1 || {
			kb_say "rabbitmq-server -detached failed; see $dir/start.log"
			return 1
		}
		sleep 0.5
	fi
	if ! env "${envs[@]}" timeout 120 "$ctl" -n "$(<"$dir/rabbit.node")" wait "$dir/rabbit.pid" --timeout 90 \
		</dev/null >>"$dir/start.log" 2>&1; then
		kb_say "RabbitMQ node $(<"$dir/rabbit.node") did not come up; see $dir/start.log and $dir/log"
		return 1
	fi
	echo "amqp://guest:guest@127.0.0.1:$port//"
}

# kb_rabbit_stop DIR: stop the node of DIR if it runs; wait until it is gone.
kb_rabbit_stop() {
	local dir=$1 ctl envs
	[[ -f $dir/rabbit.node && -f $dir/rabbit.pid ]] || return 0
	ctl=$(kb_rabbit_bin rabbitmqctl) || return 1
	mapfile -t envs < <(kb_rabbit_env "$dir")
	env "${envs[@]}" timeout 120 "$ctl" -n "$(<"$dir/rabbit.node")" stop "$dir/rabbit.pid" </dev/null >>"$dir/stop.log" 2>&1
	if kb_port_open 127.0.0.1 "$(<"$dir/rabbit.port")"; then
		kb_say "RabbitMQ node $(<"$dir/rabbit.node") would not stop; see $dir/stop.log"
		return 1
	fi
	rm -f "$dir/rabbit.pid"
}

# kb_rabbit_cluster_start DIR [N]: see rabbit-cluster-start above. Prints the URL list on stdout.
kb_rabbit_cluster_start() {
	local dir=$1 n=${2:-3} i taken=() urls=() pids=() first rc=0 members
	[[ $n =~ ^[1-9][0-9]*$ ]] || {
		kb_say "rabbit-cluster-start: bad node count '$n'"
		return 2
	}
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd) || return 1
	if [[ ! -f $dir/cookie ]]; then
		# The Erlang cookie every node reads from its HOME ($dir/nK).
		LC_ALL=C tr -dc 'A-Z' </dev/urandom 2>/dev/null | head -c 20 >"$dir/cookie"
		chmod 400 "$dir/cookie"
	fi
	for ((i = 1; i <= n; i++)); do
		mkdir -p "$dir/n$i" || return 1
		if [[ ! -f $dir/n$i/.erlang.cookie ]]; then
			cp "$dir/cookie" "$dir/n$i/.erlang.cookie" && chmod 400 "$dir/n$i/.erlang.cookie" || return 1
		fi
		kb_rabbit_prepare "$dir/n$i" "${taken[@]}" || return 1
		taken+=("$(<"$dir/n$i/rabbit.port")" "$(<"$dir/n$i/rabbit.distport")")
	done
	for ((i = 1; i <= n; i++)); do
		kb_rabbit_start "$dir/n$i" >"$dir/n$i/url" &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || rc=1
	done
	((rc == 0)) || {
		kb_say "rabbit-cluster-start: a node of $dir did not start"
		return 1
	}
	first=$(<"$dir/n1/rabbit.node")
	for ((i = 2; i <= n; i++)); do
		members=$(kb_rabbit_ctl "$dir/n$i" eval 'rabbit_nodes:all().' 2>/dev/null)
		[[ $members == *"'$first'"* ]] && continue
		{
			kb_rabbit_ctl "$dir/n$i" stop_app &&
				kb_rabbit_ctl "$dir/n$i" join_cluster "$first" &&
				kb_rabbit_ctl "$dir/n$i" start_app
		} >>"$dir/n$i/start.log" 2>&1 || {
			kb_say "rabbit-cluster-start: $(<"$dir/n$i/rabbit.node") could not join $first; see $dir/n$i/start.log"
			return 1
		}
	done
	for ((i = 1; i <= n; i++)); do
		urls+=("$(<"$dir/n$i/url")")
	done
	(
		IFS=';'
		echo "${urls[*]}"
	)
}

# kb_rabbit_cluster_stop DIR: stop every node of DIR's cluster, in parallel.
kb_rabbit_cluster_stop() {
	local dir=$1 d dirs=()
	for d in "$dir"/n*/; do
		[[ -f $d/rabbit.node ]] && dirs+=("${d%/}")
	done
	kb_each_dir dirs kb_rabbit_stop
}

# kb_rabbit_ctl DIR ARGS...: rabbitmqctl ARGS against the node of DIR.
kb_rabbit_ctl() {
	local dir=$1 ctl envs
	shift
	[[ -f $dir/rabbit.node ]] || {
		kb_say "no RabbitMQ node in $dir"
		return 1
	}
	ctl=$(kb_rabbit_bin rabbitmqctl) || return 1
	mapfile -t envs < <(kb_rabbit_env "$dir")
	env "${envs[@]}" timeout 60 "$ctl" -n "$(<"$dir/rabbit.node")" "$@" </dev/null
}

# kb_amqp_ok URL: an AMQP 0-9-1 server answers at URL. With a Python that has the amqp module
# (KOMBU_TEST_PYTHON) this logs in with the URL's credentials; otherwise it checks that the server
# answers the protocol header with a frame.
kb_amqp_ok() {
	local url=$1 host port
	read -r host port < <(kb_url_hostport "$url" 5672)
	kb_port_open "$host" "$port" || return 1
	if [[ -n ${KOMBU_TEST_PYTHON:-} ]]; then
		timeout 20 "$KOMBU_TEST_PYTHON" - "$url" <<-'EOF' >/dev/null 2>&1
			import sys, urllib.parse, amqp
			u = urllib.parse.urlparse(sys.argv[1])
			vhost = urllib.parse.unquote(u.path[1:]) or "/"
			c = amqp.Connection(host="%s:%d" % (u.hostname or "127.0.0.1", u.port or 5672),
			    userid=urllib.parse.unquote(u.username or "guest"),
			    password=urllib.parse.unquote(u.password or "guest"),
			    virtual_host=vhost, connect_timeout=10)
			c.connect()
			c.close()
		EOF
		return
	fi
	timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "AMQP\x00\x00\x09\x01" >&3 &&
		IFS= read -r -d "" -N 1 b <&3 && [[ $b == $'"'"'\x01'"'"' ]]' "$host" "$port" 2>/dev/null
}

# kb_mask_url URL: URL with its password replaced by ***.
kb_mask_url() {
	sed -E 's#(://[^:/@]*:)[^@/]*@#\1***@#' <<<"$1"
}

kb_main() {
	KB_NAME=brokers.sh
	local cmd=${1:-} dir=${2:-}
	case $cmd in
	redis-start | redis-stop | redis-restart | redis-cluster-start | redis-cluster-stop | redis-cluster-info | rabbit-start | rabbit-stop | rabbit-ctl | rabbit-cluster-start | rabbit-cluster-stop)
		[[ -n $dir ]] || {
			kb_say "usage: $0 $cmd DIR"
			return 2
		}
		;;
	-h | --help | help)
		sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		return 0
		;;
	*)
		kb_say "usage: $0 redis-start DIR [aof] | redis-stop DIR [SIGNAL] | redis-restart DIR [aof] | redis-cluster-start DIR | redis-cluster-stop DIR [SIGNAL] | redis-cluster-info DIR | rabbit-start DIR | rabbit-ctl DIR ARGS... | rabbit-stop DIR | rabbit-cluster-start DIR [N] | rabbit-cluster-stop DIR"
		return 2
		;;
	esac
	case $cmd in
	redis-start) kb_redis_start "$dir" "${3:-}" ;;
	redis-stop) kb_redis_stop "$dir" "${3:-TERM}" ;;
	redis-restart) kb_redis_stop "$dir" KILL && kb_redis_start "$dir" "${3:-}" ;;
	redis-cluster-start) kb_redis_cluster_start "$dir" ;;
	redis-cluster-stop) kb_redis_cluster_stop "$dir" "${3:-TERM}" ;;
	redis-cluster-info) KB_REDIS_CLI=$(kb_redis_cli_bin) && kb_redis_cluster_info "$dir" ;;
	rabbit-start) kb_rabbit_start "$dir" ;;
	rabbit-stop) kb_rabbit_stop "$dir" ;;
	rabbit-ctl) kb_rabbit_ctl "$dir" "${@:3}" ;;
	rabbit-cluster-start) kb_rabbit_cluster_start "$dir" "${3:-3}" ;;
	rabbit-cluster-stop) kb_rabbit_cluster_stop "$dir" ;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	kb_main "$@"
fi
