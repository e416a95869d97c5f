#!/bin/sh
# run.sh - run the C unit tests in DIR, then the integration tests against
# ./ringfront, and print the total as "N passed, N failed".
# Usage: tests/run.sh [--unit-only] DIR
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
	echo "== integration"
	python3 -u tests/integration/run.py 2>&1 | tee "$log"
	add "$log" || { echo "FAIL integration runner crashed"; failed=$((failed + 1)); }
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
