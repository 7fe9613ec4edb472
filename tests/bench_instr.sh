#!/usr/bin/env bash
# tests/bench_instr.sh: instructions the writer thread executes per
# transaction, counted by valgrind's callgrind (repeatable, whatever else
# the machine is doing, unlike wall time). For plain SQLite, plain SQLite
# in a process with one idle thread, and the extension, it runs
# tests/bench/bench.c at N1 and N2 single-row INSERT transactions
# (synchronous=NORMAL, WAL) and prints (instructions at N2 - at N1) /
# (N2 - N1) for the main thread, so start-up (loading the extension,
# opening, the first snapshot) cancels out. It counts instructions, not
# cycles: an atomic instruction or a cache miss counts as one.
#
#   ./tests/bench_instr.sh [N1] [N2]
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-10000}
n2=${2:-30000}
command -v valgrind >/dev/null || { echo "bench_instr.sh: valgrind not found (apt-get install -y valgrind)" >&2; exit 1; }

./build.sh >/dev/null
work=$(mktemp -d "$PWD/.bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" tests/bench/bench.c -lsqlite3 -lpthread

# count MODE N: callgrind total of the main thread for one run.
count() {
  local d out
  d=$(mktemp -d "$work/run.XXXXXX")
  out="$work/cg.$1.$2"
  # The Go runtime's preemption signals trip callgrind; without them the
  # run is the same work.
  GODEBUG=asyncpreemptoff=1 BENCH_NOLAG=1 valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out.%p" "$work/bench" "$1" NORMAL "$2" "$d" ./litestream_vfs.so >/dev/null 2>"$work/valgrind.log" ||
    { cat "$work/valgrind.log" >&2; exit 1; }
  # With --separate-threads the main thread's file ends in -01 (a program
  # that never made a thread has a single file without the suffix).
  local f
  f=$(ls "$out".*-01 2>/dev/null || ls "$out".* | head -1)
  sed -n 's/^totals: //p' "$f"
}

echo "| process | instructions per transaction (main thread) | vs plain |"
echo "|---|---|---|"
base=
for mode in plain thread ext; do
  a=$(count "$mode" "$n1")
  b=$(count "$mode" "$n2")
  per=$(((b - a) / (n2 - n1)))
  [ -n "$base" ] || base=$per
  printf '| %s | %d | %s |\n' "$mode" "$per" "$(awk -v p="$per" -v b="$base" 'BEGIN{printf "%.4f", p/b}')"
done
