/*
** realvfs.c: what the replicator reads through the real (wrapped) VFS,
** never through a plain open(2) from Go: a private read-only connection
** that holds a read transaction during a snapshot, and raw handles on the
** main database file. The unix VFS keeps a closed descriptor open while
** the process holds POSIX locks on the file, so closing these cannot drop
** the application's locks. Also the litestream VFS's methods that only
** pass through to the real VFS.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include <stdlib.h>
#include <string.h>

#include "shim.h"

/* ls_reader_begin opens a private connection on the real VFS and starts a
** read transaction on it. While it is open no checkpointer, in this process
** or another, can copy WAL frames past its read mark into the database
** file, so a snapshot read from the file plus the WAL stays consistent. */
static int lsReaderStarting = 0;

int ls_reader_starting(void) {
  return __atomic_load_n(&lsReaderStarting, __ATOMIC_ACQUIRE);
}

void *ls_reader_begin(const char *zPath, char **pzErr, int *pRc) {
  sqlite3 *db = 0;
  int rc;
  if (pOrigVfs == 0) return 0;
  /* While it starts, this process's connections wait out the locks it
  ** may take for WAL recovery instead of failing (lsShmLockBusy). */
  __atomic_add_fetch(&lsReaderStarting, 1, __ATOMIC_SEQ_CST);
  rc = sqlite3_open_v2(zPath, &db, SQLITE_OPEN_READONLY, pOrigVfs->zName);
  if (rc == SQLITE_OK) {
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
    sqlite3_busy_timeout(db, 1000);
    rc = sqlite3_exec(db, "BEGIN; SELECT count(*) FROM sqlite_schema;", 0, 0, 0);
  }
  __atomic_sub_fetch(&lsReaderStarting, 1, __ATOMIC_SEQ_CST);
  *pRc = rc;
  if (rc != SQLITE_OK) {
    *pzErr = strdup(db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return 0;
  }
  return db;
}

void ls_reader_end(void *p) {
  sqlite3 *db = (sqlite3 *)p;
  sqlite3_exec(db, "COMMIT", 0, 0, 0);
  sqlite3_close(db);
}

/* The snapshot reader opens the database with the real VFS, never with a
** plain open(2): the unix VFS keeps a closed descriptor open while the
** process holds POSIX locks on the file, so closing it cannot drop them. */
void *ls_dbfile_open(const char *zPath, int *pRc) {
  sqlite3_file *pFile;
  int outFlags = 0;
  int rc;
  if (pOrigVfs == 0) {
    *pRc = SQLITE_MISUSE;
    return 0;
  }
  /* The VFS keeps the name pointer for the life of the handle, and reads
  ** URI parameters after it: copy it behind the file, with the zero bytes
  ** that end an empty parameter list. Freed with the handle. */
  {
    size_t sz = (size_t)pOrigVfs->szOsFile;
    size_t n = strlen(zPath);
    pFile = calloc(1, sz + n + 4);
    if (pFile == 0) {
      *pRc = SQLITE_NOMEM;
      return 0;
    }
    memcpy((char *)pFile + sz, zPath, n);
    zPath = (char *)pFile + sz;
  }
  rc = pOrigVfs->xOpen(pOrigVfs, zPath, pFile,
                       SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB, &outFlags);
  if (rc != SQLITE_OK) {
    if (pFile->pMethods) pFile->pMethods->xClose(pFile);
    free(pFile);
    *pRc = rc;
    return 0;
  }
  *pRc = SQLITE_OK;
  return pFile;
}

int ls_dbfile_read(void *p, void *buf, int n, int64_t off) {
  sqlite3_file *pFile = (sqlite3_file *)p;
  return pFile->pMethods->xRead(pFile, buf, n, off);
}

int ls_dbfile_size(void *p, int64_t *pSize) {
  sqlite3_file *pFile = (sqlite3_file *)p;
  sqlite3_int64 sz = 0;
  int rc = pFile->pMethods->xFileSize(pFile, &sz);
  *pSize = sz;
  return rc;
}

void ls_dbfile_close(void *p) {
  sqlite3_file *pFile = (sqlite3_file *)p;
  if (pFile->pMethods) pFile->pMethods->xClose(pFile);
  free(pFile);
}

/* ---------- VFS methods that pass through ---------- */

static int lsAccess(sqlite3_vfs *pVfs, const char *zName, int flags,
                    int *pResOut) {
  (void)pVfs;
  return pOrigVfs->xAccess(pOrigVfs, zName, flags, pResOut);
}
static int lsFullPathname(sqlite3_vfs *pVfs, const char *zName, int nOut,
                          char *zOut) {
  (void)pVfs;
  return pOrigVfs->xFullPathname(pOrigVfs, zName, nOut, zOut);
}
static void *lsDlOpen(sqlite3_vfs *pVfs, const char *zPath) {
  (void)pVfs;
  return pOrigVfs->xDlOpen(pOrigVfs, zPath);
}
static void lsDlError(sqlite3_vfs *pVfs, int nByte, char *zErrMsg) {
  (void)pVfs;
  pOrigVfs->xDlError(pOrigVfs, nByte, zErrMsg);
}
static void (*lsDlSym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void) {
  (void)pVfs;
  return pOrigVfs->xDlSym(pOrigVfs, p, zSym);
}
static void lsDlClose(sqlite3_vfs *pVfs, void *pHandle) {
  (void)pVfs;
  pOrigVfs->xDlClose(pOrigVfs, pHandle);
}
static int lsRandomness(sqlite3_vfs *pVfs, int nByte, char *zBufOut) {
  (void)pVfs;
  return pOrigVfs->xRandomness(pOrigVfs, nByte, zBufOut);
}
static int lsSleep(sqlite3_vfs *pVfs, int nMicro) {
  (void)pVfs;
  return pOrigVfs->xSleep(pOrigVfs, nMicro);
}
static int lsCurrentTime(sqlite3_vfs *pVfs, double *pTimeOut) {
  (void)pVfs;
  return pOrigVfs->xCurrentTime(pOrigVfs, pTimeOut);
}
static int lsGetLastError(sqlite3_vfs *pVfs, int a, char *b) {
  (void)pVfs;
  return pOrigVfs->xGetLastError(pOrigVfs, a, b);
}
static int lsCurrentTimeInt64(sqlite3_vfs *pVfs, sqlite3_int64 *p) {
  (void)pVfs;
  return pOrigVfs->xCurrentTimeInt64(pOrigVfs, p);
}
static int lsSetSystemCall(sqlite3_vfs *pVfs, const char *zName,
                           sqlite3_syscall_ptr pCall) {
  (void)pVfs;
  return pOrigVfs->xSetSystemCall(pOrigVfs, zName, pCall);
}
static sqlite3_syscall_ptr lsGetSystemCall(sqlite3_vfs *pVfs,
                                           const char *zName) {
  (void)pVfs;
  return pOrigVfs->xGetSystemCall(pOrigVfs, zName);
}
static const char *lsNextSystemCall(sqlite3_vfs *pVfs, const char *zName) {
  (void)pVfs;
  return pOrigVfs->xNextSystemCall(pOrigVfs, zName);
}

void ls_real_vfs_methods(sqlite3_vfs *p) {
  p->xAccess = lsAccess;
  p->xFullPathname = lsFullPathname;
  p->xDlOpen = lsDlOpen;
  p->xDlError = lsDlError;
  p->xDlSym = lsDlSym;
  p->xDlClose = lsDlClose;
  p->xRandomness = lsRandomness;
  p->xSleep = lsSleep;
  p->xCurrentTime = lsCurrentTime;
  p->xGetLastError = lsGetLastError;
  if (p->iVersion >= 2) p->xCurrentTimeInt64 = lsCurrentTimeInt64;
  if (p->iVersion >= 3) {
    p->xSetSystemCall = lsSetSystemCall;
    p->xGetSystemCall = lsGetSystemCall;
    p->xNextSystemCall = lsNextSystemCall;
  }
}
