#!/usr/bin/env bash
# Installs the benchmark's peers from the registries, each only when missing:
#   wrk and Java (default-jre-headless) from Debian's packages; Prism (@stoplight/prism-cli@5),
#   WireMock 3 (npm package `wiremock`, which ships the standalone jar) and Mockoon CLI
#   (@mockoon/cli) from npm, into bench/.peers; py-spy from PyPI into the project's venv.
# Nothing else is downloaded: no binary from outside a registry.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=bench/.peers
apt_pkgs=()
command -v wrk >/dev/null || apt_pkgs+=(wrk)
command -v java >/dev/null || apt_pkgs+=(default-jre-headless)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
    # apt-cache knows no candidate until the package lists have been fetched once.
    if ! apt-cache policy "${apt_pkgs[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}"
fi

npm_pkgs=()
[ -x "$PEERS/node_modules/.bin/prism" ] || npm_pkgs+=("@stoplight/prism-cli@5")
[ -x "$PEERS/node_modules/.bin/wiremock" ] || npm_pkgs+=("wiremock@3")
[ -x "$PEERS/node_modules/.bin/mockoon-cli" ] || npm_pkgs+=("@mockoon/cli@9")
if [ ${#npm_pkgs[@]} -gt 0 ]; then
    command -v npm >/dev/null || { echo "bench: npm is needed for the peers" >&2; exit 1; }
    npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error "${npm_pkgs[@]}"
fi

[ -x .venv/bin/py-spy ] || .venv/bin/pip install -q py-spy
