#!/usr/bin/env bash
# scripts/test.sh: THE test command of this project.
#
# Usage: ./scripts/test.sh [go test flags] [packages]
#        ./scripts/test.sh --help
#
#   ./scripts/test.sh                                  everything: ./...
#   ./scripts/test.sh ./hub/ ./transport/...           only these packages
#   ./scripts/test.sh -run 'TestPublish' ./messaging/  flags go straight to go test
#   KOMBU_REQUIRE_BROKERS=1 ./scripts/test.sh          a missing broker fails the run (CI does this):
#                                                      Redis, RabbitMQ, rabbitmqctl for a local RabbitMQ,
#                                                      and Python's kombu are then all required
#
# Steps: find or start the brokers, then gofmt check, go vet (linux, darwin, freebsd) and
#   go test -race -count=1 -timeout 15m -v [your args]
# Every step runs even if an earlier one failed; a summary closes the run, and the exit status is 0
# only if every step passed (2 if a required broker or tool could not be had).
#
# Arguments are passed to `go test` as given, after the defaults above, so a later flag wins
# (-count=3, -timeout=30m, -race=false). Arguments that look like packages (., ./x, ../x, x/...,
# or starting with the module path) also restrict gofmt and go vet to those packages; with none,
# ./... is used. With -json the output of go test is passed through untouched; otherwise the `=== RUN`
# and `--- PASS` lines are dropped and `--- SKIP` lines (with their reasons) are kept.
#
# Brokers and tools (when we are root, missing Debian packages are installed with apt-get):
#   Redis     KOMBU_TEST_REDIS_URL is used if it is set and answers PING. Otherwise a PRIVATE
#             redis-server is started on a free 127.0.0.1 port (never 6379), with nothing persisted,
#             and stopped on exit. A system Redis on 6379 is never touched.
#   Redis Cluster  KOMBU_TEST_REDIS_CLUSTER_URL if it is set and says cluster_state:ok. Otherwise six
#             private redis-servers (3 masters, 3 replicas) on free 127.0.0.1 ports, joined with
#             redis-cli --cluster create, stopped on exit (a few seconds to start; see README).
#   RabbitMQ  KOMBU_TEST_AMQP_URL if it is set and answers; else amqp://guest:guest@127.0.0.1:5672//
#             if that answers; else rabbitmq-server is started (-detached), and stopped on exit
#             (only if this script started it).
#   Python    /usr/bin/python3 with the kombu, redis, amqp, msgpack, yaml, brotli, zstandard and
#             celery modules (Debian's python3-kombu, python3-redis, python3-amqp, python3-msgpack,
#             python3-yaml, python3-brotli, python3-zstandard, python3-celery), for the
#             interoperability tests.
#   gcc       -race needs cgo and a C compiler; without one the tests run without -race, loudly
#             (with KOMBU_REQUIRE_BROKERS=1 that is a failure too).
#   RabbitMQ management API  KOMBU_TEST_AMQP_MANAGEMENT_URL if it is set; else http://HOST:15672 of
#             the AMQP broker if it answers; else, for a local broker, `rabbitmq-plugins enable
#             rabbitmq_management` (left enabled: it is how `kombu queues` and `kombu top` list queues
#             on RabbitMQ). Without it the CLI's listing test skips and says why.
#   tmux      for the CLI's terminal tests (kombu top, progress bars), run in a real terminal.
#   Folder    (filesystem transport) KOMBU_TEST_FILESYSTEM_DIR if set, else a folder in this run's
#             state dir, checked for rename and flock; its interop tests also need Python's kombu.
#   SQL       (transport/sqla) PostgreSQL 127.0.0.1:5432 and MariaDB 127.0.0.1:3306, database test,
#             found or installed and started; python3-sqlalchemy, -psycopg2, -pymysql for interop.
#   SQS       KOMBU_TEST_SQS_URL if set; else a private goaws v0.4.5 (built once from the Go module proxy)
#             on a free 127.0.0.1 port, stopped on exit; python3-boto3 and python3-pycurl for the interop.
#
# Variables the tests see (all exported to go test):
#   KOMBU_TEST_REDIS_URL          redis://127.0.0.1:PORT/0 (unset if no Redis could be had)
#   KOMBU_TEST_REDIS_SERVER       path of the redis-server binary (set whenever one exists)
#   KOMBU_TEST_REDIS_CTL          path of scripts/brokers.sh: `$KOMBU_TEST_REDIS_CTL redis-start DIR`
#                                 gives a test a private Redis of its own to kill and restart
#                                 (redis-stop DIR [KILL], redis-restart DIR; `aof` after DIR makes
#                                 it persist every write); see that file. Prefer this for tests
#                                 that kill Redis: other packages' tests run in parallel against
#                                 KOMBU_TEST_REDIS_URL.
#   Set only when KOMBU_TEST_REDIS_URL is the private server started here:
#   KOMBU_TEST_REDIS_PORT         its port
#   KOMBU_TEST_REDIS_DIR          its state dir (redis.conf, redis.log, redis.pid)
#   KOMBU_TEST_REDIS_PIDFILE      file holding the PID of the running server (changes on restart)
#   KOMBU_TEST_REDIS_STOP_CMD     sh command: SIGKILL the server, return once it is gone
#   KOMBU_TEST_REDIS_START_CMD    sh command: start it again on the same port, return once it
#                                 answers PING (it starts empty: nothing is persisted)
#   KOMBU_TEST_REDIS_RESTART_CMD  sh command: STOP then START
#   KOMBU_TEST_REDIS_CLUSTER_URL  redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3: the masters
#                                 of a PRIVATE 6-node Redis Cluster (3 masters, 3 replicas, nothing
#                                 persisted, cluster-node-timeout 2000) started here with
#                                 `brokers.sh redis-cluster-start DIR` and stopped on exit; or the
#                                 URL given, if its first node says cluster_state:ok. Unset if no
#                                 cluster could be had. Shared by every package's tests: tests that
#                                 kill nodes start their own (internal/testbroker/rediscluster.Start).
#   KOMBU_TEST_REDIS_CLUSTER_DIR  that cluster's state dir (DIR/n1 ... DIR/n6: redis.conf,
#                                 nodes.conf, redis.log, redis.pid, redis.port); passed through when
#                                 the URL is given, else set only for the private cluster
#   KOMBU_TEST_AMQP_URL           amqp://user:pass@host:port/vhost (unset if no RabbitMQ)
#   KOMBU_TEST_RABBITMQCTL        path of a working rabbitmqctl for that broker, when it is local
#                                 (for `rabbitmqctl close_connection`); unset if none works
#   KOMBU_TEST_RABBIT_CTL         path of scripts/brokers.sh, when rabbitmq-server is installed:
#                                 `$KOMBU_TEST_RABBIT_CTL rabbit-start DIR` gives a test a PRIVATE
#                                 RabbitMQ node (its own node name, ports, data, cookie; no
#                                 management plugin) to stop and start (rabbit-stop DIR); see that
#                                 file. Tests that stop a broker use this, never the shared one.
#   KOMBU_TEST_AMQP_MANAGEMENT_URL  http://host:15672 of that broker's management API, when it
#                                 answers (unset otherwise)
#   KOMBU_TEST_PYTHON             /usr/bin/python3 when it imports kombu, redis and amqp (the
#                                 other modules missing are reported, and their tests say so)
#   KOMBU_TEST_FILESYSTEM_DIR     a writable folder (rename, flock) under which the filesystem
#                                 transport's tests make their data folders
#   KOMBU_TEST_POSTGRES_URL       sqla+postgresql://postgres@127.0.0.1:5432/test (unset if none)
#   KOMBU_TEST_MYSQL_URL          sqla+mysql://root@127.0.0.1:3306/test (unset if none)
#   KOMBU_TEST_SQS_URL            sqs://x:x@127.0.0.1:PORT, the SQS emulator (unset if none)
#   KOMBU_TEST_SQS_GOAWS          path of the goaws binary, for tests that start and kill their own
#   KOMBU_TEST_STATE_DIR          this run's temp dir (removed on exit)
#   KOMBU_REQUIRE_BROKERS         passed through: 1 makes the tests fail instead of skip
#   KOMBU_HEAVY                   passed through: 1 runs the heavy sizes (transport/redis's
#                                 orphan-restore-while-draining test: 15,000 orphans, not 1,500)
#   KOMBU_TEST_RABBIT_CLUSTER     passed through, off by default: 1 runs the RabbitMQ cluster tests
#                                 (messaging's TestIntegrationRabbitClusterFailover), which start a
#                                 private 3-node cluster with `brokers.sh rabbit-cluster-start DIR`
#                                 (needs KOMBU_TEST_RABBIT_CTL) and stop it: 2-4 minutes on a busy
#                                 2-core machine. KOMBU_TEST_RABBIT_CLUSTER_DIR reuses a cluster dir.
#
# Everything this script starts is stopped on exit (EXIT, INT, TERM), by PID (go test by the process
# group it runs in), and nothing else.

# shellcheck disable=SC2317 # cleanup and the step functions are reached through trap and step
set -uo pipefail
KB_NAME=test.sh

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }
case ${1:-} in -h | --help) usage; exit 0 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
cd "$root" || exit 2
# shellcheck source=scripts/brokers.sh
source "$root/scripts/brokers.sh"

hr() { printf '\n==== %s\n' "$*" >&2; }
die() {
	kb_say "FATAL: $*"
	exit 2
}

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || die "go is not installed (looked in PATH and /usr/local/go/bin)"
# rabbitmq-server and rabbitmqctl live in /usr/sbin, which a non-login PATH may lack.
for d in /usr/local/sbin /usr/sbin /sbin; do
	[[ :$PATH: == *:$d:* ]] || PATH=$PATH:$d
done
module=$(go list -m 2>/dev/null) || die "cannot read the module path (go list -m) in $root"

# ---- arguments: split out package patterns (for gofmt/vet); everything goes to go test --------------
go_args=("$@")
pkgs=()
json=0
takes_value=" -run -skip -bench -benchtime -count -cpu -parallel -timeout -tags -coverprofile -coverpkg
 -covermode -cpuprofile -memprofile -blockprofile -mutexprofile -trace -outputdir -o -fuzz -fuzztime
 -fuzzminimizetime -shuffle -list -exec -p -vet -ldflags -gcflags -asmflags -mod -modfile -overlay
 -pkgdir -toolexec -blockprofilerate -memprofilerate -mutexprofilefraction "
skip_next=0
for a in "$@"; do
	if ((skip_next)); then
		skip_next=0
		continue
	fi
	case $a in
	-json | --json | -json=true) json=1 ;;
	-*=*) ;;
	-*)
		f=${a#-}
		[[ $takes_value == *" -${f#-} "* ]] && skip_next=1
		;;
	. | ./* | ../* | *...* | "$module" | "$module"/*) pkgs+=("$a") ;;
	esac
done
if ((${#pkgs[@]} == 0)); then
	pkgs=(./...)
	go_args+=(./...)
fi

# ---- state and teardown -----------------------------------------------------------------------------
state=$(mktemp -d "${TMPDIR:-/tmp}/kombu-test.XXXXXX") || die "mktemp failed"
export KOMBU_TEST_STATE_DIR=$state
rabbit_started=0 epmd_was_running=1 gotest_pgid=""

cleanup() {
	local rc=$? dir i
	trap - EXIT INT TERM
	if [[ -n $gotest_pgid ]]; then
		kb_say "interrupted: stopping go test (process group $gotest_pgid)"
		# SIGINT first: go test then removes its build dir. TERM, then KILL, if it lingers.
		kill -INT -- "-$gotest_pgid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 -- "-$gotest_pgid" 2>/dev/null || break
			((i == 30)) && kill -TERM -- "-$gotest_pgid" 2>/dev/null
			((i == 60)) && kill -KILL -- "-$gotest_pgid" 2>/dev/null
			sleep 0.1
		done
	fi
	if [[ -f $state/redis.dirs ]]; then
		while IFS= read -r dir; do
			kb_redis_stop "$dir" TERM
		done < <(tac "$state/redis.dirs")
	fi
	if [[ -f $state/rabbit.dirs ]]; then
		while IFS= read -r dir; do
			kb_rabbit_stop "$dir"
		done < <(tac "$state/rabbit.dirs")
	fi
	if ((rabbit_started)); then
		kb_say "stopping the rabbitmq-server this run started"
		# shutdown returns once the Erlang VM has exited.
		timeout 120 rabbitmqctl shutdown >/dev/null 2>&1 || kb_say "rabbitmqctl shutdown failed"
		if ((!epmd_was_running)) && command -v epmd >/dev/null 2>&1; then
			epmd -kill >/dev/null 2>&1 # the Erlang port mapper that the node started
		fi
	fi
	rm -rf "$state"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unset KOMBU_TEST_REDIS_PORT KOMBU_TEST_REDIS_DIR KOMBU_TEST_REDIS_PIDFILE KOMBU_TEST_REDIS_STOP_CMD \
	KOMBU_TEST_REDIS_START_CMD KOMBU_TEST_REDIS_RESTART_CMD KOMBU_TEST_RABBITMQCTL KOMBU_TEST_RABBIT_CTL
require=${KOMBU_REQUIRE_BROKERS:-0}
[[ $require == 1 ]] || require=0
missing=()
redis_desc="" amqp_desc="" python_desc=""

# ---- Python (first: the AMQP check logs in with it) -------------------------------------------------
hr "brokers and tools"
py=/usr/bin/python3
# kombu, redis, amqp: Kombu and its two transports, for the Redis and AMQP interop tests (and the
# AMQP login check below). msgpack and yaml: Kombu's serializers; brotli and zstandard: its
# compressors; the serializer and compression interop tests exchange data with them (apt-get does not
# bring them with python3-kombu). celery: a real worker and client for messaging's Celery test.
py_core='kombu redis amqp'
py_extra='msgpack yaml brotli zstandard celery'
py_missing() { # the modules of "$@" that $py cannot import
	local m
	for m in "$@"; do
		"$py" -c "import $m" >/dev/null 2>&1 || printf '%s ' "$m"
	done
}
py_pkgs() { # Debian packages of modules, space-separated
	local m out=""
	for m in "$@"; do out+="python3-$m "; done
	printf '%s' "${out% }"
}
if [[ -x $py ]]; then
	want=$(py_missing $py_core $py_extra)
else
	want="$py_core $py_extra"
fi
if [[ -n $want ]] && kb_is_root; then
	# shellcheck disable=SC2046,SC2086
	kb_apt_install python3 $(py_pkgs $want)
	want=$(py_missing $py_core $py_extra)
fi
if [[ -x $py && -z $(py_missing $py_core) ]]; then
	export KOMBU_TEST_PYTHON=$py
	python_desc="$py (kombu $("$py" -c 'import kombu; print(kombu.__version__)' 2>/dev/null))"
	if [[ -n $want ]]; then
		python_desc+=", without ${want% }"
		missing+=("python modules: $py cannot import ${want% } (apt-get install $(py_pkgs $want))")
	fi
else
	unset KOMBU_TEST_PYTHON
	missing+=("python3-kombu: $py cannot import ${want% } (apt-get install $(py_pkgs $want))")
fi

# ---- Redis ------------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 && [[ -z ${KOMBU_TEST_REDIS_SERVER:-} ]] && kb_is_root; then
	kb_apt_install redis-server
fi
if server=$(kb_redis_server_bin) && [[ -n $server ]]; then
	export KOMBU_TEST_REDIS_SERVER=$server
	export KOMBU_TEST_REDIS_CTL=$root/scripts/brokers.sh
else
	unset KOMBU_TEST_REDIS_SERVER KOMBU_TEST_REDIS_CTL
fi
if [[ -n ${KOMBU_TEST_REDIS_URL:-} ]] && kb_redis_ping_url "$KOMBU_TEST_REDIS_URL"; then
	redis_desc="$(kb_mask_url "$KOMBU_TEST_REDIS_URL") (given in KOMBU_TEST_REDIS_URL)"
else
	[[ -n ${KOMBU_TEST_REDIS_URL:-} ]] &&
		kb_say "KOMBU_TEST_REDIS_URL=$(kb_mask_url "$KOMBU_TEST_REDIS_URL") does not answer PING; starting a private server instead"
	unset KOMBU_TEST_REDIS_URL
	if [[ -n ${KOMBU_TEST_REDIS_SERVER:-} ]]; then
		rdir=$state/redis
		# Not in $(...): the server stays a child of this shell, which reaps it on exit.
		if kb_redis_start "$rdir" >"$state/redis.url"; then
			KOMBU_TEST_REDIS_URL=$(<"$state/redis.url")
			KOMBU_TEST_REDIS_PORT=$(<"$rdir/redis.port")
			export KOMBU_TEST_REDIS_URL KOMBU_TEST_REDIS_PORT
			export KOMBU_TEST_REDIS_DIR=$rdir
			export KOMBU_TEST_REDIS_PIDFILE=$rdir/redis.pid
			q_ctl=$(printf '%q' "$root/scripts/brokers.sh")
			q_dir=$(printf '%q' "$rdir")
			export KOMBU_TEST_REDIS_STOP_CMD="$q_ctl redis-stop $q_dir KILL"
			export KOMBU_TEST_REDIS_START_CMD="$q_ctl redis-start $q_dir >/dev/null"
			export KOMBU_TEST_REDIS_RESTART_CMD="$q_ctl redis-restart $q_dir >/dev/null"
			redis_desc="$KOMBU_TEST_REDIS_URL (private $("$server" --version | awk '{print $3}'), pid $(<"$rdir/redis.pid"))"
		else
			missing+=("Redis: could not start a private $server")
		fi
	else
		missing+=("Redis: KOMBU_TEST_REDIS_URL is unset and redis-server is not installed (apt-get install redis-server)")
	fi
fi

# ---- Redis Cluster (issue 15: the redis+cluster:// transport's tests) -------------------------------
# Six private redis-servers (3 masters, 3 replicas) in $state/rediscluster, started for every run like
# the private Redis because they are cheap (ready in a few seconds); their dirs are recorded in
# $state/redis.dirs, so cleanup stops them. Tests that kill nodes start a cluster of their own.
redis_cluster_desc=""
KB_REDIS_CLI=$(kb_redis_cli_bin)
if [[ -n ${KOMBU_TEST_REDIS_CLUSTER_URL:-} ]]; then
	read -r rc_host rc_port < <(kb_url_hostport "${KOMBU_TEST_REDIS_CLUSTER_URL%%,*}" 6379)
	if [[ -n $KB_REDIS_CLI ]] && [[ $(timeout 5 "$KB_REDIS_CLI" -h "$rc_host" -p "$rc_port" cluster info 2>/dev/null) == *cluster_state:ok* ]]; then
		redis_cluster_desc="$KOMBU_TEST_REDIS_CLUSTER_URL (given in KOMBU_TEST_REDIS_CLUSTER_URL)"
	else
		kb_say "KOMBU_TEST_REDIS_CLUSTER_URL=$KOMBU_TEST_REDIS_CLUSTER_URL: $rc_host:$rc_port does not say cluster_state:ok; starting a private cluster instead"
		unset KOMBU_TEST_REDIS_CLUSTER_URL KOMBU_TEST_REDIS_CLUSTER_DIR
	fi
else
	unset KOMBU_TEST_REDIS_CLUSTER_DIR
fi
if [[ -z $redis_cluster_desc ]]; then
	if [[ -n ${KOMBU_TEST_REDIS_SERVER:-} && -n $KB_REDIS_CLI ]]; then
		rc_start=$(date +%s%N)
		# Not in $(...): the servers stay children of this shell, which reaps them on exit.
		if kb_redis_cluster_start "$state/rediscluster" >"$state/rediscluster.url"; then
			KOMBU_TEST_REDIS_CLUSTER_URL=$(<"$state/rediscluster.url")
			export KOMBU_TEST_REDIS_CLUSTER_URL KOMBU_TEST_REDIS_CLUSTER_DIR=$state/rediscluster
			redis_cluster_desc="$KOMBU_TEST_REDIS_CLUSTER_URL (private, 6 nodes, ready in $((($(date +%s%N) - rc_start) / 1000000)) ms)"
		else
			unset KOMBU_TEST_REDIS_CLUSTER_URL
			missing+=("Redis Cluster: could not start a private 6-node cluster (scripts/brokers.sh redis-cluster-start; logs in $state/rediscluster)")
		fi
	else
		missing+=("Redis Cluster: redis-server or redis-cli is not installed (apt-get install redis-server)")
	fi
fi

# ---- RabbitMQ ---------------------------------------------------------------------------------------
default_amqp='amqp://guest:guest@127.0.0.1:5672//'
amqp_url=""
if [[ -n ${KOMBU_TEST_AMQP_URL:-} ]]; then
	if kb_amqp_ok "$KOMBU_TEST_AMQP_URL"; then
		amqp_url=$KOMBU_TEST_AMQP_URL
		amqp_desc="$(kb_mask_url "$amqp_url") (given in KOMBU_TEST_AMQP_URL)"
	else
		kb_say "KOMBU_TEST_AMQP_URL=$(kb_mask_url "$KOMBU_TEST_AMQP_URL") does not answer; trying $(kb_mask_url "$default_amqp")"
	fi
fi
if [[ -z $amqp_url ]] && kb_port_open 127.0.0.1 5672; then
	if kb_amqp_ok "$default_amqp"; then
		amqp_url=$default_amqp
		amqp_desc="$(kb_mask_url "$amqp_url") (already running)"
	else
		missing+=("RabbitMQ: something listens on 127.0.0.1:5672 but guest/guest cannot log in; set KOMBU_TEST_AMQP_URL")
	fi
elif [[ -z $amqp_url ]]; then
	if ! command -v rabbitmq-server >/dev/null 2>&1 && kb_is_root; then
		kb_apt_install rabbitmq-server
	fi
	if kb_port_open 127.0.0.1 5672; then
		: # the package's install script started it
	elif command -v rabbitmq-server >/dev/null 2>&1; then
		kb_say "starting rabbitmq-server -detached (waiting up to 90 s for port 5672)"
		epmd -names >/dev/null 2>&1 || epmd_was_running=0
		if rabbitmq-server -detached >"$state/rabbitmq-start.log" 2>&1; then
			rabbit_started=1
			for ((i = 0; i < 180; i++)); do
				kb_port_open 127.0.0.1 5672 && break
				sleep 0.5
			done
		else
			kb_say "rabbitmq-server -detached failed: $(tail -n 3 "$state/rabbitmq-start.log")"
		fi
	fi
	if kb_port_open 127.0.0.1 5672 && kb_amqp_ok "$default_amqp"; then
		amqp_url=$default_amqp
		amqp_desc="$(kb_mask_url "$amqp_url") ($( ((rabbit_started)) && echo "started by this run" || echo "already running"))"
	else
		missing+=("RabbitMQ: no broker answers on 127.0.0.1:5672 and none could be started (apt-get install rabbitmq-server)")
	fi
fi
if [[ -n $amqp_url ]]; then
	export KOMBU_TEST_AMQP_URL=$amqp_url
	read -r amqp_host _ < <(kb_url_hostport "$amqp_url" 5672)
	if ctl=$(command -v rabbitmqctl 2>/dev/null) && [[ $amqp_host == 127.0.0.1 || $amqp_host == localhost ]] &&
		timeout 60 "$ctl" -q list_connections name >/dev/null 2>&1; then
		export KOMBU_TEST_RABBITMQCTL=$ctl
	elif [[ $amqp_host == 127.0.0.1 || $amqp_host == localhost ]]; then
		missing+=("rabbitmqctl: none works for the local broker (tests that close connections from the broker side need it; run as root or as rabbitmq)")
	else
		kb_say "remote broker $amqp_host: no rabbitmqctl, tests that close connections from the broker side will skip"
	fi
else
	unset KOMBU_TEST_AMQP_URL
fi
if kb_rabbit_bin rabbitmq-server >/dev/null && kb_rabbit_bin rabbitmqctl >/dev/null; then
	export KOMBU_TEST_RABBIT_CTL=$root/scripts/brokers.sh
elif ((require)); then
	missing+=("rabbitmq-server: not installed (the broker stop/start test starts a private node)")
fi

# ---- RabbitMQ cluster (issue 15, RabbitMQ at scale: messaging's cluster failover test) -------------
# Off unless KOMBU_TEST_RABBIT_CLUSTER=1: three nodes take 2-3 minutes to start here. The test starts
# and stops its own cluster; its nodes are recorded in $state/rabbit.dirs and stopped on exit.
if [[ ${KOMBU_TEST_RABBIT_CLUSTER:-} == 1 ]]; then
	if [[ -n ${KOMBU_TEST_RABBIT_CTL:-} ]]; then
		kb_say "KOMBU_TEST_RABBIT_CLUSTER=1: the 3-node RabbitMQ cluster tests run (2-4 minutes)"
	else
		missing+=("rabbitmq-server: not installed (KOMBU_TEST_RABBIT_CLUSTER=1 needs it for a 3-node cluster)")
	fi
fi
# ---- end RabbitMQ cluster --------------------------------------------------------------------------

# ---- RabbitMQ management API (kombu queues and kombu top list RabbitMQ's queues through it) --------
mgmt_desc=""
if [[ -n ${KOMBU_TEST_AMQP_URL:-} ]]; then
	read -r amqp_host _ < <(kb_url_hostport "$KOMBU_TEST_AMQP_URL" 5672)
	mgmt_url=${KOMBU_TEST_AMQP_MANAGEMENT_URL:-http://$amqp_host:15672}
	read -r mgmt_host mgmt_port < <(kb_url_hostport "$mgmt_url" 15672)
	if ! kb_port_open "$mgmt_host" "$mgmt_port" && [[ -z ${KOMBU_TEST_AMQP_MANAGEMENT_URL:-} ]] &&
		[[ $amqp_host == 127.0.0.1 || $amqp_host == localhost ]] && command -v rabbitmq-plugins >/dev/null 2>&1; then
		kb_say "enabling rabbitmq_management on the local broker (left enabled; waiting up to 60 s for port 15672)"
		if timeout 120 rabbitmq-plugins enable rabbitmq_management >"$state/rabbitmq-plugins.log" 2>&1; then
			for ((i = 0; i < 120; i++)); do
				kb_port_open "$mgmt_host" "$mgmt_port" && break
				sleep 0.5
			done
		else
			kb_say "rabbitmq-plugins enable rabbitmq_management failed: $(tail -n 2 "$state/rabbitmq-plugins.log")"
		fi
	fi
	if kb_port_open "$mgmt_host" "$mgmt_port"; then
		export KOMBU_TEST_AMQP_MANAGEMENT_URL=$mgmt_url
		mgmt_desc=$mgmt_url
	else
		unset KOMBU_TEST_AMQP_MANAGEMENT_URL
		kb_say "no RabbitMQ management API at $mgmt_url: the CLI's queue-listing test will skip"
	fi
else
	unset KOMBU_TEST_AMQP_MANAGEMENT_URL
fi

# ---- tmux: the CLI's terminal tests --------------------------------------------------------------------
if ! command -v tmux >/dev/null 2>&1 && kb_is_root; then
	kb_apt_install tmux
fi
command -v tmux >/dev/null 2>&1 ||
	missing+=("tmux: not installed (apt-get install tmux): the CLI's terminal tests (kombu top, progress bars) need it")

# ---- filesystem transport (transport/filesystem): a folder with rename and flock -----------------------
# No server: the tests need a writable folder whose file system renames atomically and supports
# flock (the transport's claims and its liveness locks). Python's kombu comes from the Python step.
fs_dir=${KOMBU_TEST_FILESYSTEM_DIR:-$state/filesystem}
fs_desc=""
if mkdir -p "$fs_dir" && : >"$fs_dir/.probe" && mv "$fs_dir/.probe" "$fs_dir/.probe2" &&
	flock -n "$fs_dir/.probe2" true 2>/dev/null; then
	rm -f "$fs_dir/.probe2"
	export KOMBU_TEST_FILESYSTEM_DIR=$fs_dir
	fs_desc="$fs_dir ($(stat -f -c %T "$fs_dir" 2>/dev/null || echo '?'))"
else
	unset KOMBU_TEST_FILESYSTEM_DIR
	missing+=("filesystem: $fs_dir is not a writable folder with rename and flock")
fi
# ---- end of the filesystem transport's block ------------------------------------------------------------
# ---- SQL databases: transport/sqla (Kombu's SQLAlchemy transport) -------------------------------------
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust, database test) and MariaDB on 127.0.0.1:3306
# (root, no password, database test): used when they answer; else, when root, installed with apt-get,
# opened to 127.0.0.1 without a password, and started with their service scripts (left running: they
# are the machine's shared servers). Python Kombu's SQLAlchemy transport needs python3-sqlalchemy,
# python3-psycopg2 and python3-pymysql for the interop tests.
sqla_pg_desc="" sqla_my_desc=""
sqla_pg_ok() { psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'SELECT 1' >/dev/null 2>&1; }
sqla_my_ok() { mysql -h 127.0.0.1 -P 3306 -uroot test -e 'SELECT 1' >/dev/null 2>&1; }
if kb_is_root; then
	sqla_py_missing=$(py_missing sqlalchemy psycopg2 pymysql)
	[[ -n $sqla_py_missing ]] && kb_apt_install python3-sqlalchemy python3-psycopg2 python3-pymysql
	command -v psql >/dev/null 2>&1 || kb_apt_install postgresql-client
	command -v mysql >/dev/null 2>&1 || kb_apt_install mariadb-client
	if ! sqla_pg_ok; then
		command -v pg_ctlcluster >/dev/null 2>&1 || kb_apt_install postgresql postgresql-client
		for hba in /etc/postgresql/*/main/pg_hba.conf; do
			[[ -f $hba ]] || continue
			grep -q '^host all all 127.0.0.1/32 trust' "$hba" ||
				sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
		done
		service postgresql start >/dev/null 2>&1 || service postgresql reload >/dev/null 2>&1
		for _ in $(seq 50); do psql -h 127.0.0.1 -U postgres -Atqc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
		su postgres -c "psql -Atqc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" >/dev/null 2>&1
	fi
	if ! sqla_my_ok; then
		command -v mysqld >/dev/null 2>&1 || command -v mariadbd >/dev/null 2>&1 || kb_apt_install mariadb-server mariadb-client
		service mariadb start >/dev/null 2>&1
		for _ in $(seq 50); do mysql -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
		mysql -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test;" >/dev/null 2>&1
	fi
fi
if sqla_pg_ok; then
	export KOMBU_TEST_POSTGRES_URL=${KOMBU_TEST_POSTGRES_URL:-sqla+postgresql://postgres@127.0.0.1:5432/test}
	sqla_pg_desc=$KOMBU_TEST_POSTGRES_URL
else
	unset KOMBU_TEST_POSTGRES_URL
	missing+=("PostgreSQL: nothing answers on 127.0.0.1:5432 with database test (apt-get install postgresql)")
fi
if sqla_my_ok; then
	export KOMBU_TEST_MYSQL_URL=${KOMBU_TEST_MYSQL_URL:-sqla+mysql://root@127.0.0.1:3306/test}
	sqla_my_desc=$KOMBU_TEST_MYSQL_URL
else
	unset KOMBU_TEST_MYSQL_URL
	missing+=("MariaDB: nothing answers on 127.0.0.1:3306 as root with database test (apt-get install mariadb-server)")
fi
if [[ -n $(py_missing sqlalchemy psycopg2 pymysql) ]]; then
	missing+=("python modules for the sqla interop tests: apt-get install python3-sqlalchemy python3-psycopg2 python3-pymysql")
fi
kb_say "PostgreSQL (sqla): ${sqla_pg_desc:-MISSING}; MariaDB (sqla): ${sqla_my_desc:-MISSING}"
# ---- end of transport/sqla ------------------------------------------------------------------------------
# ---- SQS (transport/sqs): a private goaws emulator, and Python Kombu's SQS dependencies ------------
# goaws v0.4.5 is built once from the Go module proxy into the user cache (it speaks SQS's query
# protocol, as aws-sdk-go-v2/service/sqs v1.24 and Python Kombu 5.2.4 do). It is started on a free
# 127.0.0.1 port with an empty in-memory state and SIGKILLed on exit. The fault test starts another
# private instance itself from KOMBU_TEST_SQS_GOAWS.
sqs_desc="" sqs_pid=""
sqs_goaws=${KOMBU_TEST_SQS_GOAWS:-${XDG_CACHE_HOME:-$HOME/.cache}/kombu-go/goaws-v0.4.5/cmd}
if [[ ! -x $sqs_goaws ]]; then
	kb_say "building goaws v0.4.5 (SQS emulator) into ${sqs_goaws%/*}"
	GOBIN=${sqs_goaws%/*} go install github.com/Admiral-Piett/goaws/app/cmd@v0.4.5 \
		>"$state/goaws-build.log" 2>&1 || kb_say "goaws build failed: $(tail -n 3 "$state/goaws-build.log")"
fi
if [[ -x $sqs_goaws ]]; then
	export KOMBU_TEST_SQS_GOAWS=$sqs_goaws
else
	unset KOMBU_TEST_SQS_GOAWS
fi
if [[ -n ${KOMBU_TEST_SQS_URL:-} ]]; then
	sqs_desc="$(kb_mask_url "$KOMBU_TEST_SQS_URL") (given in KOMBU_TEST_SQS_URL)"
elif [[ -n ${KOMBU_TEST_SQS_GOAWS:-} ]] && sqs_port=$(kb_free_port); then
	mkdir -p "$state/goaws"
	printf 'Local:\n  Host: 127.0.0.1\n  Port: %s\n  AccountId: "100010001000"\n  QueueAttributeDefaults:\n    VisibilityTimeout: 30\n    ReceiveMessageWaitTimeSeconds: 0\n    MaximumMessageSize: 262144\n  Queues: []\n  Topics: []\n' \
		"$sqs_port" >"$state/goaws/goaws.yaml"
	"$KOMBU_TEST_SQS_GOAWS" -config "$state/goaws/goaws.yaml" Local >"$state/goaws/goaws.log" 2>&1 &
	sqs_pid=$!
	for ((i = 0; i < 100; i++)); do
		kb_port_open 127.0.0.1 "$sqs_port" && break
		sleep 0.1
	done
	if kb_port_open 127.0.0.1 "$sqs_port"; then
		export KOMBU_TEST_SQS_URL=sqs://x:x@127.0.0.1:$sqs_port
		sqs_desc="$KOMBU_TEST_SQS_URL (private goaws, pid $sqs_pid)"
		# Stop it on exit, before the common cleanup (which keeps the exit status).
		trap 'sqs_rc=$?; kill -KILL "$sqs_pid" 2>/dev/null; wait "$sqs_pid" 2>/dev/null; (exit $sqs_rc); cleanup' EXIT
	else
		kill -KILL "$sqs_pid" 2>/dev/null
		missing+=("SQS: goaws did not start: $(tail -n 3 "$state/goaws/goaws.log")")
	fi
else
	missing+=("SQS: no KOMBU_TEST_SQS_URL and no goaws binary (go install github.com/Admiral-Piett/goaws/app/cmd@v0.4.5)")
fi
# Python Kombu's SQS transport needs boto3 and pycurl (the interop tests).
if [[ -x $py ]] && [[ -n $(py_missing boto3 pycurl) ]] && kb_is_root; then
	kb_apt_install python3-boto3 python3-pycurl
fi
if [[ -x $py ]] && [[ -n $(py_missing boto3 pycurl) ]]; then
	missing+=("python modules: $py cannot import $(py_missing boto3 pycurl)(apt-get install python3-boto3 python3-pycurl): the SQS interop tests need them")
fi
kb_say "SQS:      ${sqs_desc:-MISSING}"
# ---- end of the SQS block ---------------------------------------------------------------------------

# ---- report, and stop here if a required broker is missing ------------------------------------------
kb_say "Redis:    ${redis_desc:-MISSING}"
kb_say "Redis Cluster: ${redis_cluster_desc:-MISSING}"
kb_say "RabbitMQ: ${amqp_desc:-MISSING}${KOMBU_TEST_RABBITMQCTL:+ (rabbitmqctl: $KOMBU_TEST_RABBITMQCTL)}"
kb_say "Python:   ${python_desc:-MISSING}"
kb_say "Folder:   ${fs_desc:-MISSING} (filesystem transport)"
kb_say "RabbitMQ management API: ${mgmt_desc:-none (the listing test of the CLI skips)}"
if ((${#missing[@]})); then
	{
		echo
		echo "************************************************************************"
		for m in "${missing[@]}"; do echo "* MISSING $m"; done
		if ((require)); then
			echo "* KOMBU_REQUIRE_BROKERS=1: not running the tests."
		else
			echo "* The tests that need these will SKIP. Set KOMBU_REQUIRE_BROKERS=1 to fail instead."
		fi
		echo "************************************************************************"
	} >&2
	((require)) && exit 2
fi

# ---- -race needs cgo and a C compiler ---------------------------------------------------------------
race=(-race)
if [[ $(go env CGO_ENABLED) != 1 ]]; then
	if kb_is_root && ! command -v gcc >/dev/null 2>&1; then
		kb_apt_install gcc libc6-dev
	fi
	if [[ $(go env CGO_ENABLED) != 1 ]]; then
		((require)) && die "cgo is disabled (no C compiler?), so -race cannot run (apt-get install gcc)"
		kb_say "WARNING: cgo is disabled (no C compiler?): running the tests WITHOUT -race"
		race=()
	fi
fi

# ---- checks -----------------------------------------------------------------------------------------
declare -A result
order=()
step() { # step NAME COMMAND...: run, record PASS/FAIL
	local name=$1
	shift
	hr "$name"
	order+=("$name")
	if "$@"; then result[$name]=PASS; else result[$name]=FAIL; fi
}

go_files() { # the .go files of the selected packages (testdata and nested dirs of x/ excluded)
	local p
	for p in "${pkgs[@]}"; do
		p=${p#"$module"}
		p=${p#/}
		case $p in
		"" | . | ./) find . -maxdepth 1 -name '*.go' ;;
		... | ./...) find . \( -name testdata -o -name vendor -o -name '.*' ! -name . \) -prune -o -name '*.go' -print ;;
		*/...) find "./${p%/...}" \( -name testdata -o -name '.*' ! -name . \) -prune -o -name '*.go' -print ;;
		*) find "./${p#./}" -maxdepth 1 -name '*.go' ;;
		esac
	done 2>/dev/null | sort -u
}

check_gofmt() {
	local files bad
	mapfile -t files < <(go_files)
	((${#files[@]})) || return 0
	bad=$(gofmt -l "${files[@]}") || return 1
	if [[ -n $bad ]]; then
		echo "gofmt would change these files (run: make fmt):"
		printf '  %s\n' "${bad//$'\n'/$'\n'  }"
		return 1
	fi
	echo "gofmt: ${#files[@]} files ok"
}

vet() { # vet GOOS
	GOOS=$1 go vet "${pkgs[@]}" && echo "go vet ($1): ok"
}

# Drop the RUN/PASS chatter of go test -v; show a test's name only before output it printed.
filter() {
	if ((json)); then
		cat
		return
	fi
	awk '
		/^=== (RUN|PAUSE|CONT|NAME) / { pending = $0; next }
		/^ *--- PASS: / { pending = ""; next }
		/^PASS$/ { next }
		/^ *--- (FAIL|SKIP): / { pending = ""; print; fflush(); next }
		/^    / && pending != "" { print pending; pending = "" }
		{ print; fflush() }'
}

run_tests() {
	local verbose=(-v) rc
	((json)) && verbose=()
	kb_say "go test ${race[*]} -count=1 -timeout 15m ${verbose[*]} ${go_args[*]}"
	# In a process group of its own (set -m), in the background, so that a signal to this script
	# is handled at once and cleanup can stop go test and its test binaries by group.
	set -m
	{
		go test "${race[@]}" -count=1 -timeout 15m "${verbose[@]}" "${go_args[@]}"
		echo $? >"$state/go-test.rc"
	} 2>&1 | (
		trap '' INT # keep reading until go test has printed its last line and exited
		tee "$state/go-test.log" | filter
	) &
	gotest_pgid=$(jobs -p %%)
	set +m
	wait "$!"
	gotest_pgid=""
	rc=$(cat "$state/go-test.rc" 2>/dev/null) || rc=1
	return "$rc"
}

step gofmt check_gofmt
step "go vet linux" vet linux
step "go vet darwin" vet darwin
step "go vet freebsd" vet freebsd
start=$SECONDS
step "go test" run_tests
elapsed=$((SECONDS - start))

# ---- summary ----------------------------------------------------------------------------------------
log=$state/go-test.log
count() {
	local n
	n=$(grep -cE "$1" "$log" 2>/dev/null)
	echo "${n:-0}"
}
hr "summary"
{
	echo "Redis:    ${redis_desc:-MISSING (tests skipped)}"
	echo "Redis Cluster: ${redis_cluster_desc:-MISSING (tests skipped)}"
	echo "RabbitMQ: ${amqp_desc:-MISSING (tests skipped)}"
	echo "Python:   ${python_desc:-MISSING (interop tests skipped)}"
	((${#race[@]})) || echo "race detector: OFF (no cgo)"
	for name in "${order[@]}"; do printf '%-16s %s\n' "$name" "${result[$name]}"; done
	if ((json)); then
		passed=$(count '"Action":"pass","Package":"[^"]*","Test"')
		failed=$(count '"Action":"fail","Package":"[^"]*","Test"')
		skipped=$(count '"Action":"skip","Package":"[^"]*","Test"')
	else
		printf 'packages: %s ok, %s FAIL, %s without tests (go test took %ds)\n' \
			"$(count '^ok ')" "$(count '^FAIL[[:space:]]')" "$(count '^\?[[:space:]]')" "$elapsed"
		passed=$(count '^ *--- PASS: ')
		failed=$(count '^ *--- FAIL: ')
		skipped=$(count '^ *--- SKIP: ')
	fi
	echo "tests: $passed passed, $failed failed, $skipped skipped"
}

for name in "${order[@]}"; do
	[[ ${result[$name]} == PASS ]] || exit 1
done
exit 0
