#!/usr/bin/env bash
# demo.sh - what `make run` starts: two demo backends (build/fleet on 9001,
# 9002) and ringfront with conf/default.ini. Ctrl-C stops all of it.
set -u
cd "$(dirname "$0")/.." || exit 1

CONF=conf/default.ini
SERVERS=2
START_PORT=9001
FLEET_PID=
RF_PID=

die() {
	echo "demo: $*" >&2
	exit 1
}

# Is something already accepting connections on this port?
busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Wait up to 5 s for a port to open while the process that should open it
# is still alive.
wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 250; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.02
	done
	return 1
}

# shellcheck disable=SC2317  # only ever run as a trap
cleanup() {
	trap - EXIT INT TERM
	local pid
	for pid in $RF_PID $FLEET_PID; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $RF_PID $FLEET_PID; do
		wait "$pid" 2>/dev/null
	done
	[ -n "$FLEET_PID$RF_PID" ] && echo "demo: stopped"
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

for f in build/fleet build/demo-backend ringfront; do
	[ -x "$f" ] || die "$f is missing: run 'make' first"
done
[ -f "$CONF" ] || die "$CONF is missing"

# The first "listen = host:port" of the config is where ringfront answers.
listen=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];#]*\).*/\1/p' "$CONF" | head -n 1)
RF_PORT=${listen##*:}
[[ $RF_PORT =~ ^[0-9]+$ ]] || RF_PORT=8080

for port in $(seq "$START_PORT" $((START_PORT + SERVERS - 1))) "$RF_PORT"; do
	if busy "$port"; then
		die "port $port is already in use (another 'make run' still running?); find it with: ss -ltnp 'sport = :$port'"
	fi
done

# the backends are the seeds' application: admission through ringfront's
# line-protocol limiter, read-through caching in its Redis-protocol port
build/fleet --servers=$SERVERS --start-port=$START_PORT \
	--ratelimit 127.0.0.1:7001 --cache 127.0.0.1:6379 &
FLEET_PID=$!
for port in $(seq "$START_PORT" $((START_PORT + SERVERS - 1))); do
	wait_port "$port" "$FLEET_PID" || die "the demo backends did not start (see the messages above)"
done

./ringfront -c "$CONF" &
RF_PID=$!
wait_port "$RF_PORT" "$RF_PID" || die "ringfront did not start listening on port $RF_PORT (see the messages above)"

cat <<EOF

  ringfront demo is running
    ringfront      http://localhost:$RF_PORT   (pid $RF_PID, config $CONF)
    demo backends  127.0.0.1:$START_PORT..$((START_PORT + SERVERS - 1))   (build/fleet, pid $FLEET_PID)

  Try:
    curl -i localhost:$RF_PORT/users/42          # X-Cache-Status: MISS, then HIT (the app's read-through)
    curl -i localhost:$RF_PORT/cache/x           # X-Cache-Status: MISS, then HIT (ringfront's cache)
    curl -s localhost:$RF_PORT/users/1 localhost:$RF_PORT/users/2     # served_by alternates
    curl -s localhost:$RF_PORT/headers                            # what ringfront forwarded
    curl -s localhost:$RF_PORT/bytes/1000000 | wc -c
    curl -s localhost:$START_PORT/__stats                            # requests vs connections
    wrk -t2 -c64 -d5s http://localhost:$RF_PORT/cache/1

  Ctrl-C stops everything.

EOF

# Run until Ctrl-C, or until one of the two exits on its own.
wait -n "$FLEET_PID" "$RF_PID"
status=$?
if ! kill -0 "$RF_PID" 2>/dev/null; then
	echo "demo: ringfront exited (status $status)" >&2
else
	echo "demo: the backend fleet exited (status $status)" >&2
fi
exit 1
