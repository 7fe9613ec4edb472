#!/usr/bin/env bash
# tests/bench/compare.sh: plain SQLite, this extension and the Litestream
# 0.5.16 sidecar side by side, on a directory replica and on a local MinIO,
# in one run (tests/bench/compare/: the driver; compare.c: the writer).
# Builds the extension, installs Litestream 0.5.16 and MinIO (cached under
# .cache/bin), prints machine facts and one Markdown table; --write puts it
# into docs/performance.md. --smoke is a short run (< 2 min) that the test
# suite runs so the script cannot rot; its figures mean little.
#
#   ./tests/bench/compare.sh [--smoke] [--write]
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/driver.sh
run_driver ./tests/bench/compare ./tests/bench/compare.sh "$@"
