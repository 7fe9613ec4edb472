#!/usr/bin/env bash
# tests/bench_sync.sh: replicate=sync against replicate=async and plain
# SQLite (issue 13): commit latency p50/p99 and throughput with 1, 4 and 16
# writers, as threads and as processes, on a directory replica and a local
# MinIO (installed and cached by the driver, tests/bench/syncbench). --write
# puts the table into docs/performance.md; --smoke is a short run the test
# suite makes so the script cannot rot (its figures mean little).
#
#   ./tests/bench_sync.sh [--smoke] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench/driver.sh
run_driver ./tests/bench/syncbench ./tests/bench_sync.sh "$@"
