#!/bin/sh
# install-deps.sh - install the Debian packages ringfront needs, only when
# they are missing. Usage: tools/install-deps.sh build|test|bench|resp
set -e
case "${1:-build}" in
build) pkgs="liburing-dev gcc make" ;;
# test_cluster.py starts its own redis-server on a free port
test)  pkgs="liburing-dev gcc make curl python3 wrk procps redis-tools redis-server"
       optional="chromium" ;;      # the dashboard test skips without it
bench) pkgs="liburing-dev gcc make curl wrk haproxy nginx-light procps util-linux" ;;
# bench/resp/run.sh. Where a service manager runs, Debian's redis-server
# package also starts a redis-server service on 127.0.0.1:6379; the
# benchmark starts its own on a free port and never uses that one.
resp)  pkgs="liburing-dev gcc make redis-server redis-tools procps util-linux" ;;
*) echo "usage: $0 build|test|bench|resp" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
omissing=""
for p in ${optional:-}; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || omissing="$omissing $p"
done
[ -z "$missing$omissing" ] && exit 0
echo "installing:$missing$omissing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || [ -z "$missing" ]
[ -z "$missing" ] || $SUDO apt-get install -y -qq $missing >/dev/null
# optional packages: a failure only means the tests that need them skip
[ -z "$omissing" ] || $SUDO apt-get install -y -qq $omissing >/dev/null ||
	echo "note: could not install$omissing; the tests that need it will skip"
