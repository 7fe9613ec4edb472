/*
** multi.c: one writer process of the multi-process benchmark
** (tests/bench_multi.sh, docs/performance.md).
**
**   multi MODE SYNC N DB [EXT]
**
** MODE is "plain" (default VFS), "ext" (loads EXT, opens DB with the
** litestream VFS) or "lag" (ext, and every 100th commit is followed by
** SELECT litestream_sync(10000)). Runs N single-row INSERT transactions on
** the existing WAL database DB (table w), concurrently with the other
** writer processes of the run (a busy handler waits for the write lock),
** and prints one line: elapsed=seconds spent in the inserts. In lag mode
** the line also has lag_p50_ms and lag_p99_ms: how long after that commit
** the replica held it, whichever process replicates. (Pausing for syncs
** changes how the writers contend, so throughput is measured without.)
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "multi: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

int main(int argc, char **argv) {
  sqlite3 *db = 0;
  sqlite3_stmt *ins = 0, *sy = 0;
  char sql[64];
  int ext, n, i, nlag = 0;
  double elapsed = 0, *lag;
  if (argc < 5 || (strcmp(argv[1], "plain") != 0 && argc < 6)) {
    fprintf(stderr, "usage: multi plain|ext|lag NORMAL|FULL N DB [EXT]\n");
    return 2;
  }
  ext = strcmp(argv[1], "ext") == 0 || strcmp(argv[1], "lag") == 0;
  n = atoi(argv[3]);
  lag = calloc((size_t)n / 100 + 1, sizeof(double));
  if (ext) {
    sqlite3 *mem = 0;
    char *err = 0;
    sqlite3_open(":memory:", &mem);
    sqlite3_enable_load_extension(mem, 1);
    if (sqlite3_load_extension(mem, argv[5], 0, &err) != SQLITE_OK) {
      fprintf(stderr, "multi: load: %s\n", err);
      return 1;
    }
    sqlite3_close(mem);
  }
  if (sqlite3_open_v2(argv[4], &db, SQLITE_OPEN_READWRITE, ext ? "litestream" : 0) != SQLITE_OK) {
    die(db, "open");
  }
  sqlite3_busy_timeout(db, 60000);
  snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", argv[2]);
  if (sqlite3_exec(db, sql, 0, 0, 0) != SQLITE_OK) die(db, sql);
  if (sqlite3_prepare_v2(db, "INSERT INTO w(v) VALUES (randomblob(100))", -1, &ins, 0) != SQLITE_OK) {
    die(db, "prepare");
  }
  if (strcmp(argv[1], "lag") == 0 &&
      sqlite3_prepare_v2(db, "SELECT litestream_sync(10000)", -1, &sy, 0) != SQLITE_OK) {
    die(db, "prepare sync");
  }
  for (i = 1; i <= n; i++) {
    double t0 = now();
    if (sqlite3_step(ins) != SQLITE_DONE) die(db, "insert");
    sqlite3_reset(ins);
    elapsed += now() - t0;
    if (sy && i % 100 == 0) {
      double t1 = now();
      if (sqlite3_step(sy) != SQLITE_ROW) die(db, "litestream_sync");
      sqlite3_reset(sy);
      lag[nlag++] = (now() - t1) * 1000.0;
    }
  }
  printf("elapsed=%.4f", elapsed);
  if (nlag > 0) {
    qsort(lag, (size_t)nlag, sizeof(double), cmpd);
    printf(" lag_p50_ms=%.3f lag_p99_ms=%.3f", lag[nlag / 2], lag[(nlag * 99) / 100]);
  }
  if (ext) {
    sqlite3_stmt *st = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT json_extract(s, '$.gate_waits'), json_extract(s, '$.gate_wait_ms') "
                           "FROM (SELECT litestream_status() AS s)",
                           -1, &st, 0) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      printf(" gate_waits=%lld gate_wait_ms=%.1f", sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1));
    }
    sqlite3_finalize(st);
  }
  printf("\n");
  sqlite3_finalize(ins);
  sqlite3_finalize(sy);
  sqlite3_close(db);
  free(lag);
  return 0;
}
