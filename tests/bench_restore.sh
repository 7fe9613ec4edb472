#!/usr/bin/env bash
# tests/bench_restore.sh: restore throughput (issue 5). Builds a database of
# SIZE_MB (default 1024) with plain sqlite3, opens it through the extension
# with checksums=false (so Litestream can read the replica too), which
# writes a full snapshot, then commits a dozen transactions of updates. Then
# times, on the same disk: cp of the database, `ltxrestore` (with and
# without the integrity check) and `litestream restore` 0.5.16, with peak
# RSS from /usr/bin/time. Prints a markdown table.
#
#   ./tests/bench_restore.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
command -v /usr/bin/time >/dev/null || apt-get install -y time >/dev/null
./build.sh >/dev/null
ls_bin=.cache/bin/litestream
if [ ! -x "$ls_bin" ]; then
  mkdir -p .cache/bin
  GOBIN="$PWD/.cache/bin" CGO_ENABLED=0 go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.16
fi
work=$(mktemp -d "$PWD/.bench-restore.XXXXXX")
trap 'rm -rf "$work"' EXIT
db="$work/app.db"

rows=$((size_mb * 1024 / 4))  # ~4 KiB of random blob per row
sqlite3 "$db" "PRAGMA journal_mode=WAL; PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
  WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < $rows) INSERT INTO t(b) SELECT randomblob(3900) FROM c;
  PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
{
  echo "SELECT litestream_sync(600000);"
  for i in $(seq 1 12); do
    echo "UPDATE t SET b = randomblob(3900) WHERE id % 97 = $i; SELECT litestream_sync(600000);"
  done
} | sqlite3 -cmd '.load ./litestream_vfs' -cmd ".open file:$db?vfs=litestream&checksums=false" >/dev/null
db_bytes=$(stat -c %s "$db")
rep="$work/app.db-replica"
files=$(find "$rep" -name '*.ltx' | wc -l)
rep_bytes=$(du -sb "$rep" | cut -f1)

measure() { # name, command...
  local name=$1; shift
  rm -f "$work/out.db"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { echo "$name failed:"; cat "$work/err"; exit 1; }
  read -r secs rss_kb <"$work/time"
  printf '| %s | %.2f | %.0f | %.0f |\n' "$name" "$secs" "$(awk -v b="$db_bytes" -v s="$secs" 'BEGIN{print b/1048576/s}')" "$(awk -v k="$rss_kb" 'BEGIN{print k/1024}')"
}
echo "database $((db_bytes / 1048576)) MiB; replica: $files LTX files, $((rep_bytes / 1048576)) MiB"
echo
echo "| command | seconds | MB/s (database bytes) | peak RSS MB |"
echo "|---|---|---|---|"
measure "cp" cp "$db" "$work/out.db"
measure "cp, then fsync (coreutils sync FILE)" sh -c 'cp "$1" "$2" && sync "$2"' sh "$db" "$work/out.db"
measure "ltxrestore" bin/ltxrestore -o "$work/out.db" "file://$rep"
measure "ltxrestore -no-integrity-check" bin/ltxrestore -no-integrity-check -o "$work/out.db" "file://$rep"
measure "litestream restore 0.5.16" env -u AWS_CA_BUNDLE "$ls_bin" restore -o "$work/out.db" "file://$rep"
