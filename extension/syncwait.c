/*
** syncwait.c: replicate=sync, the wait of a committing connection until
** the replica holds its transaction (docs/design.md, "Synchronous
** replication").
**
** Where: the shim marks a connection of a replicate=sync URI at its
** commit (the WAL_WRITE release that announces it, shim.c) and waits when
** that connection next releases its read mark, which SQLite does as the
** transaction ends, before sqlite3_step returns. By then the connection
** holds no shm lock at all, so other connections and processes write,
** checkpoint and reset the WAL while it waits, and the commits waiting
** together ship in one upload (group commit). No Go code runs here: the
** wait is on the shared state every process maps (vfs/shared.go), with the
** same protocol as litestream_sync (a numbered request, the owner's step
** that serves it, then the replicated TXID), through futexes.
**
** On a timeout the database is degraded in this process: commits return
** at once until the replica holds what the timed-out commit waited for
** (the mark), then wait again; with on-timeout=block, the connection's new
** write transactions get SQLITE_BUSY until then instead.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include <time.h>

#include "shim.h"
#include "shimdb.h"
#include "_cgo_export.h"

/* lsSyncLog writes zMsg, built with sqlite3_mprintf and freed here, to
** sqlite3_log (code) and, unless this is a forked child, the extension's
** log (Go's, off the commit path: after a timeout or a catch-up). */
static void lsSyncLog(lsDb *d, int code, char *zMsg) {
  if (zMsg == 0) return;
  sqlite3_log(code, "litestream: %s: %s", d->zPath, zMsg);
  if (!lsForked) goLog(code != SQLITE_NOTICE, d->zPath, zMsg);
  sqlite3_free(zMsg);
}

/* The owner's state word (vfs/shared.go). */
enum { LS_STOPPED = 5, LS_NOT_REPLICATING = 4 };

typedef struct lsPos {
  uint32_t state, stepReq;
  uint64_t capTXID, replTXID;
} lsPos;

/* lsPosRead copies the owner's published position; 0 if it cannot be read
** stably (its writer died mid-write: nobody publishes until a take-over). */
static int lsPosRead(lsShared *s, lsPos *out) {
  int tries;
  for (tries = 0; tries < 1000; tries++) {
    uint32_t v = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE);
    if (v & 1) continue;
    out->state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    out->stepReq = __atomic_load_n(&s->stepReq, __ATOMIC_ACQUIRE);
    out->capTXID = __atomic_load_n(&s->capTXID, __ATOMIC_ACQUIRE);
    out->replTXID = __atomic_load_n(&s->replTXID, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&s->lock, __ATOMIC_ACQUIRE) == v) return 1;
  }
  return 0;
}

static void lsAtomicMax(uint64_t *w, uint64_t v) {
  uint64_t cur = __atomic_load_n(w, __ATOMIC_SEQ_CST);
  while (cur < v && !__atomic_compare_exchange_n(w, &cur, v, 0, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST)) {
  }
}

static int64_t lsNowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* lsPubWait sleeps on the owner's publish futex until pos satisfies done,
** or the deadline (monotonic ns) passes: 1 if done. It re-checks at least
** every 100 ms: an owner that died cannot wake it. */
static int lsPubWait(lsShared *s, int64_t deadline, lsPos *pos,
                     int (*done)(const lsPos *, uint64_t), uint64_t arg) {
  for (;;) {
    uint32_t v;
    int ok;
    int64_t left;
    __atomic_add_fetch(&s->pubWaiters, 1, __ATOMIC_SEQ_CST);
    v = __atomic_load_n(&s->pub, __ATOMIC_SEQ_CST);
    ok = lsPosRead(s, pos) && done(pos, arg);
    left = deadline - lsNowNs();
    if (!ok && left > 0) ls_futex_wait(&s->pub, v, left < 100000000LL ? (long)left : 100000000L);
    __atomic_sub_fetch(&s->pubWaiters, 1, __ATOMIC_SEQ_CST);
    if (ok) return 1;
    if (left <= 0) return 0;
  }
}

/* lsServed: a step that began after request req completed (what it
** published covers every commit before the request), or a panic stopped
** replication. A state published before it (not-replicating while the
** database was still in rollback mode, say) says nothing of this commit. */
static int lsServed(const lsPos *p, uint64_t req) {
  return (int32_t)(p->stepReq - (uint32_t)req) >= 0 || p->state == LS_STOPPED;
}

static int lsReplicated(const lsPos *p, uint64_t target) {
  return p->replTXID >= target || p->state == LS_STOPPED;
}

/* lsSyncWait waits until the replica holds everything committed before
** the call, at most timeoutMs. Returns 1 if it does; else 0, with *pMark
** the TXID the replica must reach before commits are synchronous again. */
static int lsSyncWait(lsDb *d, int timeoutMs, uint64_t *pMark) {
  lsShared *s = d->pShared;
  int64_t deadline = lsNowNs() + (int64_t)timeoutMs * 1000000LL;
  uint32_t req, one = 1;
  lsPos pos = {0, 0, 0, 0};
  uint64_t target;
  if (s == 0) { /* replication never started in this process */
    *pMark = 1;
    return 0;
  }
  /* A numbered request, as vfs/shared.go's request(): seq before syncReq,
  ** so the step that serves the request also covers this signal. */
  __atomic_add_fetch(&s->urgent, 1, __ATOMIC_SEQ_CST);
  ls_futex_wake(&s->urgent);
  __atomic_add_fetch(&s->seq, 1, __ATOMIC_SEQ_CST);
  req = __atomic_add_fetch(&s->syncReq, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->ownerWaiting, __ATOMIC_SEQ_CST) == 1 &&
      __atomic_compare_exchange_n(&s->ownerWaiting, &one, 0, 0,
                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    ls_futex_wake(&s->seq);
  }
  if (lsOwnsGates(d)) ls_poke(d); /* end the capture loop's coalescing pause */
  if (!lsPubWait(s, deadline, &pos, lsServed, req) || pos.state == LS_STOPPED ||
      pos.state == LS_NOT_REPLICATING) {
    *pMark = pos.capTXID + 1;
    return 0;
  }
  target = pos.capTXID;
  /* The owner's uploader ships it at once, outside the PUT budget. */
  lsAtomicMax(&s->syncTXID, target);
  lsAtomicMax(&s->wantTXID, target);
  __atomic_add_fetch(&s->urgent, 1, __ATOMIC_SEQ_CST);
  ls_futex_wake(&s->urgent);
  if (!lsPubWait(s, deadline, &pos, lsReplicated, target) || pos.state == LS_STOPPED) {
    *pMark = target;
    return 0;
  }
  return 1;
}

/* lsCaughtUp reports whether a degraded database's replica holds mark,
** clearing the mark if so. */
static int lsCaughtUp(lsDb *d) {
  uint64_t mark = __atomic_load_n(&d->syncMark, __ATOMIC_SEQ_CST);
  lsPos pos;
  if (mark == 0) return 1;
  if (d->pShared == 0 || !lsPosRead(d->pShared, &pos) || pos.replTXID < mark ||
      pos.state == LS_STOPPED) {
    return 0;
  }
  if (__atomic_compare_exchange_n(&d->syncMark, &mark, 0, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST)) {
    pthread_mutex_lock(&d->mu);
    d->ev.syncDegraded = 0;
    d->blockLogged = 0;
    lsEventLocked(d);
    pthread_mutex_unlock(&d->mu);
    lsSyncLog(d, SQLITE_NOTICE, sqlite3_mprintf(
        "the replica holds TXID %llu: replicate=sync commits wait for the "
        "replica again", (unsigned long long)mark));
  }
  return 1;
}

void lsSyncCommit(lsFile *p) {
  lsDb *d = p->pDb;
  uint64_t mark = 0, was = 0;
  int64_t t0;
  int ok;
  if (!lsCaughtUp(d)) return; /* degraded: asynchronous until caught up */
  t0 = lsNowNs();
  ok = lsSyncWait(d, p->syncTimeoutMs, &mark);
  pthread_mutex_lock(&d->mu);
  d->ev.syncWaits++;
  d->ev.syncWaitNs += (uint64_t)(lsNowNs() - t0);
  if (!ok) {
    d->ev.syncTimeouts++;
    was = d->ev.syncDegraded;
    if (mark > d->ev.syncDegraded) d->ev.syncDegraded = mark;
    lsAtomicMax(&d->syncMark, mark);
  }
  lsEventLocked(d);
  pthread_mutex_unlock(&d->mu);
  if (!ok && was == 0) { /* logged once per degraded spell, not per waiter */
    lsSyncLog(d, SQLITE_WARNING, sqlite3_mprintf(
                "replicate=sync: the replica did not confirm a commit within "
                "%d ms (sync-timeout; it must reach TXID %llu); the commit "
                "stands locally. %s", p->syncTimeoutMs, (unsigned long long)mark,
                p->syncBlock ? "New write transactions fail with SQLITE_BUSY "
                               "(on-timeout=block) until the replica has it"
                             : "Commits are asynchronous (degraded) until the "
                               "replica has it"));
  }
}

int lsSyncRefuse(lsFile *p) {
  lsDb *d = p->pDb;
  int first;
  if (lsCaughtUp(d)) return 0;
  pthread_mutex_lock(&d->mu);
  d->ev.syncRefused++;
  first = !d->blockLogged;
  d->blockLogged = 1;
  pthread_mutex_unlock(&d->mu);
  if (first) {
    lsSyncLog(d, SQLITE_BUSY, sqlite3_mprintf(
        "write refused (SQLITE_BUSY): on-timeout=block and the replica has "
        "not confirmed TXID %llu yet; writes resume once it has",
        (unsigned long long)__atomic_load_n(&d->syncMark, __ATOMIC_SEQ_CST)));
  }
  return 1;
}
