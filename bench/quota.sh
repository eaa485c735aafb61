#!/usr/bin/env bash
# Quota benchmark (issue 10): mosquitto + the Python test endpoint in quota
# mode (a token bucket of QUOTA calls/s, burst QUOTA, 429 beyond it) + the
# gateway, offered 1x, 2x and 5x the quota for SECONDS s over 30 things.
# Reports goodput / quota, the share of calls answered 429 and p50/p99
# request latency (publish -> reply); numbers go in bench/BASELINE.md.
#   bench/quota.sh [QUOTA [SECONDS [MULT ...]]]   (defaults: 20 10 1 2 5)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
CMDGATE=build-bench/cmdgate exec /usr/bin/python3 -W ignore bench/quota.py "$@"
