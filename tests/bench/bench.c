/*
** bench.c: the commit-path benchmark of docs/performance.md.
**
**   bench MODE SYNC N DIR [EXT]
**
** MODE is "plain" (default VFS) or "ext" (loads EXT and opens with the
** litestream VFS). SYNC is NORMAL or FULL. Runs N single-row INSERT
** transactions in WAL mode on a new database DIR/bench.db and prints one
** line of key=value pairs: elapsed seconds, commits per second, max RSS.
** In ext mode it then measures commit -> durable-in-replica lag: 200 commits
** 10 ms apart, each followed by SELECT litestream_sync(10000), and prints
** the p50/p99 of the time litestream_sync took (the commit is durable in
** the replica when it returns).
**
** MODE "thread" is plain with one idle thread started first: glibc drops
** its single-threaded fast paths (non-atomic mutexes, syscalls without
** cancellation points) once a process has a second thread, and any
** in-process replicator has one, so this is the floor for the extension.
*/
#include <pthread.h>
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

static void check(int rc, sqlite3 *db, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
  }
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = 0;
  if (sqlite3_exec(db, sql, 0, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "bench: %s: %s\n", sql, err);
    exit(1);
  }
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* syncer calls litestream_sync in a loop on its own connection. */
struct syncer {
  const char *path;
  int stop;
  int n;
  double lag[100000];
};

static void *syncLoop(void *arg) {
  struct syncer *sc = (struct syncer *)arg;
  sqlite3 *db = 0;
  sqlite3_stmt *sy = 0;
  if (sqlite3_open_v2(sc->path, &db, SQLITE_OPEN_READWRITE, "litestream") != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT litestream_sync(10000)", -1, &sy, 0) != SQLITE_OK) {
    fprintf(stderr, "bench: syncer: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return 0;
  }
  while (!__atomic_load_n(&sc->stop, __ATOMIC_SEQ_CST) && sc->n < 100000) {
    double t1 = now();
    if (sqlite3_step(sy) != SQLITE_ROW) {
      fprintf(stderr, "bench: syncer: %s\n", sqlite3_errmsg(db));
      break;
    }
    sqlite3_reset(sy);
    sc->lag[sc->n++] = (now() - t1) * 1000.0;
  }
  sqlite3_finalize(sy);
  sqlite3_close(db);
  return 0;
}

/* poller samples litestream_status() on its own connection every 5 ms
** while the timed inserts run (BENCH_POLL_LAG): from the samples, the lag
** of the newest commit at each sample is the time until replicated_txid
** reached that sample's local_txid. Nobody waits in litestream_sync, so
** this is the replica's lag under a saturating writer. */
enum { POLL_MAX = 100000 };
struct poller {
  const char *path;
  int stop;
  int n;
  double t[POLL_MAX];
  long long local[POLL_MAX], repl[POLL_MAX];
};

static void *pollLoop(void *arg) {
  struct poller *pl = (struct poller *)arg;
  sqlite3 *db = 0;
  sqlite3_stmt *st = 0;
  if (sqlite3_open_v2(pl->path, &db, SQLITE_OPEN_READWRITE, "litestream") != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT json_extract(s, '$.local_txid'), json_extract(s, '$.replicated_txid') "
                         "FROM (SELECT litestream_status() AS s)",
                         -1, &st, 0) != SQLITE_OK) {
    fprintf(stderr, "bench: poller: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return 0;
  }
  while (!__atomic_load_n(&pl->stop, __ATOMIC_SEQ_CST) && pl->n < POLL_MAX) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    if (sqlite3_step(st) == SQLITE_ROW) {
      pl->t[pl->n] = now();
      pl->local[pl->n] = sqlite3_column_int64(st, 0);
      pl->repl[pl->n] = sqlite3_column_int64(st, 1);
      pl->n++;
    }
    sqlite3_reset(st);
    nanosleep(&ts, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}

/* statusUploads reads "uploads" from litestream_status(). */
static long statusUploads(sqlite3 *db) {
  sqlite3_stmt *st = 0;
  long n = -1;
  if (sqlite3_prepare_v2(db, "SELECT json_extract(litestream_status(), '$.uploads')",
                         -1, &st, 0) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = (long)sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return n;
}

static void *idleThread(void *arg) {
  (void)arg;
  for (;;) pause();
  return 0;
}

int main(int argc, char **argv) {
  const char *mode, *sync, *dir, *ext = 0;
  int n, i, ext_mode;
  char path[4096], sql[128];
  sqlite3 *db = 0;
  sqlite3_stmt *ins = 0;
  double t0, elapsed, cpu0, cpu;
  struct rusage ru;

  if (argc < 5) {
    fprintf(stderr, "usage: bench plain|thread|ext NORMAL|FULL N DIR [EXT]\n");
    return 2;
  }
  mode = argv[1];
  sync = argv[2];
  n = atoi(argv[3]);
  dir = argv[4];
  ext_mode = strcmp(mode, "ext") == 0;
  if (strcmp(mode, "thread") == 0) {
    pthread_t th;
    if (pthread_create(&th, 0, idleThread, 0) != 0) return 1;
  }
  if (ext_mode) {
    sqlite3 *mem;
    char *err = 0;
    if (argc < 6) return 2;
    ext = argv[5];
    if (sqlite3_open(":memory:", &mem) != SQLITE_OK) return 1;
    sqlite3_enable_load_extension(mem, 1);
    if (sqlite3_load_extension(mem, ext, 0, &err) != SQLITE_OK) {
      fprintf(stderr, "bench: load %s: %s\n", ext, err);
      return 1;
    }
    sqlite3_close(mem);
  }
  snprintf(path, sizeof(path), "%s/bench.db", dir);
  {
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             ext_mode ? "litestream" : 0);
    check(rc, db, "open");
  }
  exec(db, "PRAGMA journal_mode=WAL");
  snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
  exec(db, sql);
  exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  check(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &ins, 0), db,
        "prepare");

  {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    cpu0 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  }
  static struct poller pl;
  pthread_t pollTh;
  int polling = ext_mode && getenv("BENCH_POLL_LAG") != 0;
  if (polling) {
    memset(&pl, 0, sizeof(pl));
    pl.path = path;
    if (pthread_create(&pollTh, 0, pollLoop, &pl) != 0) return 1;
  }
  t0 = now();
  for (i = 0; i < n; i++) {
    sqlite3_bind_text(ins, 1, "a row of text about this long", -1, SQLITE_STATIC);
    check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
  }
  elapsed = now() - t0;
  {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    cpu = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - cpu0;
  }
  getrusage(RUSAGE_SELF, &ru);
  printf("mode=%s sync=%s n=%d elapsed=%.4f thread_cpu=%.4f tps=%.0f maxrss_kb=%ld",
         mode, sync, n, elapsed, cpu, n / elapsed, ru.ru_maxrss);
  if (polling) {
    /* Keep sampling until the replica has caught up (at most 10 s). */
    double until = now() + 10;
    static double lags[POLL_MAX];
    int nl = 0, j = 0, k;
    while (now() < until && (pl.n == 0 || pl.repl[pl.n - 1] < pl.local[pl.n - 1] ||
                             pl.local[pl.n - 1] < n)) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, 0);
    }
    __atomic_store_n(&pl.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(pollTh, 0);
    for (k = 0; k < pl.n; k++) {
      if (pl.t[k] > t0 + elapsed) break; /* only commits of the timed part */
      while (j < pl.n && pl.repl[j] < pl.local[k]) j++;
      if (j == pl.n) break;
      lags[nl++] = (pl.t[j] - pl.t[k]) * 1000.0;
      if (j < k) j = k;
    }
    qsort(lags, (size_t)nl, sizeof(double), cmpd);
    if (nl > 0) {
      printf(" load_lag_p50_ms=%.1f load_lag_p99_ms=%.1f load_lag_max_ms=%.1f load_lag_samples=%d",
             lags[nl / 2], lags[nl * 99 / 100], lags[nl - 1], nl);
    }
  }

  if (ext_mode && !getenv("BENCH_NOLAG")) {
    enum { LAG_N = 200 };
    double lag[LAG_N];
    long intervalMs = getenv("BENCH_LAG_INTERVAL_MS") ? atol(getenv("BENCH_LAG_INTERVAL_MS")) : 10;
    sqlite3_stmt *sy = 0;
    check(sqlite3_prepare_v2(db, "SELECT litestream_sync(10000)", -1, &sy, 0),
          db, "prepare sync");
    check(sqlite3_step(sy), db, "initial sync");
    sqlite3_reset(sy);
    for (i = 0; i < LAG_N; i++) {
      struct timespec ts = {intervalMs / 1000, (intervalMs % 1000) * 1000 * 1000};
      double t1;
      nanosleep(&ts, 0);
      sqlite3_bind_text(ins, 1, "lag", -1, SQLITE_STATIC);
      check(sqlite3_step(ins), db, "insert");
      sqlite3_reset(ins);
      t1 = now();
      check(sqlite3_step(sy), db, "sync");
      lag[i] = (now() - t1) * 1000.0;
      sqlite3_reset(sy);
    }
    qsort(lag, LAG_N, sizeof(double), cmpd);
    printf(" lag_p50_ms=%.3f lag_p99_ms=%.3f lag_max_ms=%.3f", lag[LAG_N / 2],
           lag[LAG_N * 99 / 100], lag[LAG_N - 1]);
    if (getenv("BENCH_RATE_TPS")) {
      /* A paced load: BENCH_RATE_TPS commits a second for BENCH_RATE_SECONDS,
      ** while a second connection in another thread calls litestream_sync
      ** in a loop: each call's latency is the lag of the newest commit at
      ** the time of the call, and the writer never waits for it. Reports
      ** the uploads made per second. */
      long tps = atol(getenv("BENCH_RATE_TPS"));
      long secs = getenv("BENCH_RATE_SECONDS") ? atol(getenv("BENCH_RATE_SECONDS")) : 5;
      long total = tps * secs;
      static struct syncer sc;
      pthread_t th;
      long u0 = statusUploads(db), u1;
      double start, end;
      memset(&sc, 0, sizeof(sc));
      sc.path = path;
      if (pthread_create(&th, 0, syncLoop, &sc) != 0) return 1;
      start = now();
      for (i = 0; i < total; i++) {
        double due = start + (double)i / (double)tps;
        while (now() < due) {
          struct timespec ts = {0, 100 * 1000};
          nanosleep(&ts, 0);
        }
        sqlite3_bind_text(ins, 1, "paced", -1, SQLITE_STATIC);
        check(sqlite3_step(ins), db, "insert");
        sqlite3_reset(ins);
      }
      end = now();
      __atomic_store_n(&sc.stop, 1, __ATOMIC_SEQ_CST);
      pthread_join(th, 0);
      u1 = statusUploads(db);
      qsort(sc.lag, (size_t)sc.n, sizeof(double), cmpd);
      printf(" rate_tps=%.0f puts_per_s=%.2f rate_lag_p50_ms=%.3f rate_lag_p99_ms=%.3f rate_lag_samples=%d",
             total / (end - start), (double)(u1 - u0) / (end - start),
             sc.n ? sc.lag[sc.n / 2] : 0.0, sc.n ? sc.lag[sc.n * 99 / 100] : 0.0, sc.n);
    }
    sqlite3_finalize(sy);
    if (getenv("BENCH_STATUS")) {
      sqlite3_stmt *st = 0;
      check(sqlite3_prepare_v2(db, "SELECT litestream_status()", -1, &st, 0), db,
            "prepare status");
      check(sqlite3_step(st), db, "status");
      printf(" status=%s", sqlite3_column_text(st, 0));
      sqlite3_finalize(st);
    }
  }
  printf("\n");
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return 0;
}
