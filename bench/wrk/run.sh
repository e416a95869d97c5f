#!/usr/bin/env bash
# bench/wrk/run.sh - side-by-side benchmark of ringfront, HAProxy and nginx
# (and of the backend itself, "direct") on 127.0.0.1, driven by wrk.
#
# Two nginx backends run on CPU 1, each proxy in turn on CPU 0 with one
# worker, wrk on CPU 1. For every run we record wrk's figures, the CPU time
# of the proxy's whole process tree (so CPU per request), its memory, a CPU
# speed reference before, during and after, and how busy the machine was next to
# what our own processes used. bench/README.md explains the figures.
#
# Usage: bench/wrk/run.sh [--duration S] [--repeat N] [--scenarios a,b|all]
#                         [--targets ringfront,haproxy,nginx,direct]
#                         [--io uring|epoll|both]
#                         [--whole-machine] [--quick] [--quiet-wait S]
#                         [--quiet-budget S] [--keep] [--list]
#        bench/wrk/run.sh --serve ringfront|haproxy|nginx|backends [--serve-for S]
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_NAME=wrk/run.sh
. "$ROOT/bench/lib.sh"

PROXY_PORT=19080
BE_PORTS=(19101 19102)
SLOW_PORT=19103                 # the slow scenario's second backend (demo-backend)
SLOW_MS=20                      # ... and how late it answers
# ringfront's variants: each of its configurations with one setting
# changed. ringfront-epoll: the epoll event backend; ringfront-batch:
# batched io_uring waits; ringfront-w1: one worker (against workers = auto
# in --whole-machine mode: how ringfront scales).
declare -A VARIANT_SED=(
	[ringfront-epoll]='s/^\[server\]$/[server]\nio = epoll/'
	[ringfront-batch]='s/^\[server\]$/[server]\nbatch_wait_us = 100/'
	[ringfront-w1]='s/^workers = .*/workers = 1/'
)
VARIANTS=(ringfront-epoll ringfront-batch ringfront-w1)
is_variant() { [[ -n ${VARIANT_SED[$1]:-} ]]; }

DURATION=5
REPEAT=3
SCENARIOS=keepalive,close,64k
TARGETS=ringfront,haproxy,nginx,direct
IO=uring
WHOLE=0
KEEP=0
SERVE=
SERVE_FOR=600
QUIET_WAIT=10       # per run, seconds to wait for other people's load to pass
QUIET_BUDGET=60     # ... and at most this much over the whole session
RINGFRONT=${RINGFRONT:-$ROOT/ringfront}
DEMO_BACKEND=${DEMO_BACKEND:-$ROOT/build/demo-backend}
RESULTS_DIR=$ROOT/bench/results

# The scenarios. One row each:
#   name | wrk threads | connections | path | extra wrk args | targets | unit | status | description
# unit: rps (requests/s) or mbps (also report MiB/s), plus ",nolat" when
# wrk's latency figures mean nothing (pipelining), ",429" (exact status
# counts from status.lua, 429 share, backends must see ~0 requests),
# ",cache" (every response must come from the proxy's cache: a second GET
# before the run must say X-Cache-Status: HIT and the backends must see ~0
# requests during it, else the run fails loudly) or ",share" (the slow
# backend's share of the requests, p99 ratio). targets:
# ringfront-lt is ringfront with balance = least_time; it runs with
# ringfront. status: ok, or the reason the scenario is skipped. @HERE@ is
# this directory. To add a scenario, add a row (and, if it needs more than
# plain proxying, the per-target configuration files it needs: see
# cfg_path). "--scenarios all" runs every row.
SCENARIO_TABLE='
keepalive | 1 | 64   | /users/42       |                            | ringfront haproxy nginx direct | rps  | ok | keep-alive GET, 66-byte JSON body, 64 connections
close     | 1 | 64   | /users/42       | -H "Connection: close"     | ringfront haproxy nginx direct | rps  | ok | one request per client connection (Connection: close); backend connections stay pooled
64k       | 1 | 64   | /bytes64k       |                            | ringfront haproxy nginx direct | mbps | ok | keep-alive GET of a 64 KiB body
cache     | 1 | 64   | /cache/users/42 |                            | ringfront haproxy nginx        | rps,cache | ok | cache hits: the backend sends Cache-Control: max-age=60, every request is answered from the proxy cache
429       | 1 | 64   | /users/42       | -s @HERE@/status.lua       | ringfront haproxy nginx        | rps,429 | ok | every request rejected by the rate limiter (429): one key, 1 request per hour
2000conn  | 2 | 2000 | /users/42       |                            | ringfront haproxy nginx direct | rps  | ok | keep-alive GET over 2,000 busy connections (wrk -t2)
pipeline  | 1 | 64   | /users/42       | -s @HERE@/pipeline.lua     | ringfront haproxy nginx direct | rps,nolat | ok | 16 pipelined GETs per write on each of 64 connections
slow      | 1 | 64   | /users/42       |                            | ringfront ringfront-lt haproxy nginx | rps,share | ok | one fast backend and one answering 20 ms late: least_conn (ringfront also least_time)
'

usage() {
	bench_help
	cat <<EOF

Options:
  --duration S        seconds per run (default $DURATION)
  --repeat N          runs per scenario and target; medians are reported (default $REPEAT)
  --scenarios LIST    comma-separated scenario names (--list), or "all" for every
                      one of them (default $SCENARIOS)
  --targets LIST      from ringfront,haproxy,nginx,direct (default all four),
                      and ringfront's variants: ringfront-epoll ([server] io =
                      epoll), ringfront-batch (batch_wait_us = 100) and
                      ringfront-w1 (workers = 1: with --whole-machine, the
                      scaling of workers = auto against one worker)
  --io uring|epoll|both
                      ringfront's event backend: uring runs "ringfront" as
                      configured (io = auto: io_uring where it is allowed),
                      epoll runs "ringfront-epoll" in its place, both runs
                      the two side by side (default $IO)
  --whole-machine     no pinning: ringfront workers=auto, HAProxy nbthread 2,
                      nginx worker_processes 2, wrk -t2 on both CPUs
  --quick             smoke test: 1 s runs, 1 repeat, no --quiet-wait
  --quiet-wait S      before each run, wait up to S s (default $QUIET_WAIT; at most
                      $QUIET_BUDGET s per session) while other processes keep the
                      machine busy; 0 disables
  --quiet-budget S    at most S s of such waiting per session (default $QUIET_BUDGET)
  --keep              keep the temporary directory (configs, logs, wrk output)
  --list              list the scenarios and exit
  --serve TARGET      no benchmark: start the backends and TARGET (ringfront,
                      haproxy, nginx, or "backends" alone) with the benchmark's
                      configs and pinning, print their pids and configs, and
                      wait (Ctrl-C, or --serve-for S, default $SERVE_FOR) so you can
                      drive wrk by hand and profile (see bench/README.md)
Environment: RINGFRONT=path/to/binary (default ./ringfront),
             DEMO_BACKEND=path (slow scenario's backend, default build/demo-backend)
EOF
}

# ---------------------------------------------------------------- scenarios
declare -a SC_ALL=()
declare -A SC_THR SC_CONNS SC_PATH SC_EXTRA SC_TARGETS SC_UNIT SC_STATUS SC_DESC
while IFS='|' read -r n t c p x tg u st ds; do
	n=$(trim "$n")
	[[ -z $n || $n == \#* ]] && continue
	SC_ALL+=("$n")
	SC_THR[$n]=$(trim "$t"); SC_CONNS[$n]=$(trim "$c"); SC_PATH[$n]=$(trim "$p")
	SC_EXTRA[$n]=$(trim "$x"); SC_TARGETS[$n]=$(trim "$tg"); SC_UNIT[$n]=$(trim "$u")
	SC_STATUS[$n]=$(trim "$st"); SC_DESC[$n]=$(trim "$ds")
done <<<"$SCENARIO_TABLE"

# ---------------------------------------------------------------- options
while (($#)); do
	case $1 in
	--duration) DURATION=${2:?}; shift ;;
	--duration=*) DURATION=${1#*=} ;;
	--repeat) REPEAT=${2:?}; shift ;;
	--repeat=*) REPEAT=${1#*=} ;;
	--scenarios) SCENARIOS=${2:?}; shift ;;
	--scenarios=*) SCENARIOS=${1#*=} ;;
	--targets) TARGETS=${2:?}; shift ;;
	--targets=*) TARGETS=${1#*=} ;;
	--io) IO=${2:?}; shift ;;
	--io=*) IO=${1#*=} ;;
	--whole-machine) WHOLE=1 ;;
	--quick) DURATION=1; REPEAT=1; QUIET_WAIT=0 ;;
	--quiet-wait) QUIET_WAIT=${2:?}; shift ;;
	--quiet-wait=*) QUIET_WAIT=${1#*=} ;;
	--quiet-budget) QUIET_BUDGET=${2:?}; shift ;;
	--quiet-budget=*) QUIET_BUDGET=${1#*=} ;;
	--keep) KEEP=1 ;;
	--serve) SERVE=${2:?}; shift ;;
	--serve=*) SERVE=${1#*=} ;;
	--serve-for) SERVE_FOR=${2:?}; shift ;;
	--serve-for=*) SERVE_FOR=${1#*=} ;;
	--list)
		for n in "${SC_ALL[@]}"; do
			printf '%-10s %-5s %s\n' "$n" "$([[ ${SC_STATUS[$n]} == ok ]] && echo ok || echo skip)" "${SC_DESC[$n]}"
		done
		exit 0 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
	shift
done
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration takes whole seconds >= 1 (wrk's -d is in whole seconds)"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat takes a number >= 1"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "--quiet-wait takes seconds"
[[ $QUIET_BUDGET =~ ^[0-9]+$ ]] || die "--quiet-budget takes seconds"
[[ $SCENARIOS == all ]] && SCENARIOS=$(IFS=,; echo "${SC_ALL[*]}")
IFS=, read -r -a RUN_SCENARIOS <<<"$SCENARIOS"
for s in "${RUN_SCENARIOS[@]}"; do
	[[ -n ${SC_UNIT[$s]:-} ]] || die "unknown scenario '$s' (known: ${SC_ALL[*]})"
done
case $SERVE in
''|backends) ;;
*)	[[ $SERVE =~ ^(ringfront|haproxy|nginx)$ ]] || is_variant "$SERVE" \
		|| die "--serve takes ringfront, $(printf '%s, ' "${VARIANTS[@]}")haproxy, nginx or backends"
	TARGETS=$SERVE ;;
esac
[[ $SERVE_FOR =~ ^[1-9][0-9]*$ ]] || die "--serve-for takes seconds"
case $IO in
uring) ;;
epoll) TARGETS=$(sed -E 's/(^|,)ringfront(,|$)/\1ringfront-epoll\2/' <<<"$TARGETS") ;;
both|uring,epoll|epoll,uring)
	[[ ,$TARGETS, == *,ringfront-epoll,* ]] \
		|| TARGETS=$(sed -E 's/(^|,)ringfront(,|$)/\1ringfront,ringfront-epoll\2/' <<<"$TARGETS") ;;
*) die "--io takes uring, epoll or both" ;;
esac
IFS=, read -r -a RUN_TARGETS <<<"$TARGETS"
for t in "${RUN_TARGETS[@]}"; do
	[[ $t =~ ^(ringfront|haproxy|nginx|direct)$ ]] || is_variant "$t" || die "unknown target '$t'"
done
# The slow scenario needs the demo backend (built by make with ringfront).
WANT_SLOW=0
for s in "${RUN_SCENARIOS[@]}"; do [[ $s == slow ]] && WANT_SLOW=1; done
if ((WANT_SLOW)) && [[ ! -x $DEMO_BACKEND ]]; then
	SC_STATUS[slow]="$DEMO_BACKEND not built (make builds it)"
	WANT_SLOW=0
fi

# ---------------------------------------------------------------- tools
bench_deps bench wrk haproxy nginx curl taskset timeout cc
bench_python
bench_nofile
for s in "${RUN_SCENARIOS[@]}"; do
	((SC_CONNS[$s] + 50 < MAXCONN)) || die "scenario $s needs ${SC_CONNS[$s]} connections; ulimit -n is only $NOFILE"
done
bench_pinning "$WHOLE"
if ((WHOLE)); then
	RF_WORKERS=auto; HA_THREADS=2; NG_WORKERS=2
else
	RF_WORKERS=1; HA_THREADS=1; NG_WORKERS=1
fi

# ---------------------------------------------------------------- setup
for port in "$PROXY_PORT" "${BE_PORTS[@]}" $( ((WANT_SLOW)) && echo "$SLOW_PORT"); do
	if port_listening "$port"; then
		die "port $port is already in use ($(port_owner "$port")); stop that first (another benchmark?)"
	fi
done

bench_tmpdir ringfront-bench
mkdir -p "$TMP/www" "$TMP/wrk" "$RESULTS_DIR"
head -c 65536 /dev/zero | tr '\0' 'x' >"$TMP/www/bytes64k"
: >"$TMP/runs.jsonl"; : >"$TMP/skips.tsv"; : >"$TMP/scenarios.tsv"; : >"$TMP/meta.tsv"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/meta.tsv"; }
skip() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TMP/skips.tsv"; }

cpuref_build

# The backends: one nginx worker each, the same small JSON at every path,
# Cache-Control under /cache/, a 64 KiB file, and two bench-only locations:
# stub_status (request and connection counts) and an echo of the forwarding
# headers a proxy added.
for i in 0 1; do
	d=$TMP/be$((i + 1))
	mkdir -p "$d"
	{
		echo "worker_processes 1;"
		nginx_common "$d"
		cat <<EOF
http {
$(nginx_http_common "$d")
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64 inactive=60s;
    default_type application/json;
    server {
        listen $HOST:${BE_PORTS[$i]} backlog=4096;
        root $TMP/www;
        location / { return 200 '$BODY'; }
        location /cache/ { add_header Cache-Control "max-age=60"; return 200 '$BODY'; }
        location = /bytes64k { default_type application/octet-stream; }
        location = /__bench/status { stub_status; }
        location = /__bench/echo {
            default_type text/plain;
            return 200 "xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto via=\$http_via host=\$http_host connection=\$http_connection\n";
        }
    }
}
EOF
	} >"$d/nginx.conf"
	nginx -t -q -p "$d" -e "$d/error.log" -c "$d/nginx.conf" || die "backend config rejected: $d/nginx.conf"
done

# The proxies' configurations: a base one per target, and variants for the
# scenarios that need more than plain proxying (429: a rate limit that
# rejects everything; slow: least-connections balancing over one fast and
# one slow backend). cfg_path TARGET SCENARIO names the file a run uses.
#
# HAProxy: one thread (pinned mode), connection reuse on (the default "safe"
# opens a backend connection per Connection: close request), the same
# forwarding headers as the others, private pid and stats socket.
# haproxy_cfg FRONTEND_LINES BALANCE SERVER2 [BACKEND_LINES [SECTIONS]]
haproxy_cfg() {
	haproxy_head "$HA_THREADS" "$TMP/haproxy"
	cat <<EOF
${5:-}
frontend fe
    bind $HOST:$PROXY_PORT backlog 4096
$1    http-request set-header X-Forwarded-Proto http
    default_backend app

backend app
    balance $2
    http-reuse always
    http-request add-header Via "1.1 haproxy"
${4:-}    server s1 $HOST:${BE_PORTS[0]}
    server s2 $HOST:$3
EOF
}
mkdir -p "$TMP/haproxy"
haproxy_cfg "" roundrobin "${BE_PORTS[1]}" >"$TMP/haproxy/haproxy.cfg"
# 429: the usual HAProxy rate limit, a stick-table counting each source's
# requests; the second request of an hour is denied before anything else.
haproxy_cfg "    stick-table type ip size 1m expire 1h store http_req_rate(1h)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1 }
" roundrobin "${BE_PORTS[1]}" >"$TMP/haproxy/haproxy-429.cfg"
haproxy_cfg "" leastconn "$SLOW_PORT" >"$TMP/haproxy/haproxy-slow.cfg"
# cache: HAProxy's RAM cache (a "cache" section, cache-use on the request,
# cache-store on the response) as large as ringfront's; max-age caps what
# the backend's Cache-Control allows (60 s either way). X-Cache-Status like
# the others': a response with no server behind it came from the cache.
haproxy_cfg "" roundrobin "${BE_PORTS[1]}" "    http-request cache-use rc
    http-response cache-store rc
    http-response set-header X-Cache-Status HIT if !{ srv_id -m found }
    http-response set-header X-Cache-Status MISS if { srv_id -m found }
" "
cache rc
    total-max-size 64
    max-object-size 1048576
    max-age 60
" >"$TMP/haproxy/haproxy-cache.cfg"

# nginx as a proxy: upstream keep-alive (keepalive + HTTP/1.1 + empty
# Connection), keepalive_requests raised on both sides, backlog 4096, no
# temp files for large bodies, and buffers that hold a whole 64 KiB response
# (the default 4k + 8x4k makes nginx stream it in pieces: ~80 instead of
# ~45 CPU us per 64 KiB request here; HAProxy's buffers are 16k too).
# nginx_cfg HTTP_LINES LOCATION_LINES UPSTREAM_LINES SERVER2
d=$TMP/nginx
mkdir -p "$d"
REUSEPORT=
((WHOLE)) && REUSEPORT=' reuseport'
nginx_cfg() {
	echo "worker_processes $NG_WORKERS;"
	nginx_common "$d"
	cat <<EOF
http {
$(nginx_http_common "$d")
$1    upstream app {
$3        server $HOST:${BE_PORTS[0]};
        server $HOST:$4;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen $HOST:$PROXY_PORT backlog=4096$REUSEPORT;
        location / {
$2            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Via "1.1 nginx";
            proxy_max_temp_file_size 0;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
        }
    }
}
EOF
}
nginx_cfg "" "" "" "${BE_PORTS[1]}" >"$d/nginx.conf"
# 429: limit_req with a 429 status (the default is 503). Each rejection is
# logged at limit_req_log_level (default error, which error_log warn keeps):
# one write per request that HAProxy and ringfront do not make, so it is
# lowered to info, below what is logged, like the access logs being off.
# nginx admits 2 requests (rate + burst 1) where the others admit 1.
nginx_cfg "    limit_req_zone \$binary_remote_addr zone=rl:10m rate=1r/m;
" "            limit_req zone=rl burst=1 nodelay;
            limit_req_status 429;
            limit_req_log_level info;
" "" "${BE_PORTS[1]}" >"$d/nginx-429.conf"
nginx_cfg "" "" "        least_conn;
" "$SLOW_PORT" >"$d/nginx-slow.conf"
# cache: proxy_cache, file-backed (hits are read from the page cache), 64 MB
# like the others, the zone's keys in shared memory; misses of one key make
# one backend request (proxy_cache_lock, as ringfront's coalesce = on);
# freshness from the backend's Cache-Control. X-Cache-Status from
# $upstream_cache_status. The cache manager and loader processes are part
# of nginx's process tree, so their CPU time is counted too.
nginx_cfg "    proxy_cache_path $d/cache levels=1:2 keys_zone=rc:10m max_size=64m inactive=10m use_temp_path=off;
" "            proxy_cache rc;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status always;
" "" "${BE_PORTS[1]}" >"$d/nginx-cache.conf"

# ringfront: the same shape in its INI (keys from src/config.h).
# ringfront_cfg SERVER2 UPSTREAM_LINES EXTRA_SECTIONS
mkdir -p "$TMP/ringfront" "$TMP/ringfront-lt"
ringfront_cfg() {
	cat <<EOF
; generated by bench/wrk/run.sh
[server]
listen = $HOST:$PROXY_PORT
workers = $RF_WORKERS
log_level = warn
max_connections = $MAXCONN
$3
[upstream app]
servers = $HOST:${BE_PORTS[0]} $HOST:$1
health_path =
keepalive = 256
$2
[route]
/ = app
EOF
}
ringfront_cfg "${BE_PORTS[1]}" "" "" >"$TMP/ringfront/ringfront.ini"
# 429: one key per client address, one request per hour. RateLimit-* and
# Retry-After headers stay on (the default): ringfront's 429s carry them,
# HAProxy's and nginx's do not.
ringfront_cfg "${BE_PORTS[1]}" "" "
[ratelimit]
rate = 1/3600s
burst = 1
key = ip
" >"$TMP/ringfront/ringfront-429.ini"
ringfront_cfg "$SLOW_PORT" "balance = least_conn" "" >"$TMP/ringfront/ringfront-slow.ini"
ringfront_cfg "$SLOW_PORT" "balance = least_time" "" >"$TMP/ringfront/ringfront-slow-lt.ini"
# cache: the response cache on every route, 64 MB (HAProxy's and nginx's
# size too), no Redis-protocol port; coalesce stays on (the default).
ringfront_cfg "${BE_PORTS[1]}" "" "
[cache]
memory = 64m
" >"$TMP/ringfront/ringfront-cache.ini"
# The variants' configurations (VARIANT_SED at the top).
for v in "${VARIANTS[@]}"; do
	mkdir -p "$TMP/$v"
	for f in "$TMP"/ringfront/ringfront*.ini; do
		sed "${VARIANT_SED[$v]}" "$f" >"$TMP/$v/${f##*/}"
	done
done

# wanted TARGET SCENARIO: TARGET runs in SCENARIO. ringfront-lt (ringfront
# with balance = least_time, in the slow scenario) comes with ringfront;
# a variant runs wherever ringfront is a target.
wanted() {
	case $1 in
	ringfront-lt) [[ " ${RUN_TARGETS[*]} " == *" ringfront "* && " ${SC_TARGETS[$2]} " == *" $1 "* ]] ;;
	*)	local as=$1
		is_variant "$1" && as=ringfront
		[[ " ${RUN_TARGETS[*]} " == *" $1 "* && " ${SC_TARGETS[$2]} " == *" $as "* ]] ;;
	esac
}

# cfg_path TARGET SCENARIO: the configuration file of that run.
cfg_path() {
	case $1 in
	ringfront-lt) CFG=$TMP/ringfront/ringfront-$2-lt.ini ;;
	ringfront*) CFG=$TMP/$1/ringfront.ini   # ringfront or a variant
		[[ -f $TMP/$1/ringfront-$2.ini ]] && CFG=$TMP/$1/ringfront-$2.ini ;;
	haproxy) CFG=$TMP/haproxy/haproxy.cfg
		[[ -f $TMP/haproxy/haproxy-$2.cfg ]] && CFG=$TMP/haproxy/haproxy-$2.cfg ;;
	nginx) CFG=$TMP/nginx/nginx.conf
		[[ -f $TMP/nginx/nginx-$2.conf ]] && CFG=$TMP/nginx/nginx-$2.conf ;;
	*) CFG= ;;
	esac
}

# The command line of each target in a scenario; direct has none (it is
# backend 1).
target_cmd() {
	cfg_path "$1" "$2"
	case $1 in
	ringfront*) CMD=("${PIN0[@]}" "$RINGFRONT" -c "$CFG") ;;
	haproxy) CMD=("${PIN0[@]}" haproxy -W -db -f "$CFG") ;;
	nginx) CMD=("${PIN0[@]}" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$CFG") ;;
	direct) CMD=() ;;
	esac
}

declare -A DISABLED=()     # target -> reason it is skipped from now on
declare -A BROKEN=()       # "target scenario" -> reason
NOTES=

for f in "$TMP"/haproxy/haproxy*.cfg; do
	haproxy -c -q -f "$f" >/dev/null 2>"$TMP/haproxy/check.log" \
		|| { cat "$TMP/haproxy/check.log" >&2; die "HAProxy rejected its config ${f##*/}"; }
done
for f in "$TMP"/nginx/nginx*.conf; do
	nginx -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$f" \
		|| die "nginx rejected its proxy config ${f##*/}"
done

want_ringfront=0
for t in "${RUN_TARGETS[@]}"; do [[ $t == ringfront* ]] && want_ringfront=1; done
RF_VERSION="not built"
if ((want_ringfront)); then
	if [[ ! -x $RINGFRONT ]]; then
		DISABLED[ringfront]="$RINGFRONT not found (not built yet?)"
		log "ringfront: SKIPPED — $RINGFRONT does not exist or is not executable (build it with make)"
	else
		RF_VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +changes), built $(date -r "$RINGFRONT" '+%F %T')"
		# -t checks the config and exits; a build that does not know -t yet
		# would start serving instead, so bound it.
		timeout -k 1 5 "$RINGFRONT" -t -c "$TMP/ringfront/ringfront.ini" >"$TMP/ringfront/check.log" 2>&1
		rc=$?
		if ((rc == 124 || rc == 137)); then
			log "ringfront: '-t -c' did not return within 5 s; going on without the config check"
			wait_port_free "$PROXY_PORT" 5
		elif ((rc != 0)); then
			DISABLED[ringfront]="config check failed: $(head -c 300 "$TMP/ringfront/check.log" | tr '\n|' ' /')"
			log "ringfront: SKIPPED — '$RINGFRONT -t -c' rejected the generated config (exit $rc):"
			sed 's/^/  /' "$TMP/ringfront/check.log" | head -20 >&2
		fi
		# The scenario variants (rate limit, balancing): a build that does
		# not know their keys yet skips those scenarios only.
		if [[ -z ${DISABLED[ringfront]:-} ]] && ((rc == 0)); then
			for s in "${RUN_SCENARIOS[@]}"; do
				for t in ringfront ringfront-lt "${VARIANTS[@]}"; do
					wanted "$t" "$s" || continue
					cfg_path "$t" "$s"
					[[ $CFG != "$TMP/ringfront/ringfront.ini" ]] || continue
					if ! timeout -k 1 5 "$RINGFRONT" -t -c "$CFG" >"$TMP/ringfront/check-$t-$s.log" 2>&1; then
						BROKEN["$t $s"]="config check failed: $(head -c 300 "$TMP/ringfront/check-$t-$s.log" | tr '\n|' ' /')"
						skip "$t" "$s" "${BROKEN["$t $s"]}"
						log "$t: scenario $s SKIPPED — '$RINGFRONT -t -c' rejected ${CFG##*/}:"
						sed 's/^/  /' "$TMP/ringfront/check-$t-$s.log" | head -5 >&2
					fi
				done
			done
		fi
	fi
fi

# ---------------------------------------------------------------- backends
BE_PIDS=()
for i in 0 1; do
	d=$TMP/be$((i + 1))
	start_bg "$d/stdout.log" "${PIN1[@]}" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
	BE_PIDS+=("$LAST_PID")
	proc_start_time "$LAST_PID"
	wait_listen "$LAST_PID" "$START_TIME" "${BE_PORTS[$i]}" 5 \
		|| { cat "$d/error.log" "$d/stdout.log" >&2; die "backend on :${BE_PORTS[$i]} did not start"; }
done
for port in "${BE_PORTS[@]}"; do
	got=$(curl -s -m 2 "http://$HOST:$port/users/42")
	[[ $got == "$BODY" ]] || die "backend :$port answers '$got'"
	sz=$(curl -s -m 2 "http://$HOST:$port/bytes64k" | wc -c)
	((sz == 65536)) || die "backend :$port /bytes64k is $sz bytes"
done

# The slow scenario's second backend: the demo backend answering every
# request SLOW_MS late (nginx-light has no delay directive), on CPU 1 with
# the others. Its body is longer (86 bytes: it adds "served_by").
SLOW_PID=
if ((WANT_SLOW)); then
	mkdir -p "$TMP/slowbe"
	start_bg "$TMP/slowbe/stdout.log" "${PIN1[@]}" "$DEMO_BACKEND" --host "$HOST" --port "$SLOW_PORT" --delay-ms "$SLOW_MS" --quiet
	SLOW_PID=$LAST_PID
	proc_start_time "$LAST_PID"
	wait_listen "$LAST_PID" "$START_TIME" "$SLOW_PORT" 5 \
		|| { cat "$TMP/slowbe/stdout.log" >&2; die "the slow backend on :$SLOW_PORT did not start"; }
	got=$(curl -s -m 2 -o /dev/null -w '%{http_code} %{time_total}' "http://$HOST:$SLOW_PORT/users/42")
	[[ $got == 200\ * ]] || die "the slow backend :$SLOW_PORT answers '$got'"
fi

# stub_read PORT PREFIX: accepted connections and requests of a backend
# (nginx stub_status; the demo backend's /__stats for the slow one).
stub_read() {
	local a b c n=0 line
	printf -v "$2_acc" %s 0
	printf -v "$2_req" %s 0
	if [[ $1 == "$SLOW_PORT" ]]; then
		line=$(curl -s -m 2 "http://$HOST:$1/__stats")
		[[ $line =~ \"requests\":([0-9]+),\"connections\":([0-9]+) ]] || return 0
		printf -v "$2_req" %s "${BASH_REMATCH[1]}"
		printf -v "$2_acc" %s "${BASH_REMATCH[2]}"
		return 0
	fi
	while read -r line; do
		((++n == 3)) || continue
		read -r a b c <<<"$line"
		printf -v "$2_acc" %s "$a"
		printf -v "$2_req" %s "$c"
	done < <(curl -s -m 2 "http://$HOST:$1/__bench/status")
}

# ---------------------------------------------------------------- metadata
meta date "$(date '+%F %H:%M %Z')"
meta mode "$MODE: $(if ((WHOLE)); then echo 'no pinning; ringfront workers=auto, HAProxy nbthread 2, nginx worker_processes 2, wrk -t2'; else echo 'proxy on CPU 0 (1 worker/thread), backends + wrk on CPU 1'; fi)"
meta command "bench/wrk/run.sh --duration $DURATION --repeat $REPEAT --scenarios $(IFS=,; echo "${RUN_SCENARIOS[*]}") --targets $(IFS=,; echo "${RUN_TARGETS[*]}")$( ((WHOLE)) && echo ' --whole-machine')"
meta host "$(nproc) CPUs ($(cat /sys/devices/system/cpu/online)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
meta kernel "$(uname -r)"
meta nofile "$NOFILE (proxy maxconn $MAXCONN)"
meta ringfront "$RF_VERSION"
meta haproxy "$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
meta nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')"
meta wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
meta duration "$DURATION s"
meta repeat "$REPEAT"
meta targets "$(IFS=,; echo "${RUN_TARGETS[*]}")"
REF_START=$(cpuref)
meta ref_start "$REF_START"
# How busy is the machine before we load it? (1 s, nothing of ours running
# but two idle nginx backends.)
stat_sample S0; sleep 1; stat_sample S1
meta foreign_start "$(( (S1_busy_all - S0_busy_all) * 100 / CLK_TCK ))% of one CPU busy for 1 s before the first run"


nruns=0
for s in "${RUN_SCENARIOS[@]}"; do
	wrkcmd="wrk -t${SC_THR[$s]} -c${SC_CONNS[$s]} -d${DURATION}s --latency ${SC_EXTRA[$s]//@HERE@/bench\/wrk} http://$HOST:$PROXY_PORT${SC_PATH[$s]}"
	((WHOLE)) && wrkcmd=${wrkcmd/-t1 /-t2 }
	printf '%s\t%s\t%s\t%s\t%s\n' "$s" "${SC_DESC[$s]}" "$wrkcmd" "${SC_UNIT[$s]}" "${SC_STATUS[$s]}" >>"$TMP/scenarios.tsv"
	[[ ${SC_STATUS[$s]} == ok ]] || { log "scenario $s: skipped — ${SC_STATUS[$s]}"; continue; }
	for t in "${RUN_TARGETS[@]}"; do
		wanted "$t" "$s" || { skip "$t" "$s" "not a target of this scenario"; continue; }
		((nruns += REPEAT))
	done
	wanted ringfront-lt "$s" && ((nruns += REPEAT))
done
for t in "${!DISABLED[@]}"; do skip "$t" '*' "${DISABLED[$t]}"; done
if [[ -z $SERVE ]]; then
	log "ringfront bench: $MODE mode, $DURATION s × $REPEAT, scenarios ${RUN_SCENARIOS[*]}, targets ${RUN_TARGETS[*]}"
	log "up to $nruns runs, about $(( (nruns * (DURATION + 1) + 59) / 60 )) min; speed reference now $REF_START µs"
fi

# ---------------------------------------------------------------- one run
# start_target TARGET SCENARIO: start it on the free port and check that it
# answers; PROXY_ROOT is the root of the tree to measure. Returns non-zero
# (with a reason in WHY) if the target cannot be run.
start_target() {
	local t=$1 s=$2 code rc st
	WHY=
	if [[ $t == direct ]]; then
		PROXY_ROOT=${BE_PIDS[0]}
		URL_BASE=http://$HOST:${BE_PORTS[0]}
		return 0
	fi
	URL_BASE=http://$HOST:$PROXY_PORT
	if ! wait_port_free "$PROXY_PORT" 10; then
		WHY="port $PROXY_PORT still in use ($(port_owner "$PROXY_PORT"))"
		return 1
	fi
	target_cmd "$t" "$s"
	start_bg "$TMP/$t/run.log" "${CMD[@]}"
	PROXY_ROOT=$LAST_PID
	proc_start_time "$PROXY_ROOT"; st=$START_TIME
	wait_listen "$PROXY_ROOT" "$st" "$PROXY_PORT" 5
	rc=$?
	if ((rc != 0)); then
		WHY=$([[ $rc == 2 ]] && echo "exited at start" || echo "not listening on :$PROXY_PORT after 5 s")
		WHY+=": $(tail -n 3 "$TMP/$t/run.log" "$TMP/$t/error.log" 2>/dev/null | grep -v '^==>' | grep . | tail -n 3 | tr '\n|' ' /')"
		stop_tree "$PROXY_ROOT"
		return 1
	fi
	# Does it proxy? The scenario's path must come back intact (in the 429
	# scenario this first request is the one the limit admits; in the slow
	# one the demo backend's body may answer, which adds "served_by").
	code=$(curl -s -m 3 -o "$TMP/check.body" -w '%{http_code}' "$URL_BASE${SC_PATH[$s]}")
	if [[ $code != 200 ]] || { [[ ${SC_PATH[$s]} == /bytes64k ]] && (($(wc -c <"$TMP/check.body") != 65536)); } \
		|| { [[ ${SC_PATH[$s]} != /bytes64k && $s != slow ]] && [[ $(cat "$TMP/check.body") != "$BODY" ]]; } \
		|| { [[ $s == slow ]] && [[ $(cat "$TMP/check.body") != *'"id":42,'* ]]; }; then
		WHY="GET ${SC_PATH[$s]} through it gave HTTP $code, $(wc -c <"$TMP/check.body") bytes"
		stop_tree "$PROXY_ROOT"
		return 1
	fi
	# The cache scenario: that request stored the response (or found it in
	# nginx's cache files, which outlive a restart); the next GET must be a
	# hit. A store that lands a moment later gets 5 tries, 0.1 s apart.
	if [[ ,${SC_UNIT[$s]}, == *,cache,* ]]; then
		local hdr= try
		for ((try = 1; try <= 5; try++)); do
			hdr=$(curl -s -m 3 -o /dev/null -D - "$URL_BASE${SC_PATH[$s]}" | tr -d '\r' \
				| awk 'tolower($1) == "x-cache-status:" {print $2}')
			[[ $hdr == HIT ]] && break
			sleep 0.1
		done
		if [[ $hdr != HIT ]]; then
			WHY="NOT CACHED: GET ${SC_PATH[$s]} still said X-Cache-Status: ${hdr:-(none)} after the first request stored it (5 tries)"
			CACHE_FAIL=1
			stop_tree "$PROXY_ROOT"
			return 1
		fi
		((try == 1)) || NOTES+="$t: the first GET after the storing one was not yet a hit in $s (HIT at try $try). "
		meta "cachehit_$t" "X-Cache-Status: $hdr (try $try)"
	fi
	cfg_path "$t" "$s"
	if [[ -z ${ECHOED[$t]:-} ]] && [[ $CFG == */ringfront.ini || $CFG == */haproxy.cfg || $CFG == */nginx.conf ]]; then
		ECHOED[$t]=1
		meta "echo_$t" "$(curl -s -m 3 "$URL_BASE/__bench/echo" | head -c 300 | tr -d '\r\n')"
	fi
	return 0
}
declare -A ECHOED=()

# run_one SCENARIO TARGET REP
run_one() {
	local s=$1 t=$2 rep=$3 out thr url pt0 pt1 b10 b11 b20 b21 t0 t1 ref0 ref1 rss wrk_pid cache_allowed be_seen
	local be2_port=${BE_PORTS[1]} be2_pid=${BE_PIDS[1]} be2_kind=nginx
	local -a extra
	# The slow scenario's second backend is the demo backend.
	[[ $s == slow ]] && { be2_port=$SLOW_PORT; be2_pid=$SLOW_PID; be2_kind=demo; }
	wait_quiet
	CACHE_FAIL=0
	if ! start_target "$t" "$s"; then
		if ((CACHE_FAIL)); then
			# A proxy that does not serve hits fails the cache scenario,
			# ringfront included: the run would measure something else.
			BROKEN["$t $s"]=$WHY
			skip "$t" "$s" "**FAILED**: $WHY"
			log "$t: FAILED in $s — $WHY"
			CACHE_FAILED+=("$t: $WHY")
			FAILURES=$((FAILURES + 1))
		elif [[ $t == ringfront* ]]; then
			# Not starting with the plain config rules ringfront out; with
			# a scenario's own config (rate limit, balancing), only that
			# scenario.
			cfg_path "$t" "$s"
			if [[ $WHY == exited* || $WHY == not\ listening* ]] && [[ $CFG == */ringfront.ini ]]; then
				DISABLED[$t]="failed to start: $WHY"
				skip "$t" '*' "failed to start: $WHY"
			else
				BROKEN["$t $s"]=$WHY
				skip "$t" "$s" "$WHY"
			fi
			log "$t: SKIPPED in $s — $WHY"
		else
			BROKEN["$t $s"]=$WHY
			skip "$t" "$s" "$WHY"
			log "$t: FAILED in $s — $WHY"
			FAILURES=$((FAILURES + 1))
		fi
		return
	fi
	thr=${SC_THR[$s]}
	((WHOLE && thr < 2)) && thr=2
	eval "extra=(${SC_EXTRA[$s]//@HERE@/$(printf %q "$HERE")})"
	url=$URL_BASE${SC_PATH[$s]}
	out=$TMP/wrk/$s.$t.$rep.txt

	ref0=$(cpuref)
	stub_read "${BE_PORTS[0]}" B1S0; stub_read "$be2_port" B2S0
	# The speed reference also samples CPU 0 every 0.5 s during the run
	# (about 1% of the CPU; its own CPU time is measured and accounted for).
	taskset -c 0 "$TMP/cpuref" --every 500 --for $((DURATION + 30)) >"$out.ref" 2>/dev/null </dev/null &
	ref_pid=$!
	register "$ref_pid"
	tree_sample "${BE_PIDS[0]}"; b10=$TREE_TICKS
	tree_sample "$be2_pid"; b20=$TREE_TICKS
	tree_sample "$PROXY_ROOT"; pt0=$TREE_TICKS
	tree_sample "$ref_pid"; rt0=$TREE_TICKS
	stat_sample A
	t0=$EPOCHREALTIME
	# wrk's CPU time: the shell's `times` (CPU of its reaped children) before
	# and after; the only child reaped in between is timeout(1) with wrk.
	# timeout runs in a process group of its own and passes SIGTERM on.
	times >"$out.times0"
	"${PIN1[@]}" timeout -k 3 $((DURATION + 20)) wrk -t"$thr" -c"${SC_CONNS[$s]}" -d"${DURATION}s" \
		--timeout 2s --latency "${extra[@]}" "$url" >"$out" 2>&1 </dev/null &
	wrk_pid=$!
	register "$wrk_pid"
	wait "$wrk_pid"
	echo $? >"$out.rc"
	unregister "$wrk_pid"
	times >"$out.times1"
	t1=$EPOCHREALTIME
	stat_sample B
	tree_sample "$PROXY_ROOT" rss; pt1=$TREE_TICKS; rss=$TREE_RSS_KB
	tree_sample "${BE_PIDS[0]}"; b11=$TREE_TICKS
	tree_sample "$be2_pid"; b21=$TREE_TICKS
	tree_sample "$ref_pid"; rt1=$TREE_TICKS
	stop_tree "$ref_pid"
	stub_read "${BE_PORTS[0]}" B1S1; stub_read "$be2_port" B2S1
	ref1=$(cpuref)
	# The cache scenario: the backends must have seen (almost) nothing. A
	# stored entry lives 60 s, so a long run may refetch it once a minute,
	# at most once per connection (HAProxy does not coalesce misses).
	cache_allowed=$(( SC_CONNS[$s] * (1 + DURATION / 60) ))
	if [[ ,${SC_UNIT[$s]}, == *,cache,* ]]; then
		be_seen=$(( B1S1_req - B1S0_req - 1 + B2S1_req - B2S0_req - 1 ))
		if ((be_seen > cache_allowed)); then
			log "  $t: FAILED in $s #$rep — NOT CACHED: the backends saw $be_seen requests during the run (at most $cache_allowed expected)"
			CACHE_FAILED+=("$t #$rep: the backends saw $be_seen requests during the run (at most $cache_allowed expected)")
			FAILURES=$((FAILURES + 1))
		fi
	fi

	if [[ $t != direct ]]; then
		stop_tree "$PROXY_ROOT" || NOTES+="$t left processes behind after $s #$rep. "
		[[ -z $STOP_CRASH ]] || NOTES+="$t died of SIG$STOP_CRASH when stopped (SIGTERM) after $s #$rep (log: --keep, $t/run.log). "
	fi
	"$PY" "$HERE/report.py" record "$TMP/runs.jsonl" \
		scenario="$s" target="$t" rep="$rep" mode="$MODE" unit="${SC_UNIT[$s]}" \
		wrk_out="$out" clk_tck="$CLK_TCK" t0="$t0" t1="$t1" proxy_cpus="$PROXY_CPUS" \
		conns="${SC_CONNS[$s]}" depth="$([[ $s == pipeline ]] && echo 16 || echo 1)" \
		proxy_ticks0="$pt0" proxy_ticks1="$pt1" be1_ticks0="$b10" be1_ticks1="$b11" \
		be2_ticks0="$b20" be2_ticks1="$b21" rss_kb="$rss" ref0="$ref0" ref1="$ref1" \
		ref_ticks0="$rt0" ref_ticks1="$rt1" ref_during="$out.ref" \
		stat_busy_all0="$A_busy_all" stat_busy_all1="$B_busy_all" \
		stat_busy_cpu00="$A_busy_cpu0" stat_busy_cpu01="$B_busy_cpu0" \
		stat_busy_cpu10="$A_busy_cpu1" stat_busy_cpu11="$B_busy_cpu1" \
		stat_steal_all0="$A_steal_all" stat_steal_all1="$B_steal_all" \
		be1_acc0="$B1S0_acc" be1_req0="$B1S0_req" be1_acc1="$B1S1_acc" be1_req1="$B1S1_req" \
		be2_acc0="$B2S0_acc" be2_req0="$B2S0_req" be2_acc1="$B2S1_acc" be2_req1="$B2S1_req" \
		be2_kind="$be2_kind" cache_allowed="$cache_allowed" >&2 \
		|| log "report.py record failed for $s/$t/$rep"
}

# ---------------------------------------------------------------- serve
if [[ -n $SERVE ]]; then
	log ""
	log "backends: nginx on :${BE_PORTS[0]} (pid ${BE_PIDS[0]}) and :${BE_PORTS[1]} (pid ${BE_PIDS[1]}), configs $TMP/be1/nginx.conf $TMP/be2/nginx.conf"
	if [[ $SERVE != backends ]]; then
		[[ -z ${DISABLED[$SERVE]:-} ]] || die "$SERVE: ${DISABLED[$SERVE]}"
		start_target "$SERVE" "${RUN_SCENARIOS[0]}" || die "$SERVE: $WHY"
		tree_of "$PROXY_ROOT"
		log "$SERVE: listening on $HOST:$PROXY_PORT, pid $PROXY_ROOT (tree: ${TREE[*]}), log $TMP/$SERVE/run.log"
	else
		log "configs for the proxies (start one yourself, e.g. under valgrind):"
		log "  ringfront: $TMP/ringfront/ringfront.ini"
		log "  haproxy:   $TMP/haproxy/haproxy.cfg"
		log "  nginx:     $TMP/nginx/nginx.conf (nginx -p $TMP/nginx -c ...)"
	fi
	log "load:    ${PIN1[*]} wrk -t1 -c64 -d10s --latency http://$HOST:$PROXY_PORT/users/42"
	log "profile: perf record -e cpu-clock -g -p PID -- sleep 10; strace -c -f -p PID"
	log "serving; Ctrl-C stops everything (or it stops by itself in $SERVE_FOR s)"
	end=$((SECONDS + SERVE_FOR))
	while ((SECONDS < end)); do sleep 1; done
	exit 0
fi

# ---------------------------------------------------------------- main loop
# Repeats outermost, then scenarios, then the targets one after another, so
# every target of a scenario runs within seconds of the others. The order
# of the proxies rotates with each repeat so none is always first.
FAILURES=0
CACHE_FAILED=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	for s in "${RUN_SCENARIOS[@]}"; do
		[[ ${SC_STATUS[$s]} == ok ]] || continue
		order=()
		for t in ringfront "${VARIANTS[@]}" ringfront-lt haproxy nginx; do
			wanted "$t" "$s" && order+=("$t")
		done
		if ((${#order[@]} > 1)); then
			k=$(( (rep - 1) % ${#order[@]} ))
			order=("${order[@]:k}" "${order[@]:0:k}")
		fi
		[[ " ${RUN_TARGETS[*]} " == *" direct "* && " ${SC_TARGETS[$s]} " == *" direct "* ]] && order+=(direct)
		for t in "${order[@]}"; do
			[[ -n ${DISABLED[${t%%-*}]:-} || -n ${DISABLED[$t]:-} || -n ${BROKEN["$t $s"]:-} ]] && continue
			run_one "$s" "$t" "$rep"
		done
	done
done

# ---------------------------------------------------------------- report
for ((i = 0; i < 2; i++)); do stop_tree "${BE_PIDS[$i]}" || NOTES+="a backend left processes behind. "; done
[[ -z $SLOW_PID ]] || stop_tree "$SLOW_PID" || NOTES+="the slow backend did not stop. "
if ((${#CACHE_FAILED[@]})); then
	NOTES+="**CACHE SCENARIO FAILED**, not every response came from the cache: $(printf '%s; ' "${CACHE_FAILED[@]}")"
fi
meta notes "$NOTES"
left=$(for e in "${STARTED[@]}"; do p=${e%%:*}; proc_alive "$p" "${e#*:}" && echo "$p"; done)
[[ -z $left ]] || log "WARNING: still running: $left"

stamp=$(date '+%Y-%m-%d-%H%M')
res=$RESULTS_DIR/$stamp.md
[[ -e $res ]] && res=$RESULTS_DIR/$stamp-$(date +%S).md
"$PY" "$HERE/report.py" report "$TMP" >"$res" || die "report failed"
cat "$res"
log ""
log "written to ${res#"$ROOT"/}"
if ((${#CACHE_FAILED[@]})); then
	log ""
	log "=================================================================="
	log "CACHE SCENARIO FAILED: these proxies did not serve the cache hits"
	log "the scenario measures (its figures for them are not comparable):"
	printf '  %s\n' "${CACHE_FAILED[@]}" >&2
	log "=================================================================="
fi
((FAILURES == 0)) || { log "$FAILURES run(s) failed (HAProxy/nginx/direct, or a cache scenario without hits)"; exit 1; }
exit 0
