#!/usr/bin/env bash
# `make bench`: installs the peers when missing (bench/install-peers.sh), then runs the driver
# (bench/run.py), which writes bench/RESULTS.md. BENCH_QUICK=1 makes a short smoke run (written
# to bench/out/RESULTS.quick.md); `--install-only` stops after the installs. Knobs (see
# bench/run.py): BENCH_ROUNDS, BENCH_DURATION, BENCH_THREADS, BENCH_CONNECTIONS, BENCH_NICE.
# BENCH_LONG_VERIFY=1 adds the long seeded contract verify (bench/long_verify.py, ~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."

bash bench/install-peers.sh
[ "${1:-}" = "--install-only" ] && exit 0
.venv/bin/python bench/run.py --wrk "$(command -v wrk)" "$@"
if [ "${BENCH_LONG_VERIFY:-0}" != "0" ]; then
    results=bench/RESULTS.md
    [ "${BENCH_QUICK:-0}" != "0" ] && results=bench/out/RESULTS.quick.md
    .venv/bin/python bench/long_verify.py --results-file "$results"
fi
