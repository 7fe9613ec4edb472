/*
** shim.c: the litestream VFS, a thin pass-through over the default VFS.
**
** What it watches (see ../shared/DESIGN.md):
**   - xShmLock on the main database: the WAL_WRITE lock (slot 0) released
**     after WAL writes marks a commit. The shim "announces" it by bumping a
**     counter and signalling a condition variable before the real unlock,
**     so Go (which reads the WAL file itself, off-thread) knows the frames
**     are in place. No Go code runs here.
**   - Writes at offset 0 of the WAL (a restart), WAL truncation and deletion:
**     these would destroy committed frames, so they wait ("the gate") until
**     Go has acknowledged every announced commit. Go is normally caught up,
**     so the gate costs a mutex; if Go is stuck, the gate gives up after a
**     timeout and counts it, and Go takes a fresh snapshot.
**   - Writes to the main database file (checkpoints) wait while Go reads a
**     snapshot, so the database file and WAL stay consistent under it.
**   - Main-db writes with no WAL open (rollback journal) and WAL writes
**     without the WAL_WRITE lock (locking_mode=EXCLUSIVE) are counted so Go
**     can say the database is not being replicated.
**
** Files other than the main database and its WAL are opened with the real
** VFS directly (cksumvfs's pattern), so they cost nothing. The gates and
** the per-database state they guard live in gates.c.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "shim.h"
#include "shimdb.h"
#include "_cgo_export.h"

#define LS_VFS_NAME "litestream"

enum { LS_MAIN = 1, LS_WAL = 2 };

/* See lsShmLockWatched: frames of WAL growth between two checkpoints of
** this process that make another process's owner urgent (SQLite's default
** auto-checkpoint size). */
#define LS_CKPT_URGENT_FRAMES 1000

#define ORIGFILE(p) ((sqlite3_file *)(((lsFile *)(p)) + 1))

sqlite3_vfs *pOrigVfs = 0; /* the VFS wrapped; shared with realvfs.c */
static sqlite3_vfs lsVfs;
pthread_mutex_t lsGlobalMu = PTHREAD_MUTEX_INITIALIZER;
volatile int lsForked = 0;
static int lsShmLockBusy(sqlite3_file *o, int ofst, int n, int flags);

/* ---------- io methods ---------- */

/* lsClosed counts a main-db handle closed. When it was the process's last,
** the database file is stat'ed: with no connection open here, another
** process may change it unseen (a writer without the extension whose
** close checkpoints and deletes the WAL), and Go compares the file with
** this when the process opens the database again. */
static void lsClosed(lsDb *d) {
  struct stat st;
  int ok = stat(d->zPath, &st) == 0;
  pthread_mutex_lock(&d->mu);
  if (--d->ev.nConn == 0) {
    d->ev.closes++;
    d->ev.closeIno = ok ? (uint64_t)st.st_ino : 0;
    d->ev.closeSize = ok ? (uint64_t)st.st_size : 0;
    d->ev.closeMtimeNs = ok ? (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec : 0;
    d->ev.closeCtimeNs = ok ? (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec : 0;
  }
  lsEventLocked(d);
  pthread_mutex_unlock(&d->mu);
}

static int lsClose(sqlite3_file *pFile) {
  lsFile *p = (lsFile *)pFile;
  int rc = ORIGFILE(pFile)->pMethods->xClose(ORIGFILE(pFile));
  if (p->pDb && !lsForked) {
    if (p->kind == LS_WAL) {
      lsCount(p->pDb, &p->pDb->ev.nWalOpen, -1);
    } else {
      lsClosed(p->pDb);
    }
  }
  return rc;
}

static int lsRead(sqlite3_file *pFile, void *zBuf, int iAmt,
                  sqlite3_int64 iOfst) {
  return ORIGFILE(pFile)->pMethods->xRead(ORIGFILE(pFile), zBuf, iAmt, iOfst);
}

/* lsWriteWatched takes the writes that need more than a flag: a WAL
** restart, WAL writes without the WAL_WRITE lock, main-db writes. */
__attribute__((noinline)) static int lsWriteWatched(sqlite3_file *pFile,
                                                    const void *zBuf, int iAmt,
                                                    sqlite3_int64 iOfst) {
  lsFile *p = (lsFile *)pFile;
  sqlite3_file *o = ORIGFILE(pFile);
  int rc;
  if (lsForked) {
    if (p->kind == LS_WAL) {
      if (iOfst == 0) lsGate(p->pDb);
      p->pDb->walDirty = 1; /* published at the WAL_WRITE unlock */
    }
    return o->pMethods->xWrite(o, zBuf, iAmt, iOfst);
  }
  if (p->kind == LS_WAL) {
    lsDb *d = p->pDb;
    if (iOfst == 0) lsGate(d);
    if (!d->walWriteHeld) {
      pthread_mutex_lock(&d->mu);
      d->ev.exclusiveWrites++;
      lsEventLocked(d);
      pthread_mutex_unlock(&d->mu);
    }
    d->walDirty = 1;
    rc = o->pMethods->xWrite(o, zBuf, iAmt, iOfst);
    if (iOfst == 0) lsGateDone(d);
    return rc;
  }
  lsDbWriteBegin(p->pDb);
  rc = o->pMethods->xWrite(o, zBuf, iAmt, iOfst);
  lsDbWriteEnd(p->pDb);
  return rc;
}

static int lsWrite(sqlite3_file *pFile, const void *zBuf, int iAmt,
                   sqlite3_int64 iOfst) {
  lsFile *p = (lsFile *)pFile;
  if (p->kind == LS_WAL && iOfst != 0 && p->pDb->walWriteHeld && !lsForked) {
    /* A frame of the transaction being written; its commit announces it. */
    sqlite3_file *o = ORIGFILE(pFile);
    p->pDb->walDirty = 1;
    return o->pMethods->xWrite(o, zBuf, iAmt, iOfst);
  }
  return lsWriteWatched(pFile, zBuf, iAmt, iOfst);
}

static int lsTruncate(sqlite3_file *pFile, sqlite3_int64 size) {
  lsFile *p = (lsFile *)pFile;
  sqlite3_file *o = ORIGFILE(pFile);
  int rc;
  if (lsForked) {
    if (p->kind == LS_WAL) lsGate(p->pDb);
    return o->pMethods->xTruncate(o, size);
  }
  if (p->kind == LS_WAL) {
    lsGate(p->pDb);
    rc = o->pMethods->xTruncate(o, size);
    lsGateDone(p->pDb);
    return rc;
  }
  lsDbWriteBegin(p->pDb);
  rc = o->pMethods->xTruncate(o, size);
  lsDbWriteEnd(p->pDb);
  return rc;
}

static int lsSync(sqlite3_file *pFile, int flags) {
  return ORIGFILE(pFile)->pMethods->xSync(ORIGFILE(pFile), flags);
}
static int lsFileSize(sqlite3_file *pFile, sqlite3_int64 *pSize) {
  return ORIGFILE(pFile)->pMethods->xFileSize(ORIGFILE(pFile), pSize);
}
static int lsLock(sqlite3_file *pFile, int eLock) {
  return ORIGFILE(pFile)->pMethods->xLock(ORIGFILE(pFile), eLock);
}
static int lsUnlock(sqlite3_file *pFile, int eLock) {
  return ORIGFILE(pFile)->pMethods->xUnlock(ORIGFILE(pFile), eLock);
}
static int lsCheckReservedLock(sqlite3_file *pFile, int *pResOut) {
  return ORIGFILE(pFile)->pMethods->xCheckReservedLock(ORIGFILE(pFile),
                                                         pResOut);
}
/* lsPragma answers PRAGMA litestream_* (az[1] the name, az[2] its value
** or NULL) through Go: the result, or the error, goes to az[0] as SQLite
** expects of SQLITE_FCNTL_PRAGMA. A forked child cannot run Go. */
static int lsPragma(lsFile *p, char **az) {
  char *zOut = 0;
  int rc;
  if (lsForked) {
    az[0] = sqlite3_mprintf("PRAGMA %s: a forked child cannot see the "
                            "replica: ask the process that replicates", az[1]);
    return SQLITE_ERROR;
  }
  rc = goPragma(p->pDb->zPath, az[1], az[2] != 0, &zOut);
  az[0] = sqlite3_mprintf("%s", zOut ? zOut : "litestream: out of memory");
  free(zOut);
  return rc == 0 ? SQLITE_OK : SQLITE_ERROR;
}

static int lsFileControl(sqlite3_file *pFile, int op, void *pArg) {
  sqlite3_file *o = ORIGFILE(pFile);
  int rc;
  if (op == SQLITE_FCNTL_PRAGMA && ((lsFile *)pFile)->kind == LS_MAIN) {
    char **az = (char **)pArg;
    if (az[1] && sqlite3_strnicmp(az[1], "litestream_", 11) == 0) {
      return lsPragma((lsFile *)pFile, az);
    }
  }
  if (op != SQLITE_FCNTL_VFSNAME) return o->pMethods->xFileControl(o, op, pArg);
  rc = o->pMethods->xFileControl(o, op, pArg);
  if (rc == SQLITE_OK && pArg) {
    *(char **)pArg = sqlite3_mprintf("litestream/%z", *(char **)pArg);
  }
  return rc;
}
static int lsSectorSize(sqlite3_file *pFile) {
  return ORIGFILE(pFile)->pMethods->xSectorSize(ORIGFILE(pFile));
}
static int lsDeviceCharacteristics(sqlite3_file *pFile) {
  return ORIGFILE(pFile)->pMethods->xDeviceCharacteristics(ORIGFILE(pFile));
}
static int lsShmMap(sqlite3_file *pFile, int iPg, int pgsz, int bExtend,
                    void volatile **pp) {
  lsFile *p = (lsFile *)pFile;
  int rc = ORIGFILE(pFile)->pMethods->xShmMap(ORIGFILE(pFile), iPg, pgsz,
                                              bExtend, pp);
  if (rc == SQLITE_OK && iPg == 0 && *pp && p->pShm0 == 0) {
    p->pShm0 = *pp;
    pthread_mutex_lock(&p->pDb->mu);
    p->pDb->pShm0 = *pp;
    p->pDb->nShm0++;
    pthread_mutex_unlock(&p->pDb->mu);
  }
  return rc;
}

/* lsShmLockBusy handles a lock request of this process's own connections
** that found a lock busy while the replicator's private snapshot reader
** starts its read transaction (ls_reader_begin): that reader may run WAL
** recovery, holding WAL_WRITE and the read marks for a moment, and an
** application that never sees lock conflicts with plain SQLite (one
** connection, no busy handler) must not get SQLITE_BUSY from it. It tries
** again every 100 us while the reader starts, 2 s at most; otherwise, and
** after that, SQLite gets SQLITE_BUSY as usual. */
__attribute__((noinline)) static int lsShmLockBusy(sqlite3_file *o, int ofst,
                                                   int n, int flags) {
  int rc = SQLITE_BUSY, i;
  if ((flags & SQLITE_SHM_LOCK) == 0) return rc;
  for (i = 0; i < 20000 && ls_reader_starting(); i++) {
    struct timespec ts = {0, 100000};
    nanosleep(&ts, 0);
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc != SQLITE_BUSY) break;
  }
  return rc;
}

/* lsShmLockWatched takes the xShmLock calls lsShmLock does not pass
** straight through. Out of line, so the common path stays short. */
__attribute__((noinline)) static int lsShmLockWatched(sqlite3_file *pFile,
                                                      int ofst, int n,
                                                      int flags) {
  lsFile *p = (lsFile *)pFile;
  sqlite3_file *o = ORIGFILE(pFile);
  lsDb *d = p->pDb;
  int rc;
  if (!lsForked && ofst == 1 && flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)) {
    /* CKPT taken: a checkpoint starts, and a WAL reset (which waits at the
    ** gate) may follow it. Wake the replicator from its coalescing pause,
    ** here or in the process that replicates, so it catches up while the
    ** checkpoint copies pages and the reset rarely waits. Another process's
    ** owner is made urgent once per LS_CKPT_URGENT_FRAMES of WAL: with
    ** several writers a WAL past the auto-checkpoint size that readers keep
    ** from being reset is checkpointed at nearly every commit, and ending
    ** the owner's pause at each made it step every few milliseconds. */
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc == SQLITE_BUSY) rc = lsShmLockBusy(o, ofst, n, flags);
    if (rc == SQLITE_OK) {
      uint32_t mx = 0, s1 = 0, s2 = 0;
      int urgent = 1;
      if (p->pShm0) lsReadHdr(p->pShm0, &mx, &s1, &s2);
      pthread_mutex_lock(&d->mu);
      lsUrgentLocked(d);
      if (s1 == d->ckptSalt1 && mx < d->ckptMx + LS_CKPT_URGENT_FRAMES) {
        urgent = 0;
      } else {
        d->ckptSalt1 = s1;
        d->ckptMx = mx;
      }
      pthread_mutex_unlock(&d->mu);
      if (d->pShared && !lsOwnsGates(d)) ls_shared_signal(d->pShared, urgent);
    }
    return rc;
  }
  if (ofst == 4 && n == SQLITE_SHM_NLOCK - 4 &&
      flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)) {
    /* READ_LOCK(1..4) taken exclusively at once: a writer or checkpointer
    ** is about to restart the WAL (walRestartHdr resets the wal-index
    ** header). One read mark taken exclusively (n == 1) is a reader
    ** moving it, on nearly every transaction: not a restart. */
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc == SQLITE_BUSY) rc = lsShmLockBusy(o, ofst, n, flags);
    if (rc == SQLITE_OK) lsRecordEnd(p->pDb, p->pShm0, 0);
    return rc;
  }
  /* Taking WAL_WRITE is lsShmLock's; what is left to watch is its release. */
  if (ofst != 0 || flags != (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE)) {
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc == SQLITE_BUSY) rc = lsShmLockBusy(o, ofst, n, flags);
    return rc;
  }
  if (lsForked) {
    /* A forked child's commits: the parent's replicator (or whichever
    ** process owns replication) is told through the shared state, with
    ** the wal-index header as any process that does not replicate
    ** publishes it (else they count as a writer without the extension). */
    int owed = 0;
    if (d->pShared) {
      if (d->walDirty) {
        uint32_t mx = 0, s1 = 0, s2 = 0;
        if (p->pShm0) lsReadHdr(p->pShm0, &mx, &s1, &s2);
        d->walDirty = 0;
        if (mx > 0) ls_shared_commit(d->pShared, mx, s1, s2);
        owed = p->syncMode;
      }
      ls_shared_signal(d->pShared, 0);
    }
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (owed && rc == SQLITE_OK) lsSyncCommit(p); /* through the shared state, as any process */
    return rc;
  }
  /* Commit boundary: announce before the real unlock so no other writer
  ** can restart the WAL between the two. */
  int owed = 0;
  if (d->walDirty) {
    /* The writer has already published the commit in the wal-index
    ** header (fileformat2.html#walindexformat): mxFrame at byte 16, the
    ** salts as raw WAL-header bytes at 32. Go trusts frames up to
    ** mxFrame even where their checksums do not chain: SQLite leaves
    ** such frames behind after ROLLBACK TO in a transaction that
    ** spilled, and its own readers go by the wal-index. */
    uint32_t mxFrame = 0, salt1 = 0, salt2 = 0;
    if (p->pShm0) lsReadHdr(p->pShm0, &mxFrame, &salt1, &salt2);
    pthread_mutex_lock(&d->mu);
    d->walDirty = 0;
    owed = p->syncMode;
    d->ev.mxFrame = mxFrame;
    d->ev.salt1 = salt1;
    d->ev.salt2 = salt2;
    d->ev.announced++;
    if (d->ev.acked + 1 == d->ev.announced && mxFrame > 0 &&
        mxFrame <= d->ackFrames && salt1 == d->ackSalt1 &&
        salt2 == d->ackSalt2) {
      /* Go read this commit's frames already (it reads up to the live
      ** wal-index, which SQLite updates before this unlock): it is
      ** captured, and waking Go for it would be a wasted step. */
      d->ev.acked = d->ev.announced;
    } else {
      lsEventLocked(d);
    }
    pthread_mutex_unlock(&d->mu);
    /* Another process replicates: tell it, and what the wal-index says
    ** is committed, so it need not verify the checksum chain of these
    ** frames (it may have no wal-index of its own). */
    if (d->pShared && !lsOwnsGates(d)) {
      if (mxFrame > 0) ls_shared_commit(d->pShared, mxFrame, salt1, salt2);
      ls_shared_signal(d->pShared, 0);
    }
  }
  d->walWriteHeld = 0;
  rc = o->pMethods->xShmLock(o, ofst, n, flags);
  /* replicate=sync: the write lock is released, so other connections and
  ** processes write meanwhile; this COMMIT returns once the replica holds
  ** it (syncwait.c). Here, not later: SQLite keeps the transaction's read
  ** mark while another statement of the connection reads, and COMMIT
  ** returns without releasing it. */
  if (owed && rc == SQLITE_OK) lsSyncCommit(p);
  return rc;
}

/* SQLite makes about six xShmLock calls per transaction, most of them
** readers taking and dropping a read mark: those pass straight through.
** Only WAL_WRITE (0), CKPT (1) and all of READ_LOCK(1..4) at once (a WAL
** restart) are watched. */
static int lsShmLock(sqlite3_file *pFile, int ofst, int n, int flags) {
  sqlite3_file *o = ORIGFILE(pFile);
  lsFile *p = (lsFile *)pFile;
  if (ofst > 1 && n != SQLITE_SHM_NLOCK - 4) {
    int rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc == SQLITE_BUSY) rc = lsShmLockBusy(o, ofst, n, flags);
    return rc;
  }
  if (ofst == 0 && flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) &&
      !lsForked) { /* a write transaction starts */
    int rc;
    if (p->syncBlock && p->pDb->syncMark && lsSyncRefuse(p)) return SQLITE_BUSY;
    rc = o->pMethods->xShmLock(o, ofst, n, flags);
    if (rc == SQLITE_BUSY) rc = lsShmLockBusy(o, ofst, n, flags);
    if (rc == SQLITE_OK) ((lsFile *)pFile)->pDb->walWriteHeld = 1;
    return rc;
  }
  return lsShmLockWatched(pFile, ofst, n, flags);
}

static void lsShmBarrier(sqlite3_file *pFile) {
  ORIGFILE(pFile)->pMethods->xShmBarrier(ORIGFILE(pFile));
}
static int lsShmUnmap(sqlite3_file *pFile, int deleteFlag) {
  lsFile *p = (lsFile *)pFile;
  if (p->pShm0) {
    lsRecordEnd(p->pDb, p->pShm0, 1); /* a close may checkpoint and delete the WAL next */
    /* Forget the mapping before the real unmap can remove it. */
    pthread_mutex_lock(&p->pDb->mu);
    if (--p->pDb->nShm0 == 0) p->pDb->pShm0 = 0;
    pthread_mutex_unlock(&p->pDb->mu);
  }
  p->pShm0 = 0;
  return ORIGFILE(pFile)->pMethods->xShmUnmap(ORIGFILE(pFile), deleteFlag);
}
static int lsFetch(sqlite3_file *pFile, sqlite3_int64 iOfst, int iAmt,
                   void **pp) {
  sqlite3_file *o = ORIGFILE(pFile);
  if (o->pMethods->iVersion < 3) {
    *pp = 0;
    return SQLITE_OK;
  }
  return o->pMethods->xFetch(o, iOfst, iAmt, pp);
}
static int lsUnfetch(sqlite3_file *pFile, sqlite3_int64 iOfst, void *pPage) {
  sqlite3_file *o = ORIGFILE(pFile);
  if (o->pMethods->iVersion < 3) return SQLITE_OK;
  return o->pMethods->xUnfetch(o, iOfst, pPage);
}

static const sqlite3_io_methods lsIoMethods = {
    3, /* iVersion */
    lsClose, lsRead, lsWrite, lsTruncate, lsSync, lsFileSize, lsLock, lsUnlock,
    lsCheckReservedLock, lsFileControl, lsSectorSize, lsDeviceCharacteristics,
    lsShmMap, lsShmLock, lsShmBarrier, lsShmUnmap, lsFetch, lsUnfetch};

/* ---------- vfs methods ---------- */

/* lsParams joins the URI parameters of a main-db filename as
** "key\x1fvalue\x1e" records for Go. Returns a sqlite3_malloc'd string. */
static char *lsParams(const char *zName) {
  sqlite3_str *s = sqlite3_str_new(0);
  int i;
  for (i = 0;; i++) {
    const char *zKey = sqlite3_uri_key(zName, i);
    const char *zVal;
    if (zKey == 0) break;
    zVal = sqlite3_uri_parameter(zName, zKey);
    sqlite3_str_appendf(s, "%s\x1f%s\x1e", zKey, zVal ? zVal : "");
  }
  return sqlite3_str_finish(s);
}

/* lsGoOpen asks Go to check (check set) or start replicating the database
** zName; a refusal is logged and is SQLITE_CANTOPEN. aSync gets the
** connection's replicate=sync policy: enabled, timeout (ms), block. */
static int lsGoOpen(lsDb *d, const char *zName, int check, int *aSync) {
  char *zParams = lsParams(zName);
  char *zErr = 0;
  int rc;
  /* sqlite3_str_finish returns NULL for an empty string: no parameters. */
  rc = goDBOpen(d, (char *)zName, zParams ? zParams : (char *)"", check, aSync,
                &zErr);
  sqlite3_free(zParams);
  if (rc == SQLITE_OK) return SQLITE_OK;
  sqlite3_log(SQLITE_CANTOPEN, "litestream: %s: %s", zName,
              zErr ? zErr : "cannot open");
  free(zErr);
  return SQLITE_CANTOPEN;
}

static int lsOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile,
                  int flags, int *pOutFlags) {
  lsFile *p = (lsFile *)pFile;
  lsDb *d = 0;
  int rc, aSync[3] = {0, 0, 0};
  (void)pVfs;
  if (zName == 0 || (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) == 0) {
    return pOrigVfs->xOpen(pOrigVfs, zName, pFile, flags, pOutFlags);
  }
  if (lsForked) {
    /* A forked child cannot run Go: only databases the parent opened are
    ** wrapped, so their commits and WAL resets reach the shared state. */
    if (flags & SQLITE_OPEN_MAIN_DB) {
      pthread_mutex_lock(&lsGlobalMu);
      d = lsDbFind(zName, strlen(zName));
      pthread_mutex_unlock(&lsGlobalMu);
    } else {
      d = lsDbForWal(zName);
    }
    if (d == 0 || d->pShared == 0) {
      return pOrigVfs->xOpen(pOrigVfs, zName, pFile, flags, pOutFlags);
    }
  } else if (flags & SQLITE_OPEN_MAIN_DB) {
    d = lsDbGet(zName);
    if (d == 0) return SQLITE_NOMEM;
    /* Parameters first (nothing is created by a bad one), then the real
    ** open, and only once it succeeded does replication start: a database
    ** that cannot be opened leaves no state directory or lock behind. */
    rc = lsGoOpen(d, zName, 1, aSync);
    if (rc != SQLITE_OK) return rc;
  } else {
    d = lsDbForWal(zName);
    if (d == 0) return pOrigVfs->xOpen(pOrigVfs, zName, pFile, flags, pOutFlags);
  }
  memset(p, 0, sizeof(*p));
  rc = pOrigVfs->xOpen(pOrigVfs, zName, ORIGFILE(pFile), flags, pOutFlags);
  if (rc == SQLITE_OK && !lsForked && (flags & SQLITE_OPEN_MAIN_DB)) {
    rc = lsGoOpen(d, zName, 0, aSync);
  }
  if (rc != SQLITE_OK) {
    if (ORIGFILE(pFile)->pMethods) {
      ORIGFILE(pFile)->pMethods->xClose(ORIGFILE(pFile));
    }
    return rc;
  }
  p->kind = (flags & SQLITE_OPEN_MAIN_DB) ? LS_MAIN : LS_WAL;
  p->pDb = d;
  if (lsForked && (flags & SQLITE_OPEN_MAIN_DB)) {
    /* Go cannot check this URI here: the parent's replicate=sync policy,
    ** unless the URI says replicate=async. */
    const char *z = sqlite3_uri_parameter(zName, "replicate");
    pthread_mutex_lock(&d->mu);
    memcpy(aSync, d->syncPolicy, sizeof(aSync));
    pthread_mutex_unlock(&d->mu);
    if (z && strcmp(z, "async") == 0) aSync[0] = 0;
  } else if (aSync[0]) {
    pthread_mutex_lock(&d->mu);
    memcpy(d->syncPolicy, aSync, sizeof(aSync));
    pthread_mutex_unlock(&d->mu);
  }
  p->syncMode = aSync[0];
  p->syncTimeoutMs = aSync[1];
  p->syncBlock = aSync[2];
  p->base.pMethods = &lsIoMethods;
  if (!lsForked) lsCount(d, p->kind == LS_WAL ? &d->ev.nWalOpen : &d->ev.nConn, 1);
  return SQLITE_OK;
}

static int lsDelete(sqlite3_vfs *pVfs, const char *zName, int syncDir) {
  (void)pVfs;
  lsDb *d = zName ? lsDbForWal(zName) : 0;
  int rc;
  if (d) lsGate(d);
  rc = pOrigVfs->xDelete(pOrigVfs, zName, syncDir);
  if (d && !lsForked) lsGateDone(d);
  return rc;
}
/* ---------- process hooks ---------- */

/* After fork() the child's Go runtime is unusable: the shim only passes
** through, but for what it tells the shared state. Another thread of the
** parent may have held a mutex at the fork: the child's copies start over. */
static void lsAtForkChild(void) {
  lsDb *p;
  lsForked = 1;
  pthread_mutex_init(&lsGlobalMu, 0);
  for (p = lsDbList; p; p = p->pNext) lsDbInitSync(p);
}

int ls_forked(void) { return lsForked; }

static void lsAtExit(void) {
  lsDb *p;
  if (lsForked) return;
  goAtExit();
  pthread_mutex_lock(&lsGlobalMu);
  for (p = lsDbList; p; p = p->pNext) {
    pthread_mutex_lock(&p->mu);
    p->ev.shutdown = 1;
    lsEventLocked(p);
    pthread_cond_broadcast(&p->appCond);
    pthread_cond_broadcast(&p->goCond);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&lsGlobalMu);
}

/* lsTag is the VFS's pAppData: another copy of the extension loaded into
** the same process finds this one's version there. */
typedef struct lsVfsTag {
  char magic[8];
  const char *zVersion;
} lsVfsTag;
#define LS_TAG_MAGIC "LSVFS01"
static lsVfsTag lsTag = {LS_TAG_MAGIC, 0};

const char *ls_version(void) { return lsTag.zVersion ? lsTag.zVersion : "unknown"; }

static int lsRegisterVfsLocked(char **pzErrMsg) {
  sqlite3_vfs *pExisting = sqlite3_vfs_find(LS_VFS_NAME);
  sqlite3_vfs *pDefault;
  const char *zDefault = getenv("LITESTREAM_VFS_DEFAULT");
  if (lsTag.zVersion == 0) lsTag.zVersion = goVersion(); /* kept for the process */
  if (pExisting) {
    if (pExisting != &lsVfs) {
      const lsVfsTag *pOther = (const lsVfsTag *)pExisting->pAppData;
      if (pOther && memcmp(pOther->magic, LS_TAG_MAGIC, sizeof(pOther->magic)) == 0) {
        *pzErrMsg = sqlite3_mprintf(
            "litestream: another copy of the extension (version %s) is "
            "loaded in this process; this one is %s: load one copy per "
            "process", pOther->zVersion ? pOther->zVersion : "unknown",
            ls_version());
      } else {
        *pzErrMsg = sqlite3_mprintf(
            "litestream: another extension already registered the \"%s\" "
            "VFS", LS_VFS_NAME);
      }
      return SQLITE_ERROR;
    }
    return SQLITE_OK; /* second load of this copy: nothing to do */
  }
  pDefault = sqlite3_vfs_find(0);
  if (pDefault == 0) return SQLITE_ERROR;
  pOrigVfs = pDefault;
  memset(&lsVfs, 0, sizeof(lsVfs));
  lsVfs.iVersion = pDefault->iVersion < 3 ? pDefault->iVersion : 3;
  lsVfs.szOsFile = (int)sizeof(lsFile) + pDefault->szOsFile;
  lsVfs.mxPathname = pDefault->mxPathname;
  lsVfs.zName = LS_VFS_NAME;
  lsVfs.pAppData = &lsTag;
  ls_real_vfs_methods(&lsVfs); /* the pass-through ones */
  lsVfs.xOpen = lsOpen;
  lsVfs.xDelete = lsDelete;
  {
    const char *zTimeout = getenv("LITESTREAM_GATE_TIMEOUT_MS");
    if (zTimeout) ls_set_gate_timeout_ms(atoi(zTimeout));
  }
  pthread_atfork(0, 0, lsAtForkChild);
  atexit(lsAtExit);
  return sqlite3_vfs_register(&lsVfs, zDefault && strcmp(zDefault, "1") == 0);
}

/* ls_register_vfs registers the litestream VFS once per process. */
int ls_register_vfs(char **pzErrMsg) {
  int rc;
  pthread_mutex_lock(&lsGlobalMu);
  rc = lsRegisterVfsLocked(pzErrMsg);
  pthread_mutex_unlock(&lsGlobalMu);
  return rc;
}
