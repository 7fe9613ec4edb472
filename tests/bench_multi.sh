#!/usr/bin/env bash
# tests/bench_multi.sh: the multi-process benchmark of issue 9. For 1, 2
# and 4 writer processes on one WAL database (synchronous=NORMAL), each
# writing N single-row INSERT transactions concurrently (tests/bench/multi.c),
# runs ROUNDS rounds of plain SQLite and the extension in alternating order,
# each on a fresh database. Reports, as medians over rounds: commits per
# second (all processes' commits over the slowest process's time in its
# inserts), the ratio of their times, and, from a third run per round in
# which every 100th commit of each process is followed by litestream_sync,
# the commit -> replica lag (median of the processes' p50, largest p99), and
# the snapshots after the first per minute of writing. An idle process
# opens the database first (with the extension it replicates; the writers
# do not). A fourth run per round has the same plain writers with
# `litestream replicate` 0.5.16 (the sidecar, to a directory replica)
# running instead. With --write it replaces the generated section of
# docs/performance.md.
#
#   ./tests/bench_multi.sh [--write] [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
if [[ "${1:-}" == "--write" ]]; then write=1; shift; fi
rounds=${1:-5}
n=${2:-5000}

./build.sh >/dev/null
ls_bin=.cache/bin/litestream
if [ ! -x "$ls_bin" ]; then
  mkdir -p .cache/bin
  GOBIN="$PWD/.cache/bin" CGO_ENABLED=0 go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.16
fi
work=$(mktemp -d "$PWD/.bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/multi" tests/bench/multi.c -lsqlite3

field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END { printf "%.3f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'; }

# run MODE P: one run of P processes; appends "rate lag50 lag99 snaps_per_min"
# to $work/MODE.P.
run() {
  local mode=$1 p=$2 d i maxe=0 l50=0 l99=0 snaps=0
  sync
  sleep 0.2
  d=$(mktemp -d "$work/run.XXXXXX")
  /usr/bin/sqlite3 "$d/m.db" "PRAGMA journal_mode=WAL; CREATE TABLE w(id INTEGER PRIMARY KEY, v BLOB);" >/dev/null
  # An idle process holds the database open first: with the extension it
  # is the owner, so every writer is another process and its commits
  # reach the replica through the shared state.
  local ownerArgs=("$d/m.db") wmode=$mode owner fd
  if [[ $mode == litestream ]]; then
    # The sidecar replicates; the writers are plain SQLite.
    wmode=plain
    "$ls_bin" replicate "$d/m.db" "file://$d/m.db-replica" >"$d/litestream.log" 2>&1 &
    owner=$!
    sleep 1.5 # it has taken its first snapshot
  else
    if [[ $mode != plain ]]; then
      ownerArgs=(-cmd ".load ./litestream_vfs" -cmd ".open file:$d/m.db?vfs=litestream")
    fi
    mkfifo "$d/idle"
    /usr/bin/sqlite3 "${ownerArgs[@]}" <"$d/idle" >/dev/null 2>&1 &
    owner=$!
    exec {fd}>"$d/idle" # open until the run ends: then EOF, and it exits
    sleep 0.3
  fi
  for i in $(seq 1 "$p"); do
    "$work/multi" "$wmode" NORMAL "$n" "$d/m.db" ./litestream_vfs.so >"$d/out.$i" &
  done
  wait $(jobs -p | grep -vx "$owner")
  maxe=$(cat "$d"/out.* | field elapsed | sort -g | tail -1)
  if [[ $mode == ext || $mode == lag ]]; then
    l50=$(cat "$d"/out.* | field lag_p50_ms | median)
    l99=$(cat "$d"/out.* | field lag_p99_ms | sort -g | tail -1)
    snaps=$(($(ls "$d/m.db-replica/ltx/9" | wc -l) - 1))
  fi
  if [[ $mode == litestream ]]; then
    kill -INT "$owner"
  else
    exec {fd}>&-
  fi
  wait "$owner" || true
  awk -v p="$p" -v n="$n" -v e="$maxe" -v a="$l50" -v b="$l99" -v s="$snaps" \
    'BEGIN { printf "%.1f %s %s %.2f\n", p * n / e, a, b, s / (e / 60) }' >>"$work/$mode.$p"
  rm -rf "$d"
}

table=$(mktemp)
{
  echo "| writer processes | plain commits/s | extension commits/s | ratio plain/ext time | lag p50 / p99 ms | snapshots/min after the first | Litestream 0.5.16 sidecar commits/s | its ratio |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$table"
for p in 1 2 4; do
  for r in $(seq 1 "$rounds"); do
    if ((r % 2)); then run plain "$p"; run ext "$p"; else run ext "$p"; run plain "$p"; fi
    run lag "$p"
    run litestream "$p"
  done
  pr=$(cut -d' ' -f1 "$work/plain.$p" | median)
  er=$(cut -d' ' -f1 "$work/ext.$p" | median)
  l50=$(cut -d' ' -f2 "$work/lag.$p" | median)
  l99=$(cut -d' ' -f3 "$work/lag.$p" | median)
  sm=$(cat "$work/ext.$p" "$work/lag.$p" | cut -d' ' -f4 | median)
  lr=$(cut -d' ' -f1 "$work/litestream.$p" | median)
  ratio=$(awk -v a="$pr" -v b="$er" 'BEGIN { printf "%.3f", a / b }')
  lratio=$(awk -v a="$pr" -v b="$lr" 'BEGIN { printf "%.3f", a / b }')
  echo "| $p | $pr | $er | $ratio | $l50 / $l99 | $sm | $lr | $lratio |" >>"$table"
done
cat "$table"
if ((write)); then
  python3 - "$table" "$rounds" "$n" <<'PY'
import re, sys
table = open(sys.argv[1]).read()
doc = open("docs/performance.md").read()
begin, end = "<!-- multi-bench:begin -->", "<!-- multi-bench:end -->"
body = "%s\n`./tests/bench_multi.sh --write %s %s` (medians of %s rounds, %s commits per process, synchronous=NORMAL):\n\n%s%s" % (
    begin, sys.argv[2], sys.argv[3], sys.argv[2], sys.argv[3], table, end)
if begin in doc:
    doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: body, doc, flags=re.S)
else:
    doc += "\n## Several writer processes\n\n" + body + "\n"
open("docs/performance.md", "w").write(doc)
PY
fi
rm -f "$table"
