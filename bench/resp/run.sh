#!/usr/bin/env bash
# bench/resp/run.sh - ringfront's Redis-protocol port ([cache] listen)
# against redis-server, both driven by redis-benchmark on 127.0.0.1.
#
# Each server in turn runs alone, pinned to CPU 0 (ringfront workers = 1;
# redis-server with its defaults: one main thread, io-threads 1), on a free
# port the script picks; redis-benchmark runs on CPU 1. For each server, with
# and without pipelining, the script runs `redis-benchmark -t set` and then
# `-t get` (-c 50, a fixed -n, random keys from a keyspace of -r), each
# invocation measured on its own: requests/s and latency from its CSV, and
# CPU µs per request = Δ(utime+stime) of the server's whole process tree ÷
# requests (the same accounting as bench/wrk, see bench/README.md). The
# servers start empty for every pipelining mode, so SET fills the same
# keyspace for both and GET then finds the same share of it.
#
#   ringfront   [cache] memory = 64m, listen = 127.0.0.1:PORT (plus the HTTP
#               listener and an upstream its config requires; no traffic
#               goes there)
#   redis       redis-server --port PORT --bind 127.0.0.1 --save ''
#               --appendonly no --maxmemory 64mb --maxmemory-policy allkeys-lru
#               (a bounded cache, as ringfront's), io-threads default
#
# Every run is checked: redis-benchmark exits 0 and prints no error reply,
# the server counted N commands (ringfront: INFO inserts for SET, keyspace
# hits + misses for GET; redis: INFO commandstats), and both servers hold
# about the same number of keys after SET.
#
# Usage: bench/resp/run.sh [--requests N] [--requests-pipelined N]
#                          [--pipeline P] [--clients C] [--keyspace R]
#                          [--repeat N] [--targets ringfront,redis]
#                          [--whole-machine] [--quick] [--quiet-wait S]
#                          [--quiet-budget S] [--keep]
# The report is printed and written to bench/results/resp-YYYY-MM-DD-HHMM.md.
set -u -o pipefail

ARGS="$*"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_NAME=resp/run.sh
. "$ROOT/bench/lib.sh"

PORT_FROM=19300                 # free ports are searched from here up
REQUESTS=200000                 # -n without pipelining
REQUESTS_P=2000000              # -n with pipelining (a run of similar length)
PIPELINE=16                     # -P of the pipelined runs
CLIENTS=50                      # -c
KEYSPACE=100000                 # -r
REPEAT=3
TARGETS=ringfront,redis
WHOLE=0
KEEP=0
QUIET_WAIT=10
QUIET_BUDGET=60
RINGFRONT=${RINGFRONT:-$ROOT/ringfront}
RESULTS_DIR=$ROOT/bench/results
TESTS=(set get)

usage() { bench_help; cat <<EOF

Options:
  --requests N           -n of each run without pipelining (default $REQUESTS)
  --requests-pipelined N -n of each pipelined run (default $REQUESTS_P)
  --pipeline P           -P of the pipelined runs (default $PIPELINE); 1 = none
  --clients C            -c (default $CLIENTS)
  --keyspace R           -r: keys are drawn from R of them (default $KEYSPACE)
  --repeat N             runs per server, mode and test; medians (default $REPEAT)
  --targets LIST         from ringfront,redis (default both)
  --whole-machine        no pinning: ringfront workers = auto, redis-server
                         unchanged (io-threads default), redis-benchmark anywhere
  --quick                smoke test: -n 20000 / 200000, 1 repeat, no --quiet-wait
  --quiet-wait S         before each server start, wait up to S s (default $QUIET_WAIT,
                         at most $QUIET_BUDGET s per session) while other processes
                         keep the machine busy; 0 disables
  --quiet-budget S       at most S s of such waiting per session
  --keep                 keep the temporary directory (configs, logs, outputs)
Environment: RINGFRONT=path/to/binary (default ./ringfront)
EOF
}

while (($#)); do
	case $1 in
	--requests) REQUESTS=${2:?}; shift ;;
	--requests=*) REQUESTS=${1#*=} ;;
	--requests-pipelined) REQUESTS_P=${2:?}; shift ;;
	--requests-pipelined=*) REQUESTS_P=${1#*=} ;;
	--pipeline) PIPELINE=${2:?}; shift ;;
	--pipeline=*) PIPELINE=${1#*=} ;;
	--clients) CLIENTS=${2:?}; shift ;;
	--clients=*) CLIENTS=${1#*=} ;;
	--keyspace) KEYSPACE=${2:?}; shift ;;
	--keyspace=*) KEYSPACE=${1#*=} ;;
	--repeat) REPEAT=${2:?}; shift ;;
	--repeat=*) REPEAT=${1#*=} ;;
	--targets) TARGETS=${2:?}; shift ;;
	--targets=*) TARGETS=${1#*=} ;;
	--whole-machine) WHOLE=1 ;;
	--quick) REQUESTS=20000; REQUESTS_P=200000; REPEAT=1; QUIET_WAIT=0 ;;
	--quiet-wait) QUIET_WAIT=${2:?}; shift ;;
	--quiet-wait=*) QUIET_WAIT=${1#*=} ;;
	--quiet-budget) QUIET_BUDGET=${2:?}; shift ;;
	--quiet-budget=*) QUIET_BUDGET=${1#*=} ;;
	--keep) KEEP=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
	shift
done
for v in REQUESTS REQUESTS_P PIPELINE CLIENTS KEYSPACE REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v takes a number >= 1"
done
((CLIENTS <= 1000)) || die "--clients takes 1..1000"
[[ $QUIET_WAIT =~ ^[0-9]+$ && $QUIET_BUDGET =~ ^[0-9]+$ ]] || die "--quiet-wait/--quiet-budget take seconds"
IFS=, read -r -a RUN_TARGETS <<<"$TARGETS"
for t in "${RUN_TARGETS[@]}"; do
	case $t in ringfront|redis) ;; *) die "unknown target '$t' (ringfront, redis)" ;; esac
done
MODES=(1)
((PIPELINE > 1)) && MODES+=("$PIPELINE")

bench_deps resp redis-server redis-benchmark redis-cli taskset timeout cc
bench_python
bench_nofile
bench_pinning "$WHOLE"
RF_WORKERS=1
((WHOLE)) && RF_WORKERS=auto

# ---------------------------------------------------------------- set-up
bench_tmpdir ringfront-resp
mkdir -p "$TMP/ringfront" "$TMP/redis" "$TMP/out" "$RESULTS_DIR"
cpuref_build
free_port "$PORT_FROM" || die "no free port from $PORT_FROM"
RF_RESP_PORT=$FREE_PORT
free_port "$PORT_FROM" "$RF_RESP_PORT" || die "no free port from $PORT_FROM"
RF_HTTP_PORT=$FREE_PORT
free_port "$PORT_FROM" "$RF_RESP_PORT" "$RF_HTTP_PORT" || die "no free port from $PORT_FROM"
RF_UP_PORT=$FREE_PORT
free_port "$PORT_FROM" "$RF_RESP_PORT" "$RF_HTTP_PORT" "$RF_UP_PORT" || die "no free port from $PORT_FROM"
REDIS_PORT=$FREE_PORT

cat >"$TMP/ringfront/ringfront.ini" <<EOF
; generated by bench/resp/run.sh
[server]
listen = $HOST:$RF_HTTP_PORT
workers = $RF_WORKERS
log_level = warn
max_connections = $MAXCONN

[cache]
memory = 64m
listen = $HOST:$RF_RESP_PORT

; required by the configuration; never contacted (no HTTP traffic, no checks)
[upstream app]
servers = $HOST:$RF_UP_PORT
health_path =

[route]
/ = app
EOF

declare -A SKIP=()
declare -A PORT=([ringfront]=$RF_RESP_PORT [redis]=$REDIS_PORT)
RF_VERSION="not built"
for t in "${RUN_TARGETS[@]}"; do
	[[ $t == ringfront ]] || continue
	if [[ ! -x $RINGFRONT ]]; then
		SKIP[ringfront]="$RINGFRONT not found (build it with make)"
	elif ! timeout -k 1 5 "$RINGFRONT" -t -c "$TMP/ringfront/ringfront.ini" >"$TMP/ringfront/check.log" 2>&1; then
		SKIP[ringfront]="config rejected: $(head -c 200 "$TMP/ringfront/check.log" | tr '\n|' ' /')"
	else
		RF_VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +changes), built $(date -r "$RINGFRONT" '+%F %T')"
	fi
done

target_cmd() {
	case $1 in
	ringfront) CMD=("${PIN0[@]}" "$RINGFRONT" -c "$TMP/ringfront/ringfront.ini") ;;
	redis) CMD=("${PIN0[@]}" redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no
		--maxmemory 64mb --maxmemory-policy allkeys-lru --daemonize no --dir "$TMP/redis"
		--logfile "$TMP/redis/redis.log" --maxclients "$MAXCONN") ;;
	esac
}

# rcli TARGET ARGS...: one command to the server under test.
rcli() { local t=$1; shift; timeout -k 1 5 redis-cli -h "$HOST" -p "${PORT[$t]}" "$@" 2>&1; }

# info_counts TARGET: INFO_SETS, INFO_GETS (the SET and GET commands the
# server counted so far) and INFO_KEYS.
info_counts() {
	local info
	info=$(rcli "$1" info all | tr -d '\r')
	INFO_KEYS=$(dbsize "$1")
	if [[ $1 == ringfront ]]; then
		INFO_SETS=$(awk -F: '$1 == "inserts" {print $2}' <<<"$info")
	else
		INFO_SETS=$(sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p' <<<"$info")
	fi
	INFO_GETS=$(awk -F: '$1 == "keyspace_hits" {h = $2} $1 == "keyspace_misses" {m = $2}
		END {if (h != "" && m != "") print h + m}' <<<"$info")
	INFO_HITS=$(awk -F: '$1 == "keyspace_hits" {print $2}' <<<"$info")
	: "${INFO_SETS:=0}" "${INFO_GETS:=}" "${INFO_HITS:=}"
}
dbsize() { rcli "$1" dbsize | tr -dc '0-9'; }

meta() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/meta.tsv"; }
: >"$TMP/meta.tsv"; : >"$TMP/runs.jsonl"

# ---------------------------------------------------------------- one run
# start_server TARGET: SERVER_ROOT, or non-zero with WHY.
start_server() {
	local t=$1 rc
	WHY=
	wait_port_free "${PORT[$t]}" 10 || { WHY="port ${PORT[$t]} still in use ($(port_owner "${PORT[$t]}"))"; return 1; }
	target_cmd "$t"
	start_bg "$TMP/$t/run.log" "${CMD[@]}"
	SERVER_ROOT=$LAST_PID
	proc_start_time "$SERVER_ROOT"
	wait_listen "$SERVER_ROOT" "$START_TIME" "${PORT[$t]}" 5
	rc=$?
	if ((rc != 0)); then
		WHY="$([[ $rc == 2 ]] && echo "exited at start" || echo "not listening after 5 s"): $(tail -n 3 "$TMP/$t/run.log" | tr '\n|' ' /')"
		stop_tree "$SERVER_ROOT"
		return 1
	fi
	if [[ $(rcli "$t" ping) != PONG ]]; then
		WHY="PING did not get PONG"
		stop_tree "$SERVER_ROOT"
		return 1
	fi
	return 0
}

# bench_one TARGET MODE TEST REP: one redis-benchmark invocation, measured.
bench_one() {
	local t=$1 p=$2 test=$3 rep=$4 n out pt0 pt1 rt0 rt1 t0 t1 ref0 ref1 rss ref_pid
	local sets0 gets0 hits0 sets1 gets1 hits1 keys1 rc
	n=$REQUESTS
	((p > 1)) && n=$REQUESTS_P
	out=$TMP/out/$t.P$p.$test.$rep
	info_counts "$t"; sets0=$INFO_SETS gets0=$INFO_GETS hits0=$INFO_HITS
	ref0=$(cpuref)
	taskset -c 0 "$TMP/cpuref" --every 500 --for 600 >"$out.ref" 2>/dev/null </dev/null &
	ref_pid=$!
	register "$ref_pid"
	tree_sample "$ref_pid"; rt0=$TREE_TICKS
	tree_sample "$SERVER_ROOT"; pt0=$TREE_TICKS
	stat_sample A
	t0=$EPOCHREALTIME
	times >"$out.times0"
	"${PIN1[@]}" timeout -k 3 600 redis-benchmark -h "$HOST" -p "${PORT[$t]}" -t "$test" \
		-n "$n" -c "$CLIENTS" -r "$KEYSPACE" -P "$p" --csv >"$out.csv" 2>"$out.err" </dev/null
	rc=$?
	times >"$out.times1"
	t1=$EPOCHREALTIME
	stat_sample B
	tree_sample "$SERVER_ROOT" rss; pt1=$TREE_TICKS; rss=$TREE_RSS_KB
	tree_sample "$ref_pid"; rt1=$TREE_TICKS
	stop_tree "$ref_pid"
	ref1=$(cpuref)
	info_counts "$t"; sets1=$INFO_SETS gets1=$INFO_GETS hits1=$INFO_HITS keys1=$INFO_KEYS
	"$PY" "$HERE/report.py" record "$TMP/runs.jsonl" \
		target="$t" pipeline="$p" test="$test" rep="$rep" n="$n" mode="$MODE" rc="$rc" \
		csv="$out.csv" err="$out.err" times0="$out.times0" times1="$out.times1" \
		clk_tck="$CLK_TCK" t0="$t0" t1="$t1" proxy_cpus="$PROXY_CPUS" \
		ticks0="$pt0" ticks1="$pt1" ref_ticks0="$rt0" ref_ticks1="$rt1" rss_kb="$rss" \
		ref0="$ref0" ref1="$ref1" ref_during="$out.ref" \
		busy_all0="$A_busy_all" busy_all1="$B_busy_all" busy_cpu00="$A_busy_cpu0" \
		busy_cpu01="$B_busy_cpu0" busy_cpu10="$A_busy_cpu1" busy_cpu11="$B_busy_cpu1" \
		sets0="$sets0" sets1="$sets1" gets0="$gets0" gets1="$gets1" hits0="$hits0" hits1="$hits1" \
		keys="$keys1" keyspace="$KEYSPACE" >&2 \
		|| log "report.py record failed for $t P$p $test #$rep"
}

# ---------------------------------------------------------------- runs
meta date "$(date '+%F %H:%M %Z')"
meta command "bench/resp/run.sh${ARGS:+ $ARGS}"
meta mode "$MODE: $(if ((WHOLE)); then echo "no pinning; ringfront workers = auto, redis-server as configured"; else echo "server on CPU 0 (ringfront workers = 1, redis-server one main thread), redis-benchmark on CPU 1"; fi)"
meta host "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"), kernel $(uname -r)"
meta ringfront "$RF_VERSION"
meta redis "$(redis-server --version | sed 's/^Redis server //; s/ sha=.*//'), redis-benchmark $(redis-benchmark --version | awk '{print $2}')"
meta load "-c $CLIENTS -r $KEYSPACE, -n $REQUESTS without pipelining, -n $REQUESTS_P with -P $PIPELINE; value size 3 bytes (redis-benchmark's default -d)"
meta repeat "$REPEAT"
REF_START=$(cpuref)
meta ref_start "$REF_START"
for t in "${!SKIP[@]}"; do meta "skip_$t" "${SKIP[$t]}"; log "$t: SKIPPED — ${SKIP[$t]}"; done

log "resp bench: $MODE mode, targets ${RUN_TARGETS[*]} (ports: ringfront $RF_RESP_PORT, redis $REDIS_PORT), pipelining ${MODES[*]}, $REPEAT repeat(s); speed reference now $REF_START µs"
FAILURES=0
T_START=$SECONDS
for ((rep = 1; rep <= REPEAT; rep++)); do
	for p in "${MODES[@]}"; do
		# interleaved, and the order rotates with the repeat
		order=()
		for t in "${RUN_TARGETS[@]}"; do [[ -n ${SKIP[$t]:-} ]] || order+=("$t"); done
		if ((${#order[@]} > 1)); then
			k=$(( (rep - 1) % ${#order[@]} ))
			order=("${order[@]:k}" "${order[@]:0:k}")
		fi
		for t in "${order[@]}"; do
			wait_quiet
			if ! start_server "$t"; then
				log "$t: FAILED to start — $WHY"
				meta "fail_$t" "$WHY"
				FAILURES=$((FAILURES + 1))
				continue
			fi
			for test in "${TESTS[@]}"; do
				bench_one "$t" "$p" "$test" "$rep"
			done
			stop_tree "$SERVER_ROOT" || meta "note_$t" "left processes behind"
			[[ -z $STOP_CRASH ]] || { meta "crash_${t}_${rep}_$p" "$t died of SIG$STOP_CRASH when stopped"; FAILURES=$((FAILURES + 1)); }
		done
	done
done
meta elapsed "$((SECONDS - T_START)) s"

# ---------------------------------------------------------------- report
stamp=$(date '+%Y-%m-%d-%H%M')
res=$RESULTS_DIR/resp-$stamp.md
[[ -e $res ]] && res=$RESULTS_DIR/resp-$stamp-$(date +%S).md
"$PY" "$HERE/report.py" report "$TMP" >"$res" || die "report failed"
cat "$res"
log ""
log "written to ${res#"$ROOT"/}"
bad=$(grep -c '"check_failed": true' "$TMP/runs.jsonl")
if ((bad)); then
	log "$bad run(s) FAILED a check (errors from the server, or it did not count the"
	log "commands sent): see the flags in the report"
	FAILURES=$((FAILURES + bad))
fi
((FAILURES == 0)) || { log "$FAILURES failure(s)"; exit 1; }
exit 0
