/*
** entry.c: the extension's entry points and its SQL functions,
** litestream_sync(timeout_ms) and litestream_status(). The VFS itself is in
** shim.c.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include <stdlib.h>

#include "shim.h"
#include "_cgo_export.h"

/* ---------- SQL functions ---------- */

/* A forked child cannot run Go: its commits reach the replica through the
** shared state, but it cannot wait for them. */
#define LS_FORKED_MSG                                                       \
  "a forked child cannot wait for the replica: its commits are replicated " \
  "by the process that replicates this database; call it in that process " \
  "or after exec()"

/* The longest litestream_sync(timeout_ms) waits: a day. */
#define LS_SYNC_MAX_MS 86400000

static void lsSyncFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *zPath = sqlite3_db_filename(db, "main");
  int timeoutMs = 30000;
  long long txid = 0;
  char *zErr = 0;
  if (ls_forked()) {
    sqlite3_result_error(ctx, "litestream_sync: " LS_FORKED_MSG, -1);
    return;
  }
  if (argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
    /* An integer number of milliseconds, at most a day: text, blobs and
    ** fractions were taken as 0, and values past 32 bits wrapped (2^31
    ** waited -2147483648 ms). */
    sqlite3_int64 v = sqlite3_value_int64(argv[0]);
    int t = sqlite3_value_numeric_type(argv[0]);
    if ((t != SQLITE_INTEGER &&
         !(t == SQLITE_FLOAT && sqlite3_value_double(argv[0]) == (double)v)) ||
        v < 0 || v > LS_SYNC_MAX_MS) {
      char *zMsg = sqlite3_mprintf(
          "litestream_sync: timeout_ms must be an integer from 0 to %d, got %s",
          LS_SYNC_MAX_MS, sqlite3_value_text(argv[0]) ? (const char *)sqlite3_value_text(argv[0]) : "?");
      sqlite3_result_error(ctx, zMsg ? zMsg : "litestream_sync: bad timeout_ms", -1);
      sqlite3_free(zMsg);
      return;
    }
    timeoutMs = (int)v;
  }
  if (zPath && !ls_has_walindex(zPath)) {
    /* A connection that has not read yet: reading once builds the
    ** wal-index, which the replicator needs before it can read a
    ** consistent state (see vfs snapshot). */
    sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", 0, 0, 0);
  }
  if (goSync((char *)(zPath ? zPath : ""), timeoutMs, &txid, &zErr) != 0) {
    sqlite3_result_error(ctx, zErr ? zErr : "litestream_sync failed", -1);
    free(zErr);
    return;
  }
  sqlite3_result_int64(ctx, txid);
}

static void lsStatusFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *zPath = sqlite3_db_filename(db, "main");
  char *zJson;
  (void)argc;
  (void)argv;
  if (ls_forked()) {
    sqlite3_result_text(
        ctx, "{\"state\":\"not-replicating\",\"reason\":\"" LS_FORKED_MSG "\"}",
        -1, SQLITE_TRANSIENT);
    return;
  }
  zJson = goStatus((char *)(zPath ? zPath : ""));
  if (zJson == 0) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, zJson, -1, free);
}

static void lsVersionFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, ls_version(), -1, SQLITE_STATIC);
}

static int lsRegisterFunctions(sqlite3 *db) {
  int rc = sqlite3_create_function_v2(db, "litestream_sync", 1, SQLITE_UTF8, 0,
                                      lsSyncFunc, 0, 0, 0);
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "litestream_sync", 0, SQLITE_UTF8, 0,
                                    lsSyncFunc, 0, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "litestream_status", 0, SQLITE_UTF8, 0,
                                    lsStatusFunc, 0, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function_v2(db, "litestream_version", 0,
                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC, 0,
                                    lsVersionFunc, 0, 0, 0);
  }
  return rc;
}

static int lsAutoInit(sqlite3 *db, char **pzErrMsg,
                      const sqlite3_api_routines *pApi) {
  (void)pzErrMsg;
  (void)pApi;
  return lsRegisterFunctions(db);
}

/* ---------- entry points ---------- */

__attribute__((visibility("default"))) int sqlite3_litestreamvfs_init(
    sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  int rc;
  SQLITE_EXTENSION_INIT2(pApi);
  if (sqlite3_libversion_number() < LS_MIN_SQLITE_VERSION) {
    *pzErrMsg = sqlite3_mprintf(
        "litestream: SQLite %s is too old, need 3.31.0 or newer",
        sqlite3_libversion());
    return SQLITE_ERROR;
  }
  rc = ls_register_vfs(pzErrMsg);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_auto_extension((void (*)(void))lsAutoInit);
  if (rc == SQLITE_OK) rc = lsRegisterFunctions(db);
  if (rc == SQLITE_OK) goLoaded(sqlite3_libversion_number());
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

__attribute__((visibility("default"))) int sqlite3_extension_init(
    sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  return sqlite3_litestreamvfs_init(db, pzErrMsg, pApi);
}
