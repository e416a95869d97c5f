#!/bin/sh
# run.sh - run the C unit tests in DIR, then the integration tests against
# ./ringfront, and print the total as "N passed, N failed".
# Usage: tests/run.sh [--unit-only] DIR
#
# The integration tests run on the backend each configuration chooses
# ([server] io = auto: io_uring here), then the files in EPOLL_SUBSET run
# again on epoll (RF_IO=epoll) so that backend stays tested: about a minute
# more. With RF_IO set (make test IO=epoll) everything runs on that backend
# once and there is no second pass; EPOLL_SUBSET= (empty) skips it.
unit_only=0
if [ "$1" = "--unit-only" ]; then unit_only=1; shift; fi
dir=${1:?usage: tests/run.sh [--unit-only] DIR}
passed=0
failed=0
add() { # add "RESULT p f" lines from a log file
	set -- $(grep '^RESULT ' "$1" | tail -1)
	if [ "$1" = RESULT ]; then
		passed=$((passed + $2)); failed=$((failed + $3))
		return 0
	fi
	return 1
}
log=$(mktemp)
for t in "$dir"/test_*; do
	[ -x "$t" ] || continue
	echo "== unit $(basename "$t")"
	"$t" >"$log" 2>&1
	rc=$?
	grep -v '^RESULT ' "$log" | grep -v '^ok ' || true
	if ! add "$log" || { [ $rc -ne 0 ] && ! grep -q '^FAIL' "$log"; }; then
		echo "FAIL $(basename "$t") exited $rc without a complete report"
		failed=$((failed + 1))
	fi
done
if [ $unit_only -eq 0 ]; then
	echo "== integration${RF_IO:+ (io = $RF_IO)}"
	python3 -u tests/integration/run.py 2>&1 | tee "$log"
	add "$log" || { echo "FAIL integration runner crashed"; failed=$((failed + 1)); }
	# Not the load and fault-injection files (test_abuse, test_faults) nor
	# test_host (installation, man pages): nothing there depends on the
	# backend that the rest does not exercise.
	subset=${EPOLL_SUBSET-test_proxy test_failures test_smuggling test_cache test_ratelimit \
test_admin test_reload test_backend_behaviour test_balancing test_routes test_limits_and_logs \
test_fd_reuse test_regressions test_io test_cluster test_store}
	if [ -z "${RF_IO:-}" ] && [ -n "$subset" ]; then
		echo "== integration on epoll (io = epoll): $subset"
		RF_IO=epoll python3 -u tests/integration/run.py $subset 2>&1 | tee "$log"
		add "$log" || { echo "FAIL integration runner crashed (epoll)"; failed=$((failed + 1)); }
	fi
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
