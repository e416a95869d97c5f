#!/usr/bin/env bash
# bench/syscalls/run.sh - system calls per proxied request: issue 8 asks for
# at most 0.5 io_uring_enter calls per request under load and no other
# system call on the hot path. Each target is started by `bench/wrk/run.sh
# --serve TARGET` (the benchmark's backends, configurations and pinning:
# the proxy on CPU 0, backends and wrk on CPU 1), loaded by wrk with
# keep-alive connections, and measured twice:
#
#  1. perf stat on the system-call tracepoints while wrk runs: the count of
#     every system call and of each event loop's wait call (io_uring_enter,
#     epoll_wait), per request wrk completed. Counting tracepoints costs the
#     target next to nothing, so these are the real figures.
#  2. strace -c -f on every thread during a second wrk run: which calls they
#     are. strace makes each call several times slower, so more completions
#     pile up per wait and its counts per request come out lower than the
#     real ones; its table is there for the names and shares.
#
# Usage: bench/syscalls/run.sh [--duration S] [--conns N] [--targets LIST] [--keep]
#   --targets   from ringfront, ringfront-batch (batch_wait_us = 100),
#               ringfront-epoll, haproxy, nginx
#               (default ringfront,ringfront-batch,haproxy,nginx)
# The report is printed and written to bench/results/syscalls-YYYY-MM-DD-HHMM.md.
# About 20 s per target with the default 5 s runs.
set -u -o pipefail

ARGS="$*"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_NAME=syscalls/run.sh
. "$ROOT/bench/lib.sh"

PROXY_PORT=19080                # bench/wrk/run.sh's
DURATION=5
CONNS=64
TARGETS=ringfront,ringfront-batch,haproxy,nginx
RESULTS_DIR=$ROOT/bench/results
WAITS=(io_uring_enter epoll_wait epoll_pwait)

while (($#)); do
	case $1 in
	--duration) DURATION=${2:?}; shift ;;
	--conns) CONNS=${2:?}; shift ;;
	--targets) TARGETS=${2:?}; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) bench_help; exit 0 ;;
	*) die "unknown option: $1 (see --help)" ;;
	esac
	shift
done
[[ $DURATION =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] || die "--duration and --conns take whole numbers"

bench_deps bench wrk haproxy nginx curl taskset timeout strace
command -v perf >/dev/null || die "perf not found (Debian: linux-perf)"
[[ $(perf list 2>/dev/null) == *raw_syscalls:sys_enter* ]] \
	|| die "perf cannot see the raw_syscalls tracepoints (tracefs not mounted, or not root)"
bench_tmpdir ringfront-syscalls
mkdir -p "$RESULTS_DIR"

events=raw_syscalls:sys_enter
for c in "${WAITS[@]}"; do events+=",syscalls:sys_enter_$c"; done
URL=http://$HOST:$PROXY_PORT/users/42
WRK=(taskset -c 1 wrk -t1 "-c$CONNS" "-d${DURATION}s" "$URL")
: >"$TMP/rows.tsv"

# measure TARGET: one row of rows.tsv and the strace table in TMP/TARGET.strace
measure() {
	local t=$1 serve pids tids=() p rps cnt w
	start_bg "$TMP/$t.serve.log" "$ROOT/bench/wrk/run.sh" --serve "$t" --serve-for $((DURATION * 3 + 60)) --quiet-wait 0
	serve=$LAST_PID
	proc_start_time "$serve"
	for ((w = 0; w < 300; w++)); do
		grep -q '^serving;' "$TMP/$t.serve.log" && break
		proc_alive "$serve" "$START_TIME" || break
		sleep 0.2
	done
	pids=$(sed -n "s/^$t: listening on .*(tree: \([0-9 ]*\)).*/\1/p" "$TMP/$t.serve.log")
	if [[ -z $pids ]]; then
		log "$t: did not start: $(tail -n 3 "$TMP/$t.serve.log" | tr '\n' ' ')"
		stop_tree "$serve"
		return
	fi
	"${WRK[@]/-d${DURATION}s/-d1s}" >/dev/null   # warm-up: pools and buffers
	# 1. counts
	"${WRK[@]}" >"$TMP/$t.wrk" &
	w=$!
	sleep 1
	perf stat -x, -e "$events" -p "${pids// /,}" -o "$TMP/$t.perf" -- sleep $((DURATION - 2 > 1 ? DURATION - 2 : 1)) 2>/dev/null
	wait "$w"
	rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/$t.wrk")
	# 2. names: strace on every thread
	for p in $pids; do tids+=(-p "$p"); done
	strace -c -f -o "$TMP/$t.strace" "${tids[@]}" 2>/dev/null &
	w=$!
	sleep 0.5
	"${WRK[@]}" >"$TMP/$t.wrk-strace"
	kill -TERM "$w" 2>/dev/null; wait "$w" 2>/dev/null
	stop_tree "$serve"
	cnt=$(awk -F, -v s=$((DURATION - 2 > 1 ? DURATION - 2 : 1)) '$3 ~ /sys_enter/ {sub(/.*sys_enter_?/, "", $3); printf "%s=%.0f ", ($3 == "" ? "all" : $3), $1 / s}' "$TMP/$t.perf")
	printf '%s\t%s\t%s\t%s\n' "$t" "$rps" "$cnt" \
		"$(awk '/^Requests\/sec/ {print $2}' "$TMP/$t.wrk-strace")" >>"$TMP/rows.tsv"
	log "$t: $rps req/s; per second: $cnt"
}

IFS=, read -r -a RUN_TARGETS <<<"$TARGETS"
for t in "${RUN_TARGETS[@]}"; do measure "$t"; done

OUT=$RESULTS_DIR/syscalls-$(date '+%Y-%m-%d-%H%M').md
{
	echo "# ringfront benchmark: system calls per request — $(date '+%F %H:%M %Z')"
	echo
	echo "\`bench/syscalls/run.sh $ARGS\`: keep-alive GET through each proxy (\`${WRK[*]}\`), the proxy alone on CPU 0, backends and wrk on CPU 1, as \`bench/wrk/run.sh\`'s keepalive scenario. Counts from \`perf stat -e $events\` over $((DURATION - 2 > 1 ? DURATION - 2 : 1)) s of the run, per second, ÷ wrk's requests per second. Kernel $(uname -r)."
	echo
	echo "| target | req/s | system calls / req | io_uring_enter / req | epoll_wait / req | other calls / req |"
	echo "|---|--:|--:|--:|--:|--:|"
	while IFS=$'\t' read -r t rps cnt _; do
		[[ -n $rps ]] || continue
		awk -v t="$t" -v rps="$rps" -v cnt="$cnt" 'BEGIN {
			n = split(cnt, kv, " ")
			for (i = 1; i <= n; i++) { split(kv[i], p, "="); c[p[1]] = p[2] }
			waits = c["io_uring_enter"] + c["epoll_wait"] + c["epoll_pwait"]
			printf "| %s | %\047d | %.3f | %.3f | %.3f | %.3f |\n", t, rps, c["all"] / rps,
				c["io_uring_enter"] / rps, (c["epoll_wait"] + c["epoll_pwait"]) / rps,
				(c["all"] - waits) / rps }'
	done <"$TMP/rows.tsv"
	echo
	echo "## Which calls (strace -c -f, a second run under strace)"
	echo
	echo "strace slows every call, so these runs are slower (req/s in the heading) and batch more per wait than the counted ones above; read the names and shares."
	while IFS=$'\t' read -r t _ _ srps; do
		[[ -f $TMP/$t.strace ]] || continue
		echo
		echo "### $t ($srps req/s under strace)"
		echo
		echo '```'
		grep -v '^$' "$TMP/$t.strace"
		echo '```'
	done <"$TMP/rows.tsv"
} >"$OUT"
cat "$OUT"
log "written to $OUT"
