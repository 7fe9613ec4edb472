#!/usr/bin/env bash
# tests/bench_follow.sh: how far `ltxrestore -follow` trails its source on a
# local MinIO (issue 13): commit → visible on the follower p50/p99 at 50
# txn/s, and the follower's requests and CPU while the source is idle
# (tests/bench/followbench). --write puts the table into
# docs/performance.md; --smoke is a short run the test suite makes so the
# script cannot rot (its figures mean little).
#
#   ./tests/bench_follow.sh [--smoke] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench/driver.sh
run_driver ./tests/bench/followbench ./tests/bench_follow.sh "$@"
