/*
** client.c: a minimal C client for the end-to-end tests.
**
** Usage: client EXTENSION DB_URI
**
** It installs an sqlite3_log callback that prints "LOG <code> <msg>" on
** stderr, loads EXTENSION on a :memory: connection (which it then closes: the
** extension must stay loaded), and opens DB_URI with
**
**   sqlite3_open_v2(DB_URI, &db,
**                   SQLITE_OPEN_READWRITE|SQLITE_OPEN_CREATE|SQLITE_OPEN_URI,
**                   "litestream");
**
** On success it prints "OPENED <main db file name>". It then reads SQL from
** stdin, one line at a time (a line may hold several statements), runs each
** statement, prints result rows with columns separated by "|" (NULL prints as
** an empty string, blobs as X'hex'), and ends every line's output with "OK",
** or with "ERR <code> <msg>" at the first failing statement (the rest of that
** line is skipped; the client carries on with the next line). At end of input
** it closes the database and exits 0.
**
** A line ".open URI" closes the database and opens URI the same way
** (printing "OPENED <file>" then "OK", or "ERR <rc> <msg>"), so one process
** can go through many databases. A line ".exit" calls exit(0) with the
** database still open.
**
** Exit codes: 2 usage or load failure ("LOADFAIL <msg>"), 3 open failure
** ("OPENFAIL <rc> <msg>"), 4 close failure ("CLOSEFAIL <rc> <msg>").
*/
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* logCallback prints every sqlite3_log message on stderr. */
static void logCallback(void *pArg, int iCode, const char *zMsg) {
  (void)pArg;
  fprintf(stderr, "LOG %d %s\n", iCode, zMsg ? zMsg : "");
  fflush(stderr);
}

/* printValue prints column i of the current row of pStmt. */
static void printValue(sqlite3_stmt *pStmt, int i) {
  switch (sqlite3_column_type(pStmt, i)) {
    case SQLITE_NULL:
      break;
    case SQLITE_BLOB: {
      const unsigned char *p = sqlite3_column_blob(pStmt, i);
      int n = sqlite3_column_bytes(pStmt, i);
      int j;
      fputs("X'", stdout);
      for (j = 0; j < n; j++) printf("%02x", p[j]);
      fputs("'", stdout);
      break;
    }
    default: {
      const unsigned char *z = sqlite3_column_text(pStmt, i);
      if (z) fputs((const char *)z, stdout);
      break;
    }
  }
}

/* runLine runs every statement in zSql and prints rows, then OK or ERR. */
static void runLine(sqlite3 *db, const char *zSql) {
  const char *zTail = zSql;
  while (zTail && *zTail) {
    sqlite3_stmt *pStmt = 0;
    const char *zNext = 0;
    int rc = sqlite3_prepare_v2(db, zTail, -1, &pStmt, &zNext);
    if (rc != SQLITE_OK) {
      printf("ERR %d %s\n", rc, sqlite3_errmsg(db));
      sqlite3_finalize(pStmt);
      return;
    }
    if (pStmt == 0) { /* whitespace or comment only */
      zTail = zNext;
      continue;
    }
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
      int nCol = sqlite3_column_count(pStmt);
      int i;
      for (i = 0; i < nCol; i++) {
        if (i > 0) fputs("|", stdout);
        printValue(pStmt, i);
      }
      fputs("\n", stdout);
    }
    if (rc != SQLITE_DONE) {
      printf("ERR %d %s\n", sqlite3_extended_errcode(db), sqlite3_errmsg(db));
      sqlite3_finalize(pStmt);
      return;
    }
    sqlite3_finalize(pStmt);
    zTail = zNext;
  }
  puts("OK");
}

/* reopen closes *pDb and opens zUri through the litestream VFS. */
static void reopen(sqlite3 **pDb, const char *zUri) {
  int rc = sqlite3_close(*pDb);
  if (rc != SQLITE_OK) {
    printf("ERR %d close: %s\n", rc, sqlite3_errmsg(*pDb));
    return;
  }
  *pDb = 0;
  rc = sqlite3_open_v2(zUri, pDb,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                       "litestream");
  if (rc != SQLITE_OK) {
    printf("ERR %d %s\n", rc, *pDb ? sqlite3_errmsg(*pDb) : "out of memory");
    return;
  }
  printf("OPENED %s\nOK\n", sqlite3_db_filename(*pDb, "main"));
}

int main(int argc, char **argv) {
  sqlite3 *pMem = 0;
  sqlite3 *db = 0;
  char *zErr = 0;
  char *zLine = 0;
  size_t nAlloc = 0;
  ssize_t nRead;
  int rc;

  if (argc != 3) {
    fprintf(stderr, "usage: %s EXTENSION DB_URI\n", argv[0]);
    return 2;
  }
  sqlite3_config(SQLITE_CONFIG_LOG, logCallback, (void *)0);

  rc = sqlite3_open(":memory:", &pMem);
  if (rc != SQLITE_OK) {
    printf("LOADFAIL open :memory: %d\n", rc);
    return 2;
  }
  sqlite3_enable_load_extension(pMem, 1);
  rc = sqlite3_load_extension(pMem, argv[1], 0, &zErr);
  if (rc != SQLITE_OK) {
    printf("LOADFAIL %s\n", zErr ? zErr : "unknown error");
    sqlite3_free(zErr);
    sqlite3_close(pMem);
    return 2;
  }
  sqlite3_close(pMem);

  rc = sqlite3_open_v2(argv[2], &db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                       "litestream");
  if (rc != SQLITE_OK) {
    printf("OPENFAIL %d %s\n", rc, db ? sqlite3_errmsg(db) : "out of memory");
    fflush(stdout);
    sqlite3_close(db);
    return 3;
  }
  {
    const char *zFile = sqlite3_db_filename(db, "main");
    printf("OPENED %s\n", zFile ? zFile : "");
    fflush(stdout);
  }

  while ((nRead = getline(&zLine, &nAlloc, stdin)) >= 0) {
    while (nRead > 0 && (zLine[nRead - 1] == '\n' || zLine[nRead - 1] == '\r')) {
      zLine[--nRead] = 0;
    }
    if (strncmp(zLine, ".open ", 6) == 0) {
      reopen(&db, zLine + 6);
    } else if (strcmp(zLine, ".exit") == 0) {
      exit(0); /* without closing the database: atexit handlers run */
    } else {
      runLine(db, zLine);
    }
    fflush(stdout);
  }
  free(zLine);

  rc = sqlite3_close(db);
  if (rc != SQLITE_OK) {
    printf("CLOSEFAIL %d %s\n", rc, sqlite3_errmsg(db));
    fflush(stdout);
    return 4;
  }
  return 0;
}
