#!/usr/bin/env bash
# `make bench`: installs wrk and Prism when missing, then runs the driver (bench/run.py).
# BENCH_QUICK=1 makes a short smoke run (written to bench/out/RESULTS.quick.md); `--install-only`
# stops after the installs. Other knobs (see bench/run.py): BENCH_DURATION, BENCH_WARMUP,
# BENCH_THREADS, BENCH_CONNECTIONS, BENCH_SEED_BUDGET, BENCH_QUIET_BUDGET, BENCH_QUIET_WAIT,
# BENCH_NICE (0 keeps the normal priority). At the end run.py calls bench/long_verify.py: a long
# seeded contract verify against a fresh mock (tiny with BENCH_QUICK=1, sized by
# BENCH_VERIFY_EXAMPLES), added to the results; a failure it reports makes `make bench` fail.
set -euo pipefail
cd "$(dirname "$0")/.."

PRISM_DIR=bench/.prism
PRISM="$PRISM_DIR/node_modules/.bin/prism"

if ! command -v wrk >/dev/null; then
    # apt-cache knows no candidate until the package lists have been fetched once.
    if ! apt-cache policy wrk 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk
fi

if [ ! -x "$PRISM" ]; then
    command -v npm >/dev/null || { echo "bench: npm is needed to install Prism" >&2; exit 1; }
    npm install --prefix "$PRISM_DIR" --no-audit --no-fund --loglevel=error @stoplight/prism-cli@5
fi

[ "${1:-}" = "--install-only" ] && exit 0
exec .venv/bin/python bench/run.py --wrk "$(command -v wrk)" --prism "$PRISM" "$@"
