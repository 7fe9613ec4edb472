#!/usr/bin/env bash
# tests/bench.sh: the commit-path benchmark of issue 3. Builds the
# extension and tests/bench/bench.c, then for synchronous=NORMAL and FULL
# runs ROUNDS alternating pairs (plain SQLite, then the extension with the
# default local replica) of N single-row INSERT transactions in WAL mode,
# each on a fresh database in a temp dir on the same disk as the repo.
# Prints a table and, with --write, replaces the generated section of
# docs/performance.md. Ratios compare medians of the same run.
#
#   ./tests/bench.sh [--write] [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
if [[ "${1:-}" == "--write" ]]; then write=1; shift; fi
rounds=${1:-7}
n=${2:-20000}

./build.sh >/dev/null
work=$(mktemp -d "$PWD/.bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" tests/bench/bench.c -lsqlite3 -lpthread

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

table=$(mktemp)
{
  echo "| synchronous | plain median s | extension median s | ratio | lag p50 ms | lag p99 ms | max RSS plain → ext (MB) |"
  echo "|---|---|---|---|---|---|---|"
} >"$table"
for sync in NORMAL FULL; do
  : >"$work/plain" ; : >"$work/ext"
  for ((i = 0; i < rounds; i++)); do
    for mode in plain ext; do
      d=$(mktemp -d "$work/run.XXXXXX")
      "$work/bench" "$mode" "$sync" "$n" "$d" ./litestream_vfs.so >>"$work/$mode"
      rm -rf "$d"
    done
  done
  p=$(field elapsed <"$work/plain" | median)
  e=$(field elapsed <"$work/ext" | median)
  l50=$(field lag_p50_ms <"$work/ext" | median)
  l99=$(field lag_p99_ms <"$work/ext" | median)
  rp=$(field maxrss_kb <"$work/plain" | median)
  re=$(field maxrss_kb <"$work/ext" | median)
  ratio=$(awk -v e="$e" -v p="$p" 'BEGIN {printf "%.3f", e/p}')
  printf '| %s | %.4f | %.4f | %s | %.2f | %.2f | %.1f → %.1f |\n' "$sync" "$p" "$e" "$ratio" "$l50" "$l99" \
    "$(awk -v k="$rp" 'BEGIN{print k/1024}')" "$(awk -v k="$re" 'BEGIN{print k/1024}')" >>"$table"
  echo "== $sync: all rounds" >&2
  cat "$work/plain" "$work/ext" >&2
done
cat "$table"

if ((write)); then
  {
    sed '/<!-- bench:begin -->/q' docs/performance.md
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -r), SQLite $(sqlite3 --version | cut -d' ' -f1), by \`./tests/bench.sh --write $rounds $n\` ($rounds alternating rounds of $n transactions):"
    echo
    cat "$table"
    echo
    sed -n '/<!-- bench:end -->/,$p' docs/performance.md
  } >"$work/perf.md"
  mv "$work/perf.md" docs/performance.md
fi
rm -f "$table"
