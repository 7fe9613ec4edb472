/*
** compare.c: the writer of tests/bench/compare.sh (docs/performance.md,
** "Side by side").
**
**   compare plain|ext SYNC WORKLOAD ARG DB [EXT]
**
** Opens DB (created beforehand in WAL mode with a table t) with the
** default VFS (plain: also what the Litestream sidecar watches) or, having
** loaded EXT, the litestream VFS (ext; configured by LITESTREAM_*
** variables), sets busy_timeout=5000 and synchronous=SYNC and runs
** WORKLOAD:
**
**   txns N       N single-row INSERT transactions, as fast as they go
**   sustained S  single-row INSERT transactions for S seconds
**   bulk N       one transaction of N rows
**   paced R S    R single-row transactions a second for S seconds; the
**                wall-clock time (ms) of each commit goes to stdout as
**                "commit MS", one line each
**   idle S       one transaction, then S seconds of nothing
**
** Then one line of key=value pairs: elapsed (seconds of the workload),
** commits, tps, cpu (user+system seconds of the process during it),
** maxrss_kb. In ext mode a final litestream_sync(60000), outside the
** timing, makes the replica whole before the process exits.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wallMS(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpuSeconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "compare: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, 0, 0, 0) != SQLITE_OK) die(db, sql);
}

static void insert(sqlite3 *db, sqlite3_stmt *ins, long long i) {
  sqlite3_bind_int64(ins, 1, i);
  if (sqlite3_step(ins) != SQLITE_DONE) die(db, "insert");
  sqlite3_reset(ins);
}

static void sleepUntil(double t) {
  double d = t - mono();
  if (d > 0) {
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, 0);
  }
}

int main(int argc, char **argv) {
  const char *mode, *sync, *work, *path;
  int ext;
  long long n = 0, i;
  double arg, t0, c0, elapsed, cpu;
  char sql[128];
  sqlite3 *db = 0;
  sqlite3_stmt *ins = 0;
  struct rusage ru;

  if (argc < 6) {
    fprintf(stderr, "usage: compare plain|ext SYNC txns|sustained|bulk|paced|idle ARG [RATE_SECONDS] DB [EXT]\n");
    return 2;
  }
  mode = argv[1];
  sync = argv[2];
  work = argv[3];
  arg = atof(argv[4]);
  {
    int k = 5;
    double secs = 0;
    if (strcmp(work, "paced") == 0) secs = atof(argv[k++]);
    if (k >= argc) return 2;
    path = argv[k++];
    ext = strcmp(mode, "ext") == 0;
    if (ext) {
      sqlite3 *mem;
      char *err = 0;
      if (k >= argc) return 2;
      sqlite3_open(":memory:", &mem);
      sqlite3_enable_load_extension(mem, 1);
      if (sqlite3_load_extension(mem, argv[k], 0, &err) != SQLITE_OK) {
        fprintf(stderr, "compare: load %s: %s\n", argv[k], err);
        return 1;
      }
      sqlite3_close(mem);
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, ext ? "litestream" : 0) != SQLITE_OK) die(db, "open");
    /* As Litestream's docs ask of every application beside the sidecar
    ** (its checkpoints take the write lock); the same for every mode. */
    exec(db, "PRAGMA busy_timeout=5000");
    exec(db, "PRAGMA journal_mode=WAL");
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
    exec(db, sql);
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &ins, 0) != SQLITE_OK) die(db, "prepare");

    t0 = mono();
    c0 = cpuSeconds();
    if (strcmp(work, "txns") == 0) {
      for (n = (long long)arg, i = 0; i < n; i++) insert(db, ins, i);
    } else if (strcmp(work, "sustained") == 0) {
      double end = t0 + arg;
      while (mono() < end) {
        for (i = 0; i < 100; i++) insert(db, ins, n++);
      }
    } else if (strcmp(work, "bulk") == 0) {
      exec(db, "BEGIN");
      for (n = (long long)arg, i = 0; i < n; i++) insert(db, ins, i);
      exec(db, "COMMIT");
      n = 1;
    } else if (strcmp(work, "paced") == 0) {
      long long total = (long long)(arg * secs);
      for (i = 0; i < total; i++) {
        sleepUntil(t0 + (double)i / arg);
        insert(db, ins, i);
        printf("commit %lld\n", wallMS());
        n++;
      }
      fflush(stdout);
    } else if (strcmp(work, "idle") == 0) {
      insert(db, ins, 0);
      n = 1;
      if (ext) exec(db, "SELECT litestream_sync(60000)");
      t0 = mono();
      c0 = cpuSeconds();
      sleepUntil(t0 + arg);
    } else {
      fprintf(stderr, "compare: unknown workload %s\n", work);
      return 2;
    }
    elapsed = mono() - t0;
    cpu = cpuSeconds() - c0;
  }
  sqlite3_finalize(ins);
  if (ext) exec(db, "SELECT litestream_sync(60000)");
  if (sqlite3_close(db) != SQLITE_OK) die(db, "close");
  getrusage(RUSAGE_SELF, &ru);
  printf("elapsed=%.4f commits=%lld tps=%.1f cpu=%.3f maxrss_kb=%ld\n", elapsed, n,
         elapsed > 0 ? (double)n / elapsed : 0, cpu, ru.ru_maxrss);
  return 0;
}
