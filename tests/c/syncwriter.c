/*
** syncwriter.c: the writer the synchronous-replication kill loop
** (tests/syncrep_test.go) and benchmark (tests/bench_sync.sh) run.
**
** Usage: syncwriter EXTENSION DB_URI THREADS COMMITS [SECONDS [TIDBASE]]
**
** Loads EXTENSION ("-": none, plain SQLite with DB_URI a file name) on a
** :memory: connection and starts THREADS threads, each with its own
** connection to DB_URI (vfs=litestream unless plain). Thread i appends rows
** to table s(tid, k) with tid TIDBASE+i (default 0) in autocommit INSERTs, k from 1 up to COMMITS or until
** SECONDS pass (default 60), and after each INSERT returns SQLITE_OK
** writes "ACK <tid> <k> <latency ns>" to stdout in one write(2): the
** COMMIT returned, so with replicate=sync the row is in the replica. The
** first line is "START" once every connection is open and the table
** exists; the last is "DONE <commits> <seconds>" unless killed. A failed
** INSERT prints "ERR <tid> <rc> <msg>" and that thread stops.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *zUri;
static int plain, nCommits, nDone, tidBase;
static double seconds = 60;
static pthread_barrier_t ready;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char *z) {
  size_t n = strlen(z);
  while (n > 0) {
    ssize_t w = write(1, z, n);
    if (w <= 0) return;
    z += w;
    n -= (size_t)w;
  }
}

static sqlite3 *openDb(void) {
  sqlite3 *db = 0;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI;
  if (sqlite3_open_v2(zUri, &db, flags, plain ? 0 : "litestream") != SQLITE_OK) {
    fprintf(stderr, "OPENFAIL %s\n", db ? sqlite3_errmsg(db) : "out of memory");
    exit(3);
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_exec(db, "PRAGMA synchronous=NORMAL", 0, 0, 0);
  return db;
}

static void *run(void *arg) {
  int tid = tidBase + (int)(long)arg, k;
  sqlite3 *db = openDb();
  sqlite3_stmt *st = 0;
  double deadline;
  char line[160];
  if (sqlite3_prepare_v2(db, "INSERT INTO s(tid, k, pad) VALUES(?1, ?2, randomblob(100))",
                         -1, &st, 0) != SQLITE_OK) {
    fprintf(stderr, "PREPARE %s\n", sqlite3_errmsg(db));
    exit(4);
  }
  pthread_barrier_wait(&ready);
  deadline = now() + seconds;
  for (k = 1; k <= nCommits && now() < deadline; k++) {
    struct timespec t0, t1;
    int rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3_bind_int(st, 1, tid);
    sqlite3_bind_int(st, 2, k);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != SQLITE_DONE) {
      snprintf(line, sizeof line, "ERR %d %d %s\n", tid, rc, sqlite3_errmsg(db));
      say(line);
      break;
    }
    snprintf(line, sizeof line, "ACK %d %d %lld\n", tid, k,
             (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    say(line);
    __atomic_add_fetch(&nDone, 1, __ATOMIC_RELAXED);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}

int main(int argc, char **argv) {
  sqlite3 *db;
  pthread_t th[64];
  int n, i;
  double t0;
  char line[80];
  if (argc < 5 || (n = atoi(argv[3])) < 1 || n > 64 || (nCommits = atoi(argv[4])) < 1) {
    fprintf(stderr, "usage: syncwriter EXTENSION DB_URI THREADS(1-64) COMMITS [SECONDS [TIDBASE]]\n");
    return 2;
  }
  if (argc > 5) seconds = atof(argv[5]);
  if (argc > 6) tidBase = atoi(argv[6]);
  zUri = argv[2];
  plain = strcmp(argv[1], "-") == 0;
  if (!plain) {
    char *zErr = 0;
    sqlite3_open(":memory:", &db);
    sqlite3_enable_load_extension(db, 1);
    if (sqlite3_load_extension(db, argv[1], 0, &zErr) != SQLITE_OK) {
      fprintf(stderr, "LOADFAIL %s\n", zErr ? zErr : "");
      return 2;
    }
    sqlite3_close(db);
  }
  db = openDb();
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                   "CREATE TABLE IF NOT EXISTS s(tid INTEGER, k INTEGER, pad BLOB, PRIMARY KEY(tid, k));",
                   0, 0, 0) != SQLITE_OK) {
    fprintf(stderr, "SETUP %s\n", sqlite3_errmsg(db));
    return 3;
  }
  pthread_barrier_init(&ready, 0, (unsigned)n + 1);
  for (i = 0; i < n; i++) pthread_create(&th[i], 0, run, (void *)(long)i);
  pthread_barrier_wait(&ready);
  say("START\n");
  t0 = now();
  for (i = 0; i < n; i++) pthread_join(th[i], 0);
  snprintf(line, sizeof line, "DONE %d %.3f\n", nDone, now() - t0);
  say(line);
  sqlite3_close(db);
  return 0;
}
