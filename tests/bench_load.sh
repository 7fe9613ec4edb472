#!/usr/bin/env bash
# tests/bench_load.sh: compaction and snapshots under load (issue 11). A
# database of DB_MB MiB (default 1024: a table of 200-byte rows) gets HOURS
# (default 1) of history at 100 transactions a second, each updating one
# random row (tests/bench/load.c: one random page per commit), written 30
# times faster (3000 txn/s, paced) with the compaction schedule compressed
# by the same factor, so the replica goes through the windows of HOURS of
# real time: compaction=1s,10s,2m (30s,5m,1h / 30), snapshot-interval and
# retention 48m, l0-retention 10s; a directory replica. Four runs on
# fresh copies of the same database, the same row sequence in each:
#
#   plain  the writer without the extension
#   off    with the extension, compaction=off (the first snapshot of the
#          whole database at open, then level-0 files)
#   on     with the extension and the compressed schedule
#
# and two more at the real rate (100 txn/s, paced, for 60 s: the snapshot
# of the whole database at open and the first two level-1 compactions of
# the default schedule fall inside it):
#
#   plain100, on100  plain, and the extension with the default schedule
#
# and reports: the write ratio (the time in the N commits vs plain, sleeps
# excluded: a snapshot of the whole database runs at the start and
# compaction throughout), the
# compaction CPU seconds per hour of history (CPU of "on" minus "off"), the
# peak RSS added to the process (VmHWM vs plain), the replica after the
# run, and the restore of its latest state vs a restore of one fresh
# snapshot of the same database (`ltxrestore`, wall time, ROUNDS rounds,
# median). With --write it replaces the generated section of
# docs/performance.md.
#
#   ./tests/bench_load.sh [--write] [DB_MB] [HOURS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
if [[ "${1:-}" == "--write" ]]; then write=1; shift; fi
db_mb=${1:-1024}
hours=${2:-1}
rounds=${3:-3}
n=$(python3 -c "print(int(float('$hours') * 3600 * 100))")

./build.sh >/dev/null
work=$(mktemp -d "$PWD/.bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$work/load" tests/bench/load.c -lsqlite3
ext="$PWD/litestream_vfs"

# About 4600 rows of 200 bytes per MiB with page_size 4096.
rows=$((db_mb * 4600))
echo "bench_load: building a ${db_mb} MiB database ($rows rows)" >&2
/usr/bin/sqlite3 "$work/base.db" >/dev/null <<SQL
PRAGMA page_size=4096;
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO t SELECT i, randomblob(200) FROM c;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
size=$(stat -c %s "$work/base.db")

field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
median() { sort -g | awk '{a[NR]=$1} END { printf "%.3f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'; }

# run MODE: one run on a fresh copy; prints the writer's line.
run() {
  local mode=$1 db="$work/$1.db" uri rate=3000 count=$n
  rm -rf "$db" "$db-wal" "$db-shm" "$db-litestream" "$work/rep-$mode"
  cp "$work/base.db" "$db"
  case $mode in
  plain) uri="file:$db" ;;
  off) uri="file:$db?vfs=litestream&replica=file://$work/rep-off&compaction=off" ;;
  on) uri="file:$db?vfs=litestream&replica=file://$work/rep-on&compaction=1s,10s,2m&snapshot-interval=48m&retention=48m&l0-retention=10s" ;;
  plain100) uri="file:$db" rate=100 count=6000 ;;
  on100) uri="file:$db?vfs=litestream&replica=file://$work/rep-on100" rate=100 count=6000 ;;
  esac
  if [[ "$mode" == plain* ]]; then
    "$work/load" "$count" "$rate" "$rows" "$uri"
  else
    "$work/load" "$count" "$rate" "$rows" "$uri" "$ext"
  fi
}

echo "bench_load: $n transactions ($hours h at 100 txn/s) on each of plain, off, on" >&2
plain=$(run plain)
off=$(run off)
on=$(run on)
plain100=$(run plain100)
on100=$(run on100)
echo "plain100: $plain100" >&2
echo "on100: ${on100%% status=*}" >&2
rm -rf "$work/plain100.db" "$work/on100.db"* "$work/rep-on100" "$work/plain.db" "$work/off.db"* "$work/rep-off"
echo "plain: $plain" >&2
echo "off: ${off%% status=*}" >&2
echo "on: $on" >&2

# The latest state of the compacted replica vs one fresh snapshot of the
# database that run ended with.
rm -rf "$work/on.db-litestream" "$work/rep-fresh"
"$work/load" 0 0 "$rows" "file:$work/on.db?vfs=litestream&replica=file://$work/rep-fresh&compaction=off" "$ext" >/dev/null
: >"$work/t.on"
: >"$work/t.fresh"
for ((r = 0; r < rounds; r++)); do
  for which in on fresh; do
    rm -f "$work/out.db"
    t0=$(date +%s.%N)
    summary=$(bin/ltxrestore -no-integrity-check -o "$work/out.db" "file://$work/rep-$which" 2>&1 | tail -1)
    echo "$(date +%s.%N) - $t0" | bc >>"$work/t.$which"
    echo "$summary" >"$work/summary.$which"
  done
done
# The restored database equals the one the writer left.
cmp <(/usr/bin/sqlite3 "$work/out.db" "SELECT sum(length(v)), count(*) FROM t; PRAGMA integrity_check") \
  <(/usr/bin/sqlite3 "$work/on.db" "SELECT sum(length(v)), count(*) FROM t; PRAGMA integrity_check") >&2

table=$(mktemp)
trap 'rm -rf "$work" "$table"' EXIT
python3 - "$db_mb" "$size" "$hours" "$n" "$rounds" >"$table" <<PY
import json, re, sys
db_mb, size, hours, n, rounds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def parse(line):
    st = None
    if " status=" in line:
        line, js = line.split(" status=", 1)
        st = json.loads(js)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}, st
plain, _ = parse("""$plain""")
off, st_off = parse("""$off""")
on, st_on = parse("""$on""")
plain100, _ = parse("""$plain100""")
on100, _ = parse("""$on100""")
t_on = sorted(float(x) for x in open("$work/t.on").read().split())
t_fresh = sorted(float(x) for x in open("$work/t.fresh").read().split())
med = lambda a: a[len(a) // 2]
print("\`./tests/bench_load.sh --write %s %s %s\`: a %.0f MiB database, %d transactions (%g h at 100 txn/s), each updating one random row; 3000 txn/s with the compaction schedule compressed 30x; directory replica." % (db_mb, hours, rounds, size / 2**20, n, hours))
print()
print("| | plain SQLite | extension, compaction=off | extension, compaction on |")
print("|---|---|---|---|")
print("| commits/s | %.0f | %.0f | %.0f |" % (n / plain["elapsed"], n / off["elapsed"], n / on["elapsed"]))
print("| write ratio vs plain (time) | 1 | %.3f | %.3f |" % (off["elapsed"] / plain["elapsed"], on["elapsed"] / plain["elapsed"]))
print("| process CPU s | %.1f | %.1f | %.1f |" % (plain["cpu"], off["cpu"], on["cpu"]))
print("| peak RSS MiB (added vs plain) | %.1f | %.1f (+%.1f) | %.1f (+%.1f) |" % (plain["hwm_kb"] / 1024, off["hwm_kb"] / 1024, (off["hwm_kb"] - plain["hwm_kb"]) / 1024, on["hwm_kb"] / 1024, (on["hwm_kb"] - plain["hwm_kb"]) / 1024))
print("| replica files / MiB after the run | | %d / %.0f | %d / %.0f |" % (st_off["replica_files"], st_off["replica_bytes"] / 2**20, st_on["replica_files"], st_on["replica_bytes"] / 2**20))
print()
print()
print("At the real rate (100 txn/s for 60 s, the default schedule: the snapshot of the whole database at open and two level-1 compactions inside the run): %.1f ms in 6000 commits plain, %.1f ms with the extension: **write ratio %.3f**; peak RSS %.1f MiB vs %.1f (+%.1f)." % (plain100["elapsed"] * 1000, on100["elapsed"] * 1000, on100["elapsed"] / plain100["elapsed"], on100["hwm_kb"] / 1024, plain100["hwm_kb"] / 1024, (on100["hwm_kb"] - plain100["hwm_kb"]) / 1024))
print()
print("Compaction CPU: %.1f s per hour of history (CPU of the compacting run minus compaction=off's, over %g h)." % ((on["cpu"] - off["cpu"]) / hours, hours))
summ_on, summ_fresh = open("$work/summary.on").read().strip(), open("$work/summary.fresh").read().strip()
print()
print("Restore of the latest state (median of %s): the compacted replica %.2f s (%s) vs one fresh snapshot of the same database %.2f s (%s): **%.2fx**." % (rounds, med(t_on), summ_on, med(t_fresh), summ_fresh, med(t_on) / med(t_fresh)))
PY
cat "$table"
if ((write)); then
  python3 - "$table" <<'PY'
import re, sys
table = open(sys.argv[1]).read()
doc = open("docs/performance.md").read()
begin, end = "<!-- load:begin -->", "<!-- load:end -->"
body = begin + "\n" + table + end
if begin in doc:
    doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: body, doc, flags=re.S)
else:
    doc += "\n## Compaction and snapshots under load (issue 11)\n\n" + body + "\n"
open("docs/performance.md", "w").write(doc)
PY
fi
