/*
** gates.c: the per-database state of the shim and its gates: the waits
** before SQLite destroys WAL content (a restart, truncation or deletion)
** until Go, or the replicating process, has captured it, and before
** main-db writes while Go reads a snapshot. shim.c's VFS methods call
** these; shimdb.h declares them.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shim.h"
#include "shimdb.h"

lsDb *lsDbList = 0;
int lsGateTimeoutMs = 30000;

static void lsSharedGate(lsDb *p);

lsDb *lsDbFind(const char *zPath, size_t n) {
  lsDb *p;
  for (p = lsDbList; p; p = p->pNext) {
    if (strlen(p->zPath) == n && memcmp(p->zPath, zPath, n) == 0) return p;
  }
  return 0;
}

/* lsDbInitSync initialises p's mutex and condition variables (waits on
** the monotonic clock). */
void lsDbInitSync(lsDb *p) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&p->mu, 0);
  pthread_cond_init(&p->goCond, &ca);
  pthread_cond_init(&p->appCond, &ca);
  pthread_condattr_destroy(&ca);
}

/* lsDbGet returns the state for zPath, creating it. Never freed: Go keeps a
** pointer to it for the life of the process. */
lsDb *lsDbGet(const char *zPath) {
  lsDb *p;
  pthread_mutex_lock(&lsGlobalMu);
  p = lsDbFind(zPath, strlen(zPath));
  if (p == 0) {
    p = calloc(1, sizeof(*p));
    if (p) {
      p->zPath = strdup(zPath);
      if (p->zPath == 0) {
        free(p);
        p = 0;
      } else {
        lsDbInitSync(p);
        p->pNext = lsDbList;
        lsDbList = p;
      }
    }
  }
  pthread_mutex_unlock(&lsGlobalMu);
  return p;
}

lsDb *lsDbForWal(const char *zWal) {
  size_t n = strlen(zWal);
  lsDb *p;
  if (n < 4 || strcmp(zWal + n - 4, "-wal") != 0) return 0;
  pthread_mutex_lock(&lsGlobalMu);
  p = lsDbFind(zWal, n - 4);
  pthread_mutex_unlock(&lsGlobalMu);
  return p;
}

/* lsReadHdr copies mxFrame and the salts out of a wal-index header mapping
** (fileformat2.html#walindexformat: mxFrame at byte 16, the salts as raw
** WAL-header bytes at 32). */
void lsReadHdr(const volatile void *pShm0, uint32_t *pMx, uint32_t *pS1,
                      uint32_t *pS2) {
  const volatile unsigned char *h = (const volatile unsigned char *)pShm0;
  *pMx = *(const volatile uint32_t *)(h + 16);
  *pS1 = ((uint32_t)h[32] << 24) | ((uint32_t)h[33] << 16) |
         ((uint32_t)h[34] << 8) | h[35];
  *pS2 = ((uint32_t)h[36] << 24) | ((uint32_t)h[37] << 16) |
         ((uint32_t)h[38] << 8) | h[39];
}

/* lsRecordEnd notes the committed extent of the current generation just
** before SQLite may end it (a restart resets the wal-index header, a close
** unmaps it), so the gate can make Go read every committed frame of it,
** this process's or another's, while the WAL file still holds them.
** atClose: recorded as a connection closes (its shm unmapped); the WAL may
** be deleted next (lsBehindLocked). */
void lsRecordEnd(lsDb *d, const volatile void *pShm0, int atClose) {
  uint32_t mx, s1, s2;
  if (pShm0 == 0) return;
  lsReadHdr(pShm0, &mx, &s1, &s2);
  pthread_mutex_lock(&d->mu);
  /* iChange, at byte 8: bumped by every commit, kept by a restart */
  d->ev.endChange = *(const volatile uint32_t *)((const volatile char *)pShm0 + 8);
  d->ev.endMxFrame = mx;
  d->ev.endSalt1 = s1;
  d->ev.endSalt2 = s2;
  d->endAtClose = atClose;
  lsEventLocked(d);
  pthread_mutex_unlock(&d->mu);
}

/* lsBehindLocked reports whether Go has yet to capture something a WAL
** reset would destroy: an announced commit, or committed frames of the
** generation it follows up to the recorded end. Caller holds p->mu. */
static int lsBehindLocked(lsDb *p) {
  if (p->ev.acked < p->ev.announced || p->snapshotting) return 1;
  if (p->endAtClose && p->ev.endMxFrame > 0 &&
      (p->ackSalt1 != p->ev.endSalt1 || p->ackSalt2 != p->ev.endSalt2)) {
    /* The last connection closing deletes the WAL, holding commits of a
    ** generation Go does not follow: a writer without the extension's,
    ** made while this process only read. Its close checkpointed them into
    ** the database file before its stat (lsClosed), so nothing would show
    ** them at the reopen: Go reads them first (found by an attack). */
    return 1;
  }
  return p->ev.endMxFrame > 0 && p->ackSalt1 == p->ev.endSalt1 &&
         p->ackSalt2 == p->ev.endSalt2 && p->ackFrames < p->ev.endMxFrame;
}

/* lsGate runs before SQLite destroys WAL content (restart, truncate,
** delete): it waits until Go has taken every announced commit and every
** committed frame of the generation it follows. */
void lsGate(lsDb *p) {
  struct timespec dl;
  if (!lsOwnsGates(p)) {
    lsSharedGate(p);
    if (lsForked) return;
  }
  pthread_mutex_lock(&p->mu);
  if (p->goAttached && !p->ev.shutdown && lsBehindLocked(p)) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lsDeadline(&dl, lsGateTimeoutMs);
    while (lsBehindLocked(p)) {
      int rc;
      p->ev.gateWaiters++;
      lsEventLocked(p);
      if (p->goGateWaiting) pthread_cond_signal(&p->goCond);
      rc = pthread_cond_timedwait(&p->appCond, &p->mu, &dl);
      p->ev.gateWaiters--;
      if (p->ev.shutdown) break;
      if (rc == ETIMEDOUT) {
        p->ev.gateTimeouts++;
        sqlite3_log(SQLITE_WARNING,
                    "litestream: %s: replicator did not catch up in %d ms "
                    "before the WAL was reset; a snapshot will follow",
                    p->zPath, lsGateTimeoutMs);
        break;
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    p->ev.gateWaits++;
    p->ev.gateWaitNs += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
                                   (t1.tv_nsec - t0.tv_nsec));
  }
  p->ev.restarts++;
  lsEventLocked(p);
  pthread_mutex_unlock(&p->mu);
}

/* lsGateDone counts a reset lsGate let through once it is done: Go takes
** as the baseline of a generation only the resets whose effect it could
** have seen, since lsGate counts each before it happens. */
void lsGateDone(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  p->ev.restartsDone++;
  p->endAtClose = 0; /* the reset consumed the end recorded for it */
  lsEventLocked(p);
  pthread_mutex_unlock(&p->mu);
}

void lsDbWriteBegin(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  if (p->snapshotting && p->goAttached && !p->ev.shutdown) {
    struct timespec dl;
    lsDeadline(&dl, lsGateTimeoutMs);
    while (p->snapshotting && !p->ev.shutdown) {
      if (pthread_cond_timedwait(&p->appCond, &p->mu, &dl) == ETIMEDOUT) {
        p->ev.snapshotBroken++;
        lsEventLocked(p);
        break;
      }
    }
  }
  p->dbWritesInFlight++;
  if (p->ev.nWalOpen == 0) {
    p->ev.nonWalWrites++;
    lsEventLocked(p);
  }
  pthread_mutex_unlock(&p->mu);
}

void lsDbWriteEnd(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  if (--p->dbWritesInFlight == 0 && p->snapshotting) {
    pthread_cond_broadcast(&p->goCond);
  }
  pthread_mutex_unlock(&p->mu);
}

void lsCount(lsDb *p, int *pField, int delta) {
  pthread_mutex_lock(&p->mu);
  *pField += delta;
  lsEventLocked(p);
  pthread_mutex_unlock(&p->mu);
}

/* lsSharedGate is the gate of a process that does not replicate (and of a
** forked child): before SQLite destroys WAL content it waits, bounded by
** the gate timeout, until the owner published a capture of the
** generation's recorded committed end. Then it counts the reset in the
** shared state, before it happens, so the owner can tell a reset it was
** waited for from one it never saw. A gate that gives up (or finds the
** owner gone) is counted too: the owner answers with a snapshot. */
static void lsSharedGate(lsDb *p) {
  lsShared *s = p->pShared;
  uint32_t mx, s1, s2;
  if (s == 0) return;
  pthread_mutex_lock(&p->mu);
  mx = p->ev.endMxFrame;
  s1 = p->ev.endSalt1;
  s2 = p->ev.endSalt2;
  pthread_mutex_unlock(&p->mu);
  if (mx > 0 && ls_shared_behind(s, mx, s1, s2)) {
    struct timespec t0, now;
    int64_t waited = 0;
    int n, gaveUp = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ls_shared_signal(s, 1);
    for (n = 0; ls_shared_behind(s, mx, s1, s2); n++) {
      uint32_t v;
      clock_gettime(CLOCK_MONOTONIC, &now);
      waited = (int64_t)(now.tv_sec - t0.tv_sec) * 1000000000LL +
               (now.tv_nsec - t0.tv_nsec);
      if (waited > (int64_t)lsGateTimeoutMs * 1000000LL ||
          (n % 16 == 0 && ls_owner_gone(s))) {
        gaveUp = 1;
        break;
      }
      __atomic_add_fetch(&s->pubWaiters, 1, __ATOMIC_SEQ_CST);
      v = __atomic_load_n(&s->pub, __ATOMIC_SEQ_CST);
      if (ls_shared_behind(s, mx, s1, s2)) ls_futex_wait(&s->pub, v, 2000000L);
      __atomic_sub_fetch(&s->pubWaiters, 1, __ATOMIC_SEQ_CST);
    }
    if (gaveUp) {
      __atomic_add_fetch(&s->gateTimeouts, 1, __ATOMIC_SEQ_CST);
      sqlite3_log(SQLITE_WARNING,
                  "litestream: %s: the replicating process did not capture "
                  "in %d ms before this process reset the WAL; a snapshot "
                  "will follow", p->zPath, (int)(waited / 1000000));
    }
    pthread_mutex_lock(&p->mu);
    p->ev.gateWaits++;
    p->ev.gateWaitNs += (uint64_t)waited;
    pthread_mutex_unlock(&p->mu);
  }
  /* The reset ends that generation: a later write at offset 0 (the header
  ** of a truncated WAL) has nothing of it left to wait for. Without this a
  ** write after this process's wal_checkpoint(TRUNCATE) waited the whole
  ** gate timeout for a generation the owner had already left. */
  pthread_mutex_lock(&p->mu);
  if (p->ev.endMxFrame == mx && p->ev.endSalt1 == s1 && p->ev.endSalt2 == s2) {
    p->ev.endMxFrame = 0;
  }
  pthread_mutex_unlock(&p->mu);
  __atomic_add_fetch(&s->restarts, 1, __ATOMIC_SEQ_CST);
}

/* lsOwnsGates reports whether this process's replicator answers its gates
** (it replicates, and this is not a forked child). */
int lsOwnsGates(lsDb *p) {
  return !lsForked && __atomic_load_n(&p->goAttached, __ATOMIC_ACQUIRE);
}
