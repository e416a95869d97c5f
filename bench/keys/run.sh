#!/usr/bin/env bash
# bench/keys/run.sh - memory per rate-limit key: ringfront, HAProxy and nginx
# each track N distinct keys (default 1,000,000) and we measure how much
# their memory (VmRSS of the whole process tree) grew.
#
# A client address is one key, and wrk has one address, so the keys are
# ip+path: bench/keys/keys.lua sends GET /k/1, /k/2, ... /k/N (16 pipelined
# per write, one wrk thread, 64 connections), each once, with a limit so
# generous (10^6/s per key) that nothing is rejected (every status is counted and checked).
#   ringfront  [ratelimit] key = ip+path, max_keys = 1.5 x N
#   HAProxy    stick-table type binary len 20 size 1.5 x N, track-sc0 base32+src
#              (crc32 of Host+path, then the address: its ip+path idiom)
#   nginx      limit_req_zone $binary_remote_addr$uri, zone sized for N states
#              (a fixed shared-memory zone: what it costs is configured up front)
# HAProxy and nginx answer the /k/ requests themselves once the key is
# tracked (http-request return; empty_gif, a content handler, so limit_req
# has run): forwarding adds nothing to what a key costs and halves their
# run time. ringfront checks its limit only on a routed request, so it
# forwards them to the backend. Each proxy runs alone on CPU 0 (pinned, one
# worker/thread), one nginx backend and wrk on CPU 1, all on 127.0.0.1. One warm-up second (one key)
# precedes the "before" sample, so connection buffers and pools are counted
# there, not as key memory.
#
# Usage: bench/keys/run.sh [--keys N] [--targets ringfront,haproxy,nginx]
#                          [--depth D] [--time-limit S] [--keep]
# The report is printed and written to bench/results/keys-YYYY-MM-DD-HHMM.md.
# About a minute on a quiet machine: each target gets at most 26 s for its
# keys (--time-limit; a run cut short says so, and its figures are per key
# it created).
set -u -o pipefail

ARGS="$*"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_NAME=keys/run.sh
. "$ROOT/bench/lib.sh"

HOST=127.0.0.1                  # never send traffic anywhere else
PROXY_PORT=19080
BE_PORT=19101
BODY='{"id":42,"name":"user-42","email":"user42@example.com","ok":true}'
KEYS=1000000
DEPTH=16
TARGETS=ringfront,haproxy,nginx
KEEP=0
RUN_LIMIT=26                    # seconds: the most one target's key run may take
                                # (keeps the whole script under ~90 s; a run cut
                                # short is reported per key it did create)
RINGFRONT=${RINGFRONT:-$ROOT/ringfront}
RESULTS_DIR=$ROOT/bench/results

while (($#)); do
	case $1 in
	--keys) KEYS=${2:?}; shift ;;
	--keys=*) KEYS=${1#*=} ;;
	--targets) TARGETS=${2:?}; shift ;;
	--targets=*) TARGETS=${1#*=} ;;
	--depth) DEPTH=${2:?}; shift ;;
	--depth=*) DEPTH=${1#*=} ;;
	--time-limit) RUN_LIMIT=${2:?}; shift ;;
	--time-limit=*) RUN_LIMIT=${1#*=} ;;
	--keep) KEEP=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option: $1 (see --help)" ;;
	esac
	shift
done
[[ $KEYS =~ ^[1-9][0-9]*$ ]] && ((KEYS >= 1000 && KEYS <= 10000000)) || die "--keys takes 1000..10000000"
[[ $DEPTH =~ ^[1-9][0-9]*$ ]] && ((DEPTH <= 64)) || die "--depth takes 1..64"
[[ $RUN_LIMIT =~ ^[1-9][0-9]*$ ]] && ((RUN_LIMIT <= 600)) || die "--time-limit takes 1..600 s"
IFS=, read -r -a RUN_TARGETS <<<"$TARGETS"
for t in "${RUN_TARGETS[@]}"; do
	case $t in ringfront|haproxy|nginx) ;; *) die "unknown target '$t'" ;; esac
done
MAX_KEYS=$((KEYS * 3 / 2))
# nginx: a limit_req state is an rbtree node (32 bytes up to its colour
# field) + the limit_req node (48 bytes up to its data) + the key
# ($binary_remote_addr = 4 bytes, + "/k/1000000"); the slab allocator
# rounds that up to a power of two: 128 bytes. The zone gets 12.5 % more
# for the slab's page descriptors and headroom.
KEYLEN=$((4 + 3 + ${#KEYS}))
NODE=$((32 + 48 + KEYLEN))
SLAB=8; while ((SLAB < NODE)); do SLAB=$((SLAB * 2)); done
NGX_ZONE_MB=$(( (KEYS * SLAB * 9 / 8 + 1048575) / 1048576 ))

bench_deps bench wrk haproxy nginx curl taskset timeout
bench_python
bench_nofile
bench_pinning 0                 # the proxy on CPU 0, the backend and wrk on CPU 1

# ---------------------------------------------------------------- configs
for port in "$PROXY_PORT" "$BE_PORT"; do
	port_listening "$port" && die "port $port is already in use; stop that first (another benchmark?)"
done
bench_tmpdir ringfront-keys
mkdir -p "$TMP/be" "$TMP/ringfront" "$TMP/haproxy" "$TMP/nginx" "$RESULTS_DIR"
# keys_nginx DIR: one worker, the lines every private nginx shares, and
# the opening of its http block.
keys_nginx() {
	echo "worker_processes 1;"
	nginx_common "$1"
	echo "http {"
	nginx_http_common "$1"
}
{
	keys_nginx "$TMP/be"
	cat <<EOF
    default_type application/json;
    server {
        listen $HOST:$BE_PORT backlog=4096;
        location / { return 200 '$BODY'; }
        location = /__bench/status { stub_status; }
    }
}
EOF
} >"$TMP/be/nginx.conf"

cat >"$TMP/ringfront/ringfront.ini" <<EOF
; generated by bench/keys/run.sh
[server]
listen = $HOST:$PROXY_PORT
workers = 1
log_level = warn
max_connections = $MAXCONN

[ratelimit]
rate = 1000000/1s
burst = 1000000
key = ip+path
max_keys = $MAX_KEYS

[upstream app]
servers = $HOST:$BE_PORT
health_path =
keepalive = 256

[route]
/ = app
EOF

{
	haproxy_head 1 "$TMP/haproxy"
	cat <<EOF

frontend fe
    bind $HOST:$PROXY_PORT backlog 4096
    stick-table type binary len 20 size $MAX_KEYS expire 1h store http_req_rate(1s)
    http-request track-sc0 base32+src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000 }
    http-request return status 200 content-type application/json string '$BODY' if { path_beg /k/ }
    default_backend app

backend app
    http-reuse always
    server s1 $HOST:$BE_PORT
EOF
} >"$TMP/haproxy/haproxy.cfg"

{
	keys_nginx "$TMP/nginx"
	cat <<EOF
    limit_req_zone \$binary_remote_addr\$uri zone=keys:${NGX_ZONE_MB}m rate=1000000r/s;
    upstream app {
        server $HOST:$BE_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$PROXY_PORT backlog=4096;
        location /k/ {
            limit_req zone=keys burst=1000000 nodelay;
            limit_req_status 429;
            empty_gif;
        }
        location / {
            limit_req zone=keys burst=1000000 nodelay;
            limit_req_status 429;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

haproxy -c -q -f "$TMP/haproxy/haproxy.cfg" || die "HAProxy rejected its config"
nginx -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" || die "nginx rejected its config"
nginx -t -q -p "$TMP/be" -e "$TMP/be/error.log" -c "$TMP/be/nginx.conf" || die "backend config rejected"

declare -A SKIP=()
for t in "${RUN_TARGETS[@]}"; do
	[[ $t == ringfront ]] || continue
	if [[ ! -x $RINGFRONT ]]; then
		SKIP[ringfront]="$RINGFRONT not found (build it with make)"
	elif ! timeout -k 1 5 "$RINGFRONT" -t -c "$TMP/ringfront/ringfront.ini" >"$TMP/ringfront/check.log" 2>&1; then
		SKIP[ringfront]="config rejected: $(head -c 200 "$TMP/ringfront/check.log" | tr '\n|' ' /')"
	fi
done

target_cmd() {
	case $1 in
	ringfront) CMD=("${PIN0[@]}" "$RINGFRONT" -c "$TMP/ringfront/ringfront.ini") ;;
	haproxy) CMD=("${PIN0[@]}" haproxy -W -db -f "$TMP/haproxy/haproxy.cfg") ;;
	nginx) CMD=("${PIN0[@]}" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf") ;;
	esac
}

# be_requests: requests the backend counted (stub_status; includes itself).
be_requests() {
	curl -s -m 2 "http://$HOST:$BE_PORT/__bench/status" | awk 'NR == 3 {print $3}'
}

# ringfront_table_kb PID: Rss of ringfront's bucket table mapping (its size
# is known: one 64-byte bucket per 8 keys, one shard with workers = 1).
TABLE_BYTES=$(( (MAX_KEYS + 7) / 8 * 64 ))
TABLE_KB=$(( (TABLE_BYTES + 4095) / 4096 * 4 ))
# The kernel may merge it with a neighbouring anonymous mapping of a few
# pages, so take the smallest mapping between its size and 10 % + 1 MB more.
ringfront_table_kb() {
	awk -v want="$TABLE_KB" '
		/^Size:/ { size = $2; hit = (size >= want && size <= want + want / 10 + 1024) }
		/^Rss:/ && hit && (best == "" || size < best) { best = size; rss = $2 }
		END { print rss }' "/proc/$1/smaps" 2>/dev/null
}

# haproxy_used: entries in HAProxy's stick-table (stats socket).
haproxy_used() {
	"$PY" - "$TMP/haproxy/stats.sock" <<'EOF' 2>/dev/null
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"show table fe\n")
buf = b""
while True:
    d = s.recv(65536)
    if not d or b"\n" in buf + d:
        buf += d
        break
    buf += d
m = re.search(rb"used:(\d+)", buf)
print(m.group(1).decode() if m else "")
EOF
}

# ---------------------------------------------------------------- runs
start_bg "$TMP/be/stdout.log" "${PIN1[@]}" nginx -p "$TMP/be" -e "$TMP/be/error.log" -c "$TMP/be/nginx.conf"
BE_PID=$LAST_PID
proc_start_time "$BE_PID"
wait_listen "$BE_PID" "$START_TIME" "$BE_PORT" 5 || die "backend did not start"
[[ $(curl -s -m 2 "http://$HOST:$BE_PORT/users/42") == "$BODY" ]] || die "backend does not answer"

: >"$TMP/rows.tsv"
T_START=$SECONDS
log "keys bench: $KEYS distinct ip+path keys per target, targets ${RUN_TARGETS[*]}"
for t in "${RUN_TARGETS[@]}"; do
	if [[ -n ${SKIP[$t]:-} ]]; then
		log "$t: SKIPPED — ${SKIP[$t]}"
		printf '%s\tskip\t%s\n' "$t" "${SKIP[$t]}" >>"$TMP/rows.tsv"
		continue
	fi
	wait_port_free "$PROXY_PORT" 10 || die "port $PROXY_PORT still in use"
	target_cmd "$t"
	start_bg "$TMP/$t/run.log" "${CMD[@]}"
	root=$LAST_PID
	proc_start_time "$root"
	if ! wait_listen "$root" "$START_TIME" "$PROXY_PORT" 5 \
		|| [[ $(curl -s -m 3 "http://$HOST:$PROXY_PORT/users/42") != "$BODY" ]]; then
		why="did not start or does not proxy: $(tail -n 2 "$TMP/$t/run.log" | tr '\n|' ' /')"
		log "$t: FAILED — $why"
		printf '%s\tskip\t%s\n' "$t" "$why" >>"$TMP/rows.tsv"
		stop_tree "$root"
		continue
	fi
	# Warm-up: one key, every connection and pooled backend link in use.
	"${PIN1[@]}" timeout -k 2 10 wrk -t1 -c64 -d1s -s "$ROOT/bench/wrk/pipeline.lua" \
		"http://$HOST:$PROXY_PORT/users/42" >"$TMP/$t/warm.txt" 2>&1 </dev/null
	sleep 0.5
	tree_sample "$root" rss; rss0=$TREE_RSS_KB
	tab0=; [[ $t == ringfront ]] && tab0=$(ringfront_table_kb "$root")
	be0=$(be_requests)
	marker=$TMP/$t/done
	t0=$EPOCHREALTIME
	"${PIN1[@]}" timeout -s INT -k 5 "$RUN_LIMIT" wrk -t1 -c64 -d"${RUN_LIMIT}s" --timeout 5s \
		-s "$HERE/keys.lua" "http://$HOST:$PROXY_PORT/" -- "$KEYS" "$marker" "$DEPTH" \
		>"$TMP/$t/wrk.txt" 2>&1 </dev/null &
	wrk_pid=$!
	register "$wrk_pid"
	while proc_alive "$wrk_pid" "${STARTED[-1]#*:}" && [[ ! -e $marker ]]; do sleep 0.1; done
	t1=$EPOCHREALTIME
	# wrk waits out -d even after the Lua side is done: SIGINT ends it early
	# (timeout passes the signal on), and it still prints its summary.
	kill -INT "$wrk_pid" 2>/dev/null
	wait "$wrk_pid"
	unregister "$wrk_pid"
	sleep 0.5
	tree_sample "$root" rss; rss1=$TREE_RSS_KB
	tab1=; [[ $t == ringfront ]] && tab1=$(ringfront_table_kb "$root")
	used=; [[ $t == haproxy ]] && used=$(haproxy_used)
	be1=$(be_requests)
	stop_tree "$root"
	sent=$(awk '/^Keys sent:/ {print $3}' "$TMP/$t/wrk.txt")
	statuses=$(sed -n 's/^Status counts: //p' "$TMP/$t/wrk.txt")
	[[ -e $marker ]] || log "$t: wrk did not get $KEYS responses within $RUN_LIMIT s"
	secs=$("$PY" -c "print('%.1f' % ($t1 - $t0))")
	printf '%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${sent:-?}" "$statuses" \
		"$((be1 - be0 - 1))" "$secs" "$rss0" "$rss1" "${tab0:-}" "${tab1:-}" "${used:-}" \
		"$([[ -e $marker ]] && echo done || echo incomplete)" >>"$TMP/rows.tsv"
	log "$t: $sent keys in $secs s, RSS $rss0 -> $rss1 kB, statuses: $statuses"
done
stop_tree "$BE_PID"
ELAPSED=$((SECONDS - T_START))

# ---------------------------------------------------------------- report
stamp=$(date '+%Y-%m-%d-%H%M')
res=$RESULTS_DIR/keys-$stamp.md
[[ -e $res ]] && res=$RESULTS_DIR/keys-$stamp-$(date +%S).md
"$PY" - "$TMP/rows.tsv" "$KEYS" "$MAX_KEYS" "$TABLE_BYTES" "$NGX_ZONE_MB" "$SLAB" \
	"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +changes)" \
	"$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')" "$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
	"$ELAPSED" "$DEPTH" "$ARGS" "$RUN_LIMIT" >"$res" <<'EOF' || die "report failed"
import sys, time
(rows_path, keys, max_keys, table_bytes, zone_mb, slab, rfv, hav, ngv, elapsed, depth, args,
 limit) = sys.argv[1:14]
keys, max_keys, table_bytes, zone_mb, slab = int(keys), int(max_keys), int(table_bytes), int(zone_mb), int(slab)
out = []
w = out.append
w("# ringfront benchmark: memory per rate-limit key — %s" % time.strftime("%Y-%m-%d %H:%M %Z"))
w("")
w("`bench/keys/run.sh%s`: %d distinct ip+path keys (GET /k/1 ... /k/%d, each once, "
  "%s pipelined per write, wrk -t1 -c64, at most %s s per target) through each proxy, pinned to CPU 0 with one "
  "worker/thread; one nginx backend and wrk on CPU 1. RSS = VmRSS of the proxy's whole "
  "process tree after a 1 s warm-up on one key (before) and after the keys (after). "
  "ringfront %s, HAProxy %s, nginx %s; %s s in all."
  % ((" " + args) if args else "", keys, keys, depth, limit, rfv, hav, ngv, elapsed))
w("")
w("| target | how keys are kept | keys sent | statuses | backend req | s | RSS before MB | RSS after MB "
  "| growth MB | RSS bytes/key | structure bytes/key | notes |")
w("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|")
how = {
    "ringfront": "`[ratelimit] key = ip+path`, `max_keys = %d`: bucket table of %s bytes "
                 "(8 per configured key), mmap'd, pages touched as keys land" % (max_keys, format(table_bytes, ",")),
    "haproxy": "`stick-table type binary len 20 size %d store http_req_rate(1s)`, "
               "`track-sc0 base32+src`: one entry allocated per key" % max_keys,
    "nginx": "`limit_req_zone $binary_remote_addr$uri zone=keys:%dm`: shared zone fixed at "
             "start, %d-byte slab chunk per state" % (zone_mb, slab),
}
for line in open(rows_path):
    f = line.rstrip("\n").split("\t")
    t = f[0]
    if f[1] == "skip":
        w("| %s | %s | — | — | — | — | — | — | — | — | — | skipped: %s |" % (t, how.get(t, ""), f[2].replace("|", "/")))
        continue
    sent, statuses, be, secs, rss0, rss1, tab0, tab1, used, state = f[2:12]
    rss0, rss1 = int(rss0), int(rss1)
    grow = (rss1 - rss0) * 1024
    notes = []
    st = dict(p.split("=") for p in statuses.split()) if statuses else {}
    # keys actually created: the distinct paths sent, at most the responses
    held = min(int(sent) if sent.isdigit() else 0, sum(int(v) for v in st.values()))
    if held <= 0:
        held = keys
    bad = {k: v for k, v in st.items() if k != "200"}
    if bad:
        notes.append("**not all 200**: %s" % " ".join("%s=%s" % kv for kv in sorted(bad.items())))
    if state != "done":
        notes.append("**incomplete** (machine busy?): %s of %s keys in the time limit; "
                     "per key figures are per key created" % (format(held, ","), format(keys, ",")))
    struct = "—"
    if t == "ringfront":
        struct = "%.1f per configured key (%.1f per key held here)" % (
            table_bytes / float(max_keys), table_bytes / float(held))
        if tab0 and tab1:
            notes.append("table mapping RSS %.1f → %.1f MB (%.1f bytes/key); the rest of the "
                         "growth: %.1f MB" % (int(tab0) / 1024.0, int(tab1) / 1024.0,
                                              (int(tab1) - int(tab0)) * 1024.0 / held,
                                              (grow - (int(tab1) - int(tab0)) * 1024) / 1048576.0))
    elif t == "haproxy":
        if used:
            notes.append("stick-table holds %s entries (the keys + the warm-up's + /k/0)"
                         % format(int(used), ","))
            if int(used):
                struct = "%.0f per entry (RSS growth ÷ entries)" % (grow / float(used))
    elif t == "nginx":
        struct = "%d-byte chunk per state; zone %d MB = %.0f per key configured" % (
            slab, zone_mb, zone_mb * 1048576.0 / keys)
    w("| %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | **%.1f** | %s | %s |" % (
        t, how.get(t, ""), format(int(sent), ",") if sent.isdigit() else sent, statuses,
        format(int(be), ","), secs, rss0 / 1024.0, rss1 / 1024.0, grow / 1048576.0,
        grow / float(held), struct, "; ".join(notes)))
w("")
w("RSS bytes/key = RSS growth ÷ the keys created (%d unless a note says otherwise): what holding the keys cost each process in memory "
  "actually touched. ringfront's and nginx's structures are sized when they start (ringfront "
  "maps max_keys × 8 bytes and touches pages as keys arrive: with keys spread by a hash "
  "nearly every page is touched long before the table is full; nginx's zone is a fixed "
  "shared mapping whose pages are touched as states are allocated); HAProxy allocates each "
  "entry when its key first appears." % keys)
w("")
sys.stdout.write("\n".join(out) + "\n")
EOF
cat "$res"
log ""
log "written to ${res#"$ROOT"/}"
