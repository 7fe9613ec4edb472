#!/usr/bin/env bash
# tests/bench.sh: the commit-path benchmark of issue 3. Builds the
# extension and tests/bench/bench.c, then for synchronous=NORMAL and FULL
# runs ROUNDS rounds of N single-row INSERT transactions in WAL mode, each
# on a fresh database in a temp dir on the same disk as the repo. A round is
# four runs in a rotating order: plain SQLite (A), the extension with the
# default local replica, plain SQLite again (B), and plain SQLite in a
# process with one idle thread (T). The ratio of a round is extension / A;
# the control B / A shows what this machine's noise alone does to a ratio;
# T / A is what a second thread alone costs a single-threaded program
# (glibc's single-threaded fast paths go), the floor for any replicator
# that works off the application's thread. Run directories are removed
# only at the end, so no deletion runs in the background of a timed run.
# Prints a table and, with --write, replaces the generated section of
# docs/performance.md.
#
#   ./tests/bench.sh [--write] [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
if [[ "${1:-}" == "--write" ]]; then write=1; shift; fi
rounds=${1:-9}
n=${2:-20000}

./build.sh >/dev/null
work=$(mktemp -d "$PWD/.bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" tests/bench/bench.c -lsqlite3 -lpthread

field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
# stats prints "median q1 q3" of the numbers on stdin.
stats() {
  sort -g | awk '{a[NR]=$1} END {
    m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
    printf "%.3f %.3f %.3f\n", m, a[int((NR-1)/4)+1], a[int(3*(NR-1)/4)+1] }'
}

# run MODE SYNC: one run, its output line appended to $work/MODE.SYNC.
# Each starts after a sync and a short pause, so no earlier run's dirty
# pages are written back behind it (the kernel flushes every 5 s, and a
# flush landing in one run and not another made ratios swing by ±5%).
run() {
  local d
  sync
  sleep 0.2
  d=$(mktemp -d "$work/run.XXXXXX")
  "$work/bench" "${1%2}" "$2" "$n" "$d" ./litestream_vfs.so >>"$work/$1.$2"
}

table=$(mktemp)
{
  echo "| synchronous | plain median s | extension median s | ratio: median (IQR) | control plain/plain: median (IQR) | plain + idle thread / plain: median (IQR) | lag p50 / p99 ms | lag under load p50 / p99 ms | max RSS plain → ext (MB) |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$table"
for sync in NORMAL FULL; do
  for ((i = 0; i < rounds; i++)); do
    case $((i % 4)) in
      0) run plain "$sync"; run ext "$sync"; run plain2 "$sync"; run thread "$sync" ;;
      1) run ext "$sync"; run plain2 "$sync"; run thread "$sync"; run plain "$sync" ;;
      2) run plain2 "$sync"; run thread "$sync"; run plain "$sync"; run ext "$sync" ;;
      3) run thread "$sync"; run plain "$sync"; run ext "$sync"; run plain2 "$sync" ;;
    esac
  done
  # Lag under load: separate runs (the poller's queries stay out of the
  # timed rounds), nobody waiting in litestream_sync.
  for ((i = 0; i < 3; i++)); do
    d=$(mktemp -d "$work/run.XXXXXX")
    BENCH_NOLAG=1 BENCH_POLL_LAG=1 "$work/bench" ext "$sync" "$n" "$d" ./litestream_vfs.so >>"$work/poll.$sync"
  done
  ll50=$(field load_lag_p50_ms <"$work/poll.$sync" | stats | cut -d' ' -f1)
  ll99=$(field load_lag_p99_ms <"$work/poll.$sync" | stats | cut -d' ' -f1)
  el() { field elapsed <"$work/$1.$sync"; }
  read -r rm rq1 rq3 < <(paste <(el plain) <(el ext) | awk '{print $2/$1}' | stats)
  read -r cm cq1 cq3 < <(paste <(el plain) <(el plain2) | awk '{print $2/$1}' | stats)
  read -r tm tq1 tq3 < <(paste <(el plain) <(el thread) | awk '{print $2/$1}' | stats)
  p=$(el plain | stats | cut -d' ' -f1)
  e=$(el ext | stats | cut -d' ' -f1)
  l50=$(field lag_p50_ms <"$work/ext.$sync" | stats | cut -d' ' -f1)
  l99=$(field lag_p99_ms <"$work/ext.$sync" | stats | cut -d' ' -f1)
  rp=$(field maxrss_kb <"$work/plain.$sync" | stats | cut -d' ' -f1)
  re=$(field maxrss_kb <"$work/ext.$sync" | stats | cut -d' ' -f1)
  printf '| %s | %.4f | %.4f | %s (%s–%s) | %s (%s–%s) | %s (%s–%s) | %.2f / %.2f | %.0f / %.0f | %.1f → %.1f |\n' "$sync" "$p" "$e" \
    "$rm" "$rq1" "$rq3" "$cm" "$cq1" "$cq3" "$tm" "$tq1" "$tq3" "$l50" "$l99" "$ll50" "$ll99" \
    "$(awk -v k="$rp" 'BEGIN{print k/1024}')" "$(awk -v k="$re" 'BEGIN{print k/1024}')" >>"$table"
  echo "== $sync: all rounds" >&2
  cat "$work/plain.$sync" "$work/ext.$sync" "$work/plain2.$sync" "$work/thread.$sync" "$work/poll.$sync" >&2
done
cat "$table"

if ((write)); then
  {
    sed '/<!-- bench:begin -->/q' docs/performance.md
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -r), SQLite $(sqlite3 --version | cut -d' ' -f1), by \`./tests/bench.sh --write $rounds $n\` ($rounds rounds of $n transactions):"
    echo
    cat "$table"
    echo
    sed -n '/<!-- bench:end -->/,$p' docs/performance.md
  } >"$work/perf.md"
  mv "$work/perf.md" docs/performance.md
fi
rm -f "$table"
