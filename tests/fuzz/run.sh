#!/bin/sh
# run.sh - build the libFuzzer targets in tests/fuzz/ with clang under
# ASan + UBSan and run each for FUZZ_TIME seconds (`make fuzz`).
#
#   tests/fuzz/run.sh                 build, then run every target
#   tests/fuzz/run.sh http_request    only the targets named
#   FUZZ_TIME=600 tests/fuzz/run.sh   longer runs (default 60 s each)
#   FUZZ_JOBS=2                       parallel fuzzing processes per target
#   FUZZ_BUILD_ONLY=1                 build the targets and the replay tools only
#   FUZZ_MERGE=1                      after the runs, merge (minimised) new
#                                     inputs into the checked-in seed corpus
#
# The checked-in seeds in tests/fuzz/corpus/NAME/ are read only; the inputs
# libFuzzer finds go to build/fuzz/corpus/NAME/ and are kept between runs.
# A crash, leak, sanitizer report or failed invariant stops that target;
# its input is saved as tests/fuzz/crashes/NAME-crash-<sha1> and the script
# exits 1 after running the rest. Once the bug is fixed, move the file into
# tests/fuzz/corpus/NAME/ where the unit test test_fuzz_corpus replays it on
# every `make test`.
#
# The sources of ringfront are compiled once into an archive
# (build/fuzz/libsrc.a); each target links only the objects it needs.
set -u
cd "$(dirname "$0")/../.." || exit 2

CLANG=${CLANG:-clang}
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
OUT=build/fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Isrc -Itests/fuzz"
ALL_TARGETS="http_request http_response chunked config resp rl_line json"
# -max_len per target: heads up to the 64k parser cap are rare; most bugs
# show in a few hundred bytes, and shorter inputs keep the runs fast.
max_len() {
	case $1 in
	http_request|http_response) echo 8192 ;;
	config) echo 4096 ;;
	resp) echo 4096 ;;
	*) echo 2048 ;;
	esac
}

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz: $CLANG not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 2
fi
targets=${*:-$ALL_TARGETS}
mkdir -p "$OUT/obj" "$OUT/obj-replay" tests/fuzz/crashes

# ---- build -------------------------------------------------------------
# Each src/*.c (but main.c) becomes an instrumented object; a file that does
# not compile (work in progress) is left out with a warning: only targets
# that need it fail to link. Rebuilt when any source or header is newer.
build_lib() { # $1 = object dir, $2 = archive, $3.. = extra flags
	dir=$1 lib=$2
	shift 2
	if [ -f "$lib" ] && [ -z "$(find src -newer "$lib" -name '*.[ch]' | head -1)" ] &&
	   [ ! tests/fuzz/run.sh -nt "$lib" ]; then
		return 0
	fi
	rm -f "$dir"/*.o "$lib"
	pids=""
	for f in src/*.c; do
		b=$(basename "$f" .c)
		[ "$b" = main ] && continue
		( $CLANG $CFLAGS "$@" -w -c -o "$dir/$b.o" "$f" 2>"$dir/$b.err" ||
		  { echo "fuzz: warning: $f does not compile, left out:" >&2
		    head -5 "$dir/$b.err" >&2; rm -f "$dir/$b.o"; } ) &
		pids="$pids $!"
		# two at a time is enough on small machines
		if [ $(echo $pids | wc -w) -ge "$(nproc)" ]; then
			wait $pids
			pids=""
		fi
	done
	wait $pids
	ar rcs "$lib" "$dir"/*.o
}

echo "fuzz: building into $OUT/"
build_lib "$OUT/obj" "$OUT/libsrc.a" $SAN -fsanitize=fuzzer-no-link || exit 2
build_lib "$OUT/obj-replay" "$OUT/libsrc-replay.a" $SAN || exit 2
failed_build=""
for t in $targets; do
	src=tests/fuzz/fuzz_$t.c
	if [ ! -f "$src" ]; then
		echo "fuzz: no target $t ($src)" >&2
		exit 2
	fi
	if ! $CLANG $CFLAGS $SAN -fsanitize=fuzzer -Wall -Wextra -Werror \
		-o "$OUT/fuzz_$t" "$src" "$OUT/libsrc.a" -luring -lm 2>"$OUT/fuzz_$t.err"; then
		echo "fuzz: cannot build fuzz_$t:" >&2
		cat "$OUT/fuzz_$t.err" >&2
		failed_build="$failed_build $t"
		continue
	fi
	# the same target without libFuzzer: replays files and directories
	$CLANG $CFLAGS $SAN -DFUZZ_REPLAY -Wall -Wextra -Werror -o "$OUT/replay_$t" \
		"$src" tests/fuzz/replay.c "$OUT/libsrc-replay.a" -luring -lm ||
		failed_build="$failed_build $t"
done
if [ -n "$failed_build" ]; then
	echo "fuzz: FAILED to build:$failed_build" >&2
	exit 2
fi
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

# ---- run ---------------------------------------------------------------
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
summary=""
for t in $targets; do
	work=$OUT/corpus/$t
	seeds=tests/fuzz/corpus/$t
	dict=tests/fuzz/dict/$t.dict
	log=$OUT/fuzz_$t.log
	mkdir -p "$work" "$OUT/artifacts"
	set -- -max_total_time="$FUZZ_TIME" -max_len="$(max_len "$t")" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-"
	[ -f "$dict" ] && set -- "$@" -dict="$dict"
	if [ "$FUZZ_JOBS" -gt 1 ]; then
		set -- "$@" -jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"
	fi
	echo "fuzz: $t for ${FUZZ_TIME}s (log: $log)"
	rm -f "$OUT/artifacts/$t-"*
	"$OUT/fuzz_$t" "$@" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	[ "$FUZZ_JOBS" -gt 1 ] && cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log
	execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
	found=""
	for a in "$OUT/artifacts/$t-"*; do
		[ -f "$a" ] || continue
		sum=$(sha1sum "$a" | cut -c1-16)
		kind=$(basename "$a" | sed "s/^$t-//; s/-.*//")
		cp "$a" "tests/fuzz/crashes/$t-$kind-$sum"
		found="$found tests/fuzz/crashes/$t-$kind-$sum"
	done
	if [ $rc -ne 0 ] || [ -n "$found" ]; then
		status=1
		echo "fuzz: $t FAILED (exit $rc) after $execs executions:$found" >&2
		grep -E 'invariant failed|ERROR: |SUMMARY|runtime error' "$log" | head -5 >&2
		summary="$summary
  $t: FAILED after $execs executions:$found"
	else
		summary="$summary
  $t: ok, $execs executions in ${FUZZ_TIME}s, corpus $(ls "$work" | wc -l) inputs"
	fi
	if [ "${FUZZ_MERGE:-0}" = 1 ] && [ $rc -eq 0 ]; then
		"$OUT/fuzz_$t" -merge=1 -max_len="$(max_len "$t")" "$seeds" "$work" \
			>>"$log" 2>&1 && echo "fuzz: merged new coverage into $seeds"
	fi
done
echo "fuzz: summary$summary"
if [ $status -ne 0 ]; then
	echo "fuzz: reproduce with $OUT/replay_NAME FILE (or $OUT/fuzz_NAME FILE)" >&2
fi
exit $status
