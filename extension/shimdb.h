/*
** shimdb.h: the per-database state of the shim, private to shim.c (the
** VFS), gates.c (the state and the gates) and gocalls.c (what Go calls).
** Not included by the cgo glue.
*/
#ifndef LITESTREAM_SHIMDB_H
#define LITESTREAM_SHIMDB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "shim.h"

/* lsDb is one database's state in this process. Fields are guarded by mu
** unless their comment says otherwise. */
struct lsDb {
  char *zPath;
  lsDb *pNext;
  pthread_mutex_t mu;
  pthread_cond_t goCond;  /* Go waits here for events */
  pthread_cond_t appCond; /* app threads wait here at gates */
  uint64_t ver;           /* bumped on every event Go cares about */
  uint32_t ackSalt1, ackSalt2, ackFrames; /* Go's WAL position at its last ack */
  lsEvents ev;
  uint64_t urgent;   /* checkpoints started and ls_poke calls: they end a
                     ** gate-only wait too */
  int goWaiting;     /* Go waits for any event */
  int goGateWaiting; /* Go waits only for gate waiters */
  int goAttached;
  int snapshotting;
  int dbWritesInFlight;
  void volatile *pShm0;      /* wal-index header mapping, while nShm0 > 0 */
  int nShm0;                 /* main-db handles that mapped it */
  volatile int walDirty;     /* WAL written since the last announce */
  volatile int walWriteHeld; /* WAL_WRITE shm lock held in this process */
  lsShared *pShared;         /* the host's shared state; set once, never unmapped */
  int endAtClose;            /* ev.end* were recorded by a closing connection */
  uint32_t ckptSalt1, ckptMx; /* wal-index when a checkpoint here last made
                              ** another process's owner urgent */
  uint64_t syncMark; /* atomic; degraded (replicate=sync timed out): the TXID
                     ** the replica must reach before commits wait again (0: not) */
  int blockLogged;   /* on-timeout=block's refusal was logged since the timeout */
  int syncPolicy[3]; /* the last replicate=sync connection's policy (lsFile's
                     ** syncMode, syncTimeoutMs, syncBlock): a fork child's
                     ** new connections, which cannot ask Go, take it */
};

/* lsFile is one open file of the VFS (shim.c); the real file follows it. */
typedef struct lsFile {
  sqlite3_file base;
  int kind;
  lsDb *pDb;
  void volatile *pShm0; /* shm region 0 (the wal-index header), if mapped */
  /* replicate=sync (main db only; this connection's URI or environment) */
  int syncMode, syncBlock, syncTimeoutMs;
} lsFile;

/* syncwait.c. lsSyncCommit waits until the replica holds what p's
** connection committed (replicate=sync), at most its sync-timeout, or
** returns at once while the database is degraded; lsSyncRefuse reports
** whether a write lock of p must be refused (on-timeout=block, degraded). */
void lsSyncCommit(lsFile *p);
int lsSyncRefuse(lsFile *p);


extern pthread_mutex_t lsGlobalMu; /* guards the list of lsDb */
extern volatile int lsForked;      /* this process is a fork() child */
extern int lsGateTimeoutMs;        /* longest wait at a gate */

/* lsDbFind returns the state of the database named by zPath[0..n), or 0.
** Caller holds lsGlobalMu. */
lsDb *lsDbFind(const char *zPath, size_t n);

/* gates.c: the list of databases (guarded by lsGlobalMu), their state and
** the gates (each documented there). */
extern lsDb *lsDbList;
void lsDbInitSync(lsDb *p);
lsDb *lsDbGet(const char *zPath);
lsDb *lsDbForWal(const char *zWal);
void lsReadHdr(const volatile void *pShm0, uint32_t *pMx, uint32_t *pS1,
               uint32_t *pS2);
void lsRecordEnd(lsDb *d, const volatile void *pShm0, int atClose);
void lsGate(lsDb *p);
void lsGateDone(lsDb *p);
void lsDbWriteBegin(lsDb *p);
void lsDbWriteEnd(lsDb *p);
void lsCount(lsDb *p, int *pField, int delta);
int lsOwnsGates(lsDb *p);

static inline void lsDeadlineUs(struct timespec *ts, int64_t us) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(us / 1000000);
  ts->tv_nsec += (long)(us % 1000000) * 1000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static inline void lsDeadline(struct timespec *ts, int ms) {
  lsDeadlineUs(ts, (int64_t)ms * 1000);
}

/* lsEventLocked records an event for Go. Caller holds p->mu. */
static inline void lsEventLocked(lsDb *p) {
  p->ver++;
  if (p->goWaiting) pthread_cond_signal(&p->goCond);
}

/* lsUrgentLocked records an event that also ends Go's coalescing pause (a
** gate-only wait). Caller holds p->mu. */
static inline void lsUrgentLocked(lsDb *p) {
  p->urgent++;
  lsEventLocked(p);
  if (p->goGateWaiting) pthread_cond_signal(&p->goCond);
}

#endif
