/*
** load.c: the writer of the compaction-under-load benchmark
** (tests/bench_load.sh, docs/performance.md, issue 11).
**
**   load N RATE ROWS URI [EXT]
**
** Opens URI (an SQLite URI: "file:app.db?vfs=litestream&..." to replicate,
** loading the extension EXT first; a plain "file:app.db" without) and runs
** N transactions, each updating one random row of table t (ids 1..ROWS)
** with a new 200-byte blob: one random leaf page of the database changes
** per commit, the worst case for compaction (nothing merges away) and the
** usual one for a large table updated at random, at RATE transactions a
** second (0: as fast as it goes; paced, it sleeps until each commit's
** turn). synchronous=NORMAL, WAL.
** With EXT it ends with SELECT litestream_sync(600000) and prints the
** status. Prints one line:
**
**   elapsed=S cpu=S hwm_kb=K rss_kb=K [status=JSON]
**
** elapsed: seconds spent in the N commits (sleeps excluded); cpu: the process's user+system
** CPU seconds over its life (the extension's goroutines included); hwm_kb:
** its peak resident set (VmHWM), rss_kb: the resident set at the end.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "load: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

/* procKB returns a "Name:   123 kB" field of /proc/self/status (-1: none). */
static long procKB(const char *name) {
  char line[256];
  long v = -1;
  size_t n = strlen(name);
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      v = atol(line + n + 1);
      break;
    }
  }
  fclose(f);
  return v;
}

int main(int argc, char **argv) {
  sqlite3 *db = 0;
  sqlite3_stmt *up = 0;
  struct rusage ru;
  long n, rows, i;
  double t0, start, rate, elapsed = 0;
  unsigned long long x = 88172645463325252ULL;
  int ext = argc > 5;
  if (argc < 5) {
    fprintf(stderr, "usage: load N RATE ROWS URI [EXT]\n");
    return 2;
  }
  n = atol(argv[1]);
  rate = atof(argv[2]);
  rows = atol(argv[3]);
  if (n < 0 || rate < 0 || rows <= 0) {
    fprintf(stderr, "load: N and RATE must be >= 0 and ROWS > 0\n");
    return 2;
  }
  if (ext) {
    sqlite3 *mem = 0;
    char *err = 0;
    sqlite3_open(":memory:", &mem);
    sqlite3_enable_load_extension(mem, 1);
    if (sqlite3_load_extension(mem, argv[5], 0, &err) != SQLITE_OK) {
      fprintf(stderr, "load: load extension: %s\n", err);
      return 1;
    }
    sqlite3_close(mem);
  }
  if (sqlite3_open_v2(argv[4], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, 0) != SQLITE_OK) {
    die(db, "open");
  }
  sqlite3_busy_timeout(db, 60000);
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", 0, 0, 0) != SQLITE_OK) {
    die(db, "pragmas");
  }
  if (sqlite3_prepare_v2(db, "UPDATE t SET v = randomblob(200) WHERE id = ?", -1, &up, 0) != SQLITE_OK) {
    die(db, "prepare");
  }
  start = now();
  for (i = 0; i < n; i++) {
    if (rate > 0) {
      double wait = start + (double)i / rate - now();
      if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    t0 = now();
    x ^= x << 13; /* xorshift64: the same row sequence in every run */
    x ^= x >> 7;
    x ^= x << 17;
    sqlite3_bind_int64(up, 1, (sqlite3_int64)(1 + x % (unsigned long long)rows));
    if (sqlite3_step(up) != SQLITE_DONE) die(db, "update");
    sqlite3_reset(up);
    elapsed += now() - t0;
  }
  sqlite3_finalize(up);
  printf("elapsed=%.4f", elapsed);
  if (ext) {
    sqlite3_stmt *st = 0;
    if (sqlite3_prepare_v2(db, "SELECT litestream_sync(600000), litestream_status()", -1, &st, 0) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
      die(db, "litestream_sync");
    }
    getrusage(RUSAGE_SELF, &ru);
    printf(" cpu=%.3f hwm_kb=%ld rss_kb=%ld status=%s", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
           procKB("VmHWM"), procKB("VmRSS"), (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
  } else {
    getrusage(RUSAGE_SELF, &ru);
    printf(" cpu=%.3f hwm_kb=%ld rss_kb=%ld", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
           procKB("VmHWM"), procKB("VmRSS"));
  }
  printf("\n");
  sqlite3_close(db);
  return 0;
}
