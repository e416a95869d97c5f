#!/bin/sh
# soak.sh - `make soak`: build the ASan+UBSan ringfront (build/debug/, the
# ./ringfront copy is left alone) and the demo backend, then run
# tests/soak/soak.py for SOAK_TIME seconds (default 600) of mixed traffic
# and print its report. Exits non-zero on a crash, a sanitizer report, a
# leaked descriptor or RSS growth after warm-up.
#
#   make soak                      10 minutes
#   SOAK_TIME=60 make soak         a quick one
#   SOAK_FEATURES=none make soak   proxy/admin/restarts only (see soak.py)
#   SOAK_REPORT=soak.txt make soak keep the report in a file too
set -u
cd "$(dirname "$0")/../.." || exit 2
for tool in wrk python3; do
	command -v $tool >/dev/null 2>&1 || { echo "soak: $tool is missing (make deps-test)" >&2; exit 2; }
done
# build/debug/ringfront directly: `make debug` would also replace ./ringfront
make --no-print-directory BUILD=debug build/debug/ringfront build/demo-backend || exit 2
exec python3 -u tests/soak/soak.py
