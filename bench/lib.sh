# bench/lib.sh - what every benchmark script under bench/ shares. Sourced,
# not run:
#
#   BENCH_NAME=keys/run.sh          # prefix of die's messages
#   . "$ROOT/bench/lib.sh"
#
# It provides, for bash scripts running as root or with sudo on the
# project's 2-CPU machines (shared/BENCHMARKING.md):
#   log, die, trim                      messages and string helpers
#   HOST, BODY                          127.0.0.1 (the only address traffic goes to)
#                                       and the backends' JSON body
#   bench_help                          the script's top comment, as its --help
#   bench_deps GROUP TOOL...            tools/install-deps.sh GROUP, then check
#                                       that each TOOL is on PATH
#   bench_python                        PY = a python3 (installs python3-minimal)
#   bench_nofile                        raise ulimit -n to the hard limit;
#                                       NOFILE, MAXCONN, NGX_CONNS from it
#   bench_pinning 0|1                   MODE, PIN0/PIN1 (taskset prefixes for
#                                       the target's CPU 0 and the load's CPU 1;
#                                       empty in whole-machine mode), PROXY_CPUS
#   bench_tmpdir PREFIX                 TMP = a fresh mktemp -d (removed on exit
#                                       unless KEEP=1), and the exit/signal traps
#                                       that stop every process started
#   start_bg LOG CMD...                 start and register a process; LAST_PID
#   proc_start_time, proc_alive         a pid checked against its start time
#   tree_of, tree_sample, stop_tree     process trees: CPU ticks, RSS, stopping
#   stat_sample PREFIX                  /proc/stat busy ticks (all, cpu0, cpu1)
#   wait_quiet                          wait for other people's load to pass
#   port_listening, wait_port_free,     ports on 127.0.0.1
#   wait_listen, port_owner, free_port
#   nginx_common, nginx_http_common     the lines every private nginx shares
#   cpuref_build, cpuref                the CPU speed reference (wrk/cpuref.c)
#
# Processes are always stopped by pid (checked against their start time so a
# recycled pid is never hit), never by name: other people's nginx or redis
# may be running on the same machine.

BENCH_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_LIB/.." && pwd)
: "${BENCH_NAME:=bench}"
: "${KEEP:=0}"
: "${QUIET_WAIT:=10}"       # wait_quiet: per run, seconds to wait for others' load
: "${QUIET_BUDGET:=60}"     # ... and at most this much over the whole session
CLK_TCK=$(getconf CLK_TCK)
HOST=127.0.0.1                  # never send traffic anywhere else
# what the nginx backends answer at every path
BODY='{"id":42,"name":"user-42","email":"user42@example.com","ok":true}'

log() { printf '%s\n' "$*" >&2; }
# bench_help: the comment at the top of the running script, as its help
bench_help() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }
die() { log "$BENCH_NAME: $*"; exit 1; }
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

# ---------------------------------------------------------------- tools
# bench_deps GROUP TOOL...: install what GROUP of tools/install-deps.sh
# lists when missing, then insist on each TOOL.
bench_deps() {
	local group=$1 tool
	shift
	"$BENCH_ROOT/tools/install-deps.sh" "$group" || die "tools/install-deps.sh $group failed"
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool not found"
	done
}

# bench_python: PY = python3 (the report helpers need it), installed as
# python3-minimal when missing.
bench_python() {
	local sudo=
	PY=/usr/bin/python3
	[[ -x $PY ]] || PY=$(command -v python3 || true)
	if [[ -z $PY ]]; then
		log "installing python3-minimal (the report helper needs it)"
		[[ $(id -u) -eq 0 ]] || sudo=sudo
		$sudo apt-get install -y -qq python3-minimal >/dev/null || die "cannot install python3"
		PY=/usr/bin/python3
	fi
}

# bench_nofile: connection limits follow the fd limit (the hard limit is
# 20,000 on the project's machines, even for root): NOFILE, MAXCONN (a
# proxied connection holds 2 fds) and NGX_CONNS (nginx counts both sides).
bench_nofile() {
	local hard
	hard=$(ulimit -Hn)
	[[ $hard == unlimited ]] && hard=1048576
	ulimit -n "$hard" 2>/dev/null || log "warning: could not raise ulimit -n to $hard"
	NOFILE=$(ulimit -n)
	MAXCONN=$(( (NOFILE - 200) / 2 ))
	NGX_CONNS=$(( NOFILE - 200 ))
}

# bench_pinning WHOLE: pinned mode (0) puts the target on CPU 0 and the load
# and backends on CPU 1; whole-machine mode (1) pins nothing.
bench_pinning() {
	if (($1)); then
		MODE=whole
		PIN0=(); PIN1=()
		PROXY_CPUS=2
	else
		MODE=pinned
		PIN0=(taskset -c 0); PIN1=(taskset -c 1)
		PROXY_CPUS=1
	fi
}

# ---------------------------------------------------------------- processes
# Every process tree we start is recorded as "pid:starttime"; cleanup stops
# them all by pid.
declare -a STARTED=()
declare -a TREE=()
START_TIME=

# proc_start_time PID: field 22 of /proc/PID/stat into START_TIME.
proc_start_time() {
	local line
	START_TIME=
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	local -a a=(${line##*) })
	START_TIME=${a[19]}
}

# proc_alive PID STARTTIME: the same process still runs (not a zombie).
proc_alive() {
	local line
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	local -a a=(${line##*) })
	[[ ${a[0]} != Z && ${a[0]} != X && ${a[19]} == "$2" ]]
}

# tree_of ROOT: ROOT and all its descendants (via the ppid links in
# /proc/*/stat) into TREE.
tree_of() {
	local root=$1 f line pid p
	local -A kids=()
	local -a a queue
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		a=(${line##*) })
		kids[${a[1]}]+=" $pid"
	done
	TREE=()
	[[ -e /proc/$root/stat ]] || return 0
	queue=("$root")
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		TREE+=("$p")
		queue+=(${kids[$p]:-})
	done
}

# tree_sample ROOT [rss]: TREE_TICKS = utime+stime (fields 14, 15) of every
# process in the tree, plus cutime+cstime (16, 17: children it already
# reaped, normally constant, so a worker that exits mid-run is not lost).
# Threads, io_uring workers included: they are in the process's own counts,
# so /proc/PID/task/* is NOT added. With "rss", TREE_RSS_KB = sum of VmRSS.
tree_sample() {
	local p line k v rest
	local -a a
	tree_of "$1"
	TREE_TICKS=0 TREE_RSS_KB=0 TREE_N=${#TREE[@]}
	for p in "${TREE[@]}"; do
		{ read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
		a=(${line##*) })
		((TREE_TICKS += a[11] + a[12] + a[13] + a[14]))
		if [[ ${2:-} == rss ]]; then
			{ while read -r k v rest; do
				[[ $k == VmRSS: ]] && { ((TREE_RSS_KB += v)); break; }
			done <"/proc/$p/status"; } 2>/dev/null
		fi
	done
}

# stat_sample PREFIX: busy ticks (user nice system irq softirq) and steal of
# all CPUs, cpu0 and cpu1 from /proc/stat into PREFIX_* variables.
stat_sample() {
	local name u n s idle iow irq sirq steal rest
	while read -r name u n s idle iow irq sirq steal rest; do
		case $name in
		cpu) printf -v "$1_busy_all" %s $((u + n + s + irq + sirq))
		     printf -v "$1_steal_all" %s "$steal" ;;
		cpu0) printf -v "$1_busy_cpu0" %s $((u + n + s + irq + sirq)) ;;
		cpu1) printf -v "$1_busy_cpu1" %s $((u + n + s + irq + sirq)) ;;
		cpu*) ;;
		*) break ;;
		esac
	done </proc/stat
}

register() { proc_start_time "$1"; STARTED+=("$1:${START_TIME:-0}"); }
unregister() {
	local i
	for i in "${!STARTED[@]}"; do
		[[ ${STARTED[$i]%%:*} == "$1" ]] && unset 'STARTED[i]'
	done
	STARTED=("${STARTED[@]}")
}

# stop_tree ROOT: SIGTERM to ROOT, then to the rest of its tree after 2.5 s,
# SIGKILL to whatever of it is left after 5 s (each pid checked against its
# start time, so a recycled pid is never hit). nginx's workers outlive a
# killed master, hence the whole tree. Returns 1 if something survived;
# STOP_CRASH names the signal ROOT died of if that was not ours.
stop_tree() {
	local root=$1 i p left
	tree_of "$root"
	local -a pids=("${TREE[@]}") starts=()
	for p in "${pids[@]}"; do proc_start_time "$p"; starts+=("${START_TIME:-x}"); done
	kill -TERM "$root" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		left=0
		for p in "${!pids[@]}"; do
			proc_alive "${pids[$p]}" "${starts[$p]}" && { left=1; break; }
		done
		((left)) || break
		if ((i == 50)); then
			for p in "${!pids[@]}"; do
				proc_alive "${pids[$p]}" "${starts[$p]}" && kill -TERM "${pids[$p]}" 2>/dev/null
			done
		fi
		sleep 0.05
	done
	if ((left)); then
		for p in "${!pids[@]}"; do
			if proc_alive "${pids[$p]}" "${starts[$p]}"; then
				log "  pid ${pids[$p]} ($(cat /proc/${pids[$p]}/comm 2>/dev/null)) ignored SIGTERM: SIGKILL"
				kill -KILL "${pids[$p]}" 2>/dev/null
			fi
		done
		sleep 0.2
	fi
	# bash would report a crash as "line N: Segmentation fault  \"$@\"...";
	# say instead which process it was (SIGTERM/SIGKILL are ours).
	{ wait "$root"; } 2>/dev/null
	STOP_STATUS=$?
	if ((STOP_STATUS > 128 && STOP_STATUS != 143 && STOP_STATUS != 137)); then
		STOP_CRASH="$(kill -l $((STOP_STATUS - 128)) 2>/dev/null || echo $((STOP_STATUS - 128)))"
		log "  pid $root exited on signal SIG$STOP_CRASH while being stopped"
	else
		STOP_CRASH=
	fi
	unregister "$root"
	for p in "${!pids[@]}"; do
		if proc_alive "${pids[$p]}" "${starts[$p]}"; then
			log "  WARNING: pid ${pids[$p]} is still running after SIGKILL"
			return 1
		fi
	done
	return 0
}

# start_bg LOG CMD...: start CMD in the background, register it; LAST_PID.
start_bg() {
	local logf=$1
	shift
	"$@" >"$logf" 2>&1 </dev/null &
	LAST_PID=$!
	register "$LAST_PID"
}

TMP=
bench_cleanup() {
	local rc=$? e p
	trap - EXIT INT TERM
	for ((e = ${#STARTED[@]} - 1; e >= 0; e--)); do
		p=${STARTED[$e]%%:*}
		proc_alive "$p" "${STARTED[$e]#*:}" && stop_tree "$p"
	done
	if [[ -n $TMP && -d $TMP ]]; then
		if ((KEEP)); then log "kept $TMP"; else rm -rf "$TMP"; fi
	fi
	exit "$rc"
}
trap bench_cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# bench_tmpdir PREFIX: TMP = /tmp/PREFIX.XXXXXX, readable by the peers'
# workers (nginx may run as another user); removed on exit unless KEEP=1.
bench_tmpdir() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX") || die "mktemp failed"
	chmod 755 "$TMP"
}

# ---------------------------------------------------------------- load
# wait_quiet: other people's jobs share this machine. Before a run (only
# idle processes of ours are up), sample the CPUs for 0.3 s and wait while
# more than 15% of one CPU is busy, up to QUIET_WAIT s (QUIET_BUDGET in all).
wait_quiet() {
	local start=$SECONDS busy said=0
	((QUIET_WAIT > 0 && QUIET_BUDGET > 0)) || return 0
	while :; do
		stat_sample Q0; sleep 0.3; stat_sample Q1
		busy=$(( (Q1_busy_all - Q0_busy_all) * 100 * 10 / 3 / CLK_TCK ))
		((busy <= 15)) && break
		if ((SECONDS - start >= QUIET_WAIT || SECONDS - start >= QUIET_BUDGET)); then
			log "  machine still busy ($busy% of a CPU); running anyway"
			break
		fi
		((said++)) || log "  machine busy ($busy% of a CPU, not ours): waiting up to ${QUIET_WAIT}s"
		sleep 0.7
	done
	((QUIET_BUDGET -= SECONDS - start))
}

# cpuref_build: compile the speed reference (wrk/cpuref.c) into $TMP.
# cpuref: one median-of-3 sample on CPU 0, in µs of thread CPU time.
cpuref_build() {
	cc -O2 -o "$TMP/cpuref" "$BENCH_LIB/wrk/cpuref.c" || die "cannot build the speed reference"
}
cpuref() { taskset -c 0 "$TMP/cpuref" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- ports
# port_listening PORT: something listens on 127.0.0.1/any:PORT.
port_listening() {
	local hex
	printf -v hex ':%04X ' "$1"
	grep -qE "${hex}[0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# port_in_use PORT: PORT is a local port of any socket (listening or not).
port_in_use() {
	local hex
	printf -v hex ':%04X ' "$1"
	grep -qE "^ *[0-9]+: [0-9A-F]+${hex}" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# wait_port_free PORT SECONDS
wait_port_free() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		port_listening "$1" || return 0
		sleep 0.05
	done
	return 1
}

port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -1; }

# wait_listen PID STARTTIME PORT SECONDS: 0 once PORT listens, 2 if the
# process died, 1 on timeout.
wait_listen() {
	local i
	for ((i = 0; i < $4 * 20; i++)); do
		proc_alive "$1" "$2" || return 2
		port_listening "$3" && return 0
		sleep 0.05
	done
	return 1
}

# free_port FROM [EXCLUDE...]: FREE_PORT = the first port from FROM up (at
# most 200 tried) that no socket uses and that is not among EXCLUDE.
free_port() {
	local from=$1 p x taken
	shift
	FREE_PORT=
	for ((p = from; p < from + 200 && p < 65536; p++)); do
		taken=0
		for x in "$@"; do [[ $x == "$p" ]] && taken=1; done
		((taken)) && continue
		port_in_use "$p" && continue
		FREE_PORT=$p
		return 0
	done
	return 1
}

# ---------------------------------------------------------------- nginx
# nginx_common DIR: the main-context lines every private nginx shares (pid,
# lock and error log under DIR, no daemon, fd limits); needs NOFILE and
# NGX_CONNS (bench_nofile). nginx_http_common DIR: the http-context lines
# (no access log, temp paths under DIR, client keep-alive raised).
nginx_common() {
	local user=
	[[ $(id -u) -eq 0 ]] && user='user root;'
	cat <<EOF
pid $1/nginx.pid;
lock_file $1/nginx.lock;
error_log $1/error.log warn;
daemon off;
$user
worker_rlimit_nofile $NOFILE;
events { worker_connections $NGX_CONNS; }
EOF
}
nginx_http_common() {
	cat <<EOF
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
EOF
}

# ---------------------------------------------------------------- HAProxy
# haproxy_head THREADS DIR: the global and defaults sections every HAProxy
# here shares (pid file and admin stats socket under DIR, maxconn from the
# fd limit, keep-alive, X-Forwarded-For, timeouts); needs MAXCONN.
haproxy_head() {
	cat <<EOF
global
    nbthread $1
    maxconn $MAXCONN
    pidfile $2/haproxy.pid
    stats socket $2/stats.sock mode 600 level admin
    stats timeout 30s

defaults
    mode http
    maxconn $MAXCONN
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s
EOF
}
