/*
** gocalls.c: what the Go side calls on one database's shim state: waiting
** for events, acknowledging captures, reading the live wal-index, holding
** back checkpoints during a snapshot.
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3

#include <errno.h>
#include <string.h>

#include "shimdb.h"

uint64_t ls_wait(lsDb *p, uint64_t seenVer, int64_t timeoutUs, int gateOnly,
                 lsEvents *out) {
  struct timespec dl;
  uint64_t ver, urgent;
  pthread_mutex_lock(&p->mu);
  if (timeoutUs >= 0) lsDeadlineUs(&dl, timeoutUs);
  urgent = p->urgent;
  while ((gateOnly || p->ver == seenVer) && p->ev.gateWaiters == 0 &&
         !(gateOnly && p->urgent != urgent) && !p->ev.shutdown) {
    /* While Go pauses to let commits accumulate, commits must not wake it:
    ** that would cost a futex wake per commit. */
    if (gateOnly) {
      p->goGateWaiting = 1;
    } else {
      p->goWaiting = 1;
    }
    if (timeoutUs >= 0) {
      if (pthread_cond_timedwait(&p->goCond, &p->mu, &dl) == ETIMEDOUT) break;
    } else {
      pthread_cond_wait(&p->goCond, &p->mu);
    }
  }
  p->goWaiting = 0;
  p->goGateWaiting = 0;
  *out = p->ev;
  ver = p->ver;
  pthread_mutex_unlock(&p->mu);
  return ver;
}

void ls_poke(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  lsUrgentLocked(p);
  pthread_mutex_unlock(&p->mu);
}

void ls_notify(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  lsEventLocked(p);
  pthread_mutex_unlock(&p->mu);
}

int ls_has_walindex(const char *zPath) {
  lsDb *p;
  int ok = 0;
  pthread_mutex_lock(&lsGlobalMu);
  p = lsDbFind(zPath, strlen(zPath));
  pthread_mutex_unlock(&lsGlobalMu);
  if (p) {
    pthread_mutex_lock(&p->mu);
    ok = p->pShm0 != 0;
    pthread_mutex_unlock(&p->mu);
  }
  return ok;
}

void ls_set_shared(lsDb *p, void *pShared) {
  pthread_mutex_lock(&p->mu);
  if (p->pShared == 0) p->pShared = (lsShared *)pShared;
  pthread_mutex_unlock(&p->mu);
}

void ls_get_events(lsDb *p, lsEvents *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->ev;
  pthread_mutex_unlock(&p->mu);
}

/* ls_walindex reads mxFrame, the salts and the change counter (iChange,
** bumped by every commit of any connection) from the live wal-index
** header, taking the two copies SQLite keeps (bytes 0-47 and 48-95) only
** when they agree, as its readers do. Returns 0 if there is no mapping or
** no stable read. */
int ls_walindex(lsDb *p, uint32_t *pMxFrame, uint32_t *pSalt1,
                uint32_t *pSalt2, uint32_t *pChange) {
  int ok = 0, tries;
  pthread_mutex_lock(&p->mu);
  for (tries = 0; p->pShm0 && tries < 100 && !ok; tries++) {
    unsigned char a[48], b[48];
    const volatile unsigned char *h = (const volatile unsigned char *)p->pShm0;
    int i;
    for (i = 0; i < 48; i++) a[i] = h[i];
    __sync_synchronize();
    for (i = 0; i < 48; i++) b[i] = h[48 + i];
    if (memcmp(a, b, 48) == 0 && a[12] /* isInit */) {
      memcpy(pChange, a + 8, 4);
      memcpy(pMxFrame, a + 16, 4);
      *pSalt1 = ((uint32_t)a[32] << 24) | ((uint32_t)a[33] << 16) |
                ((uint32_t)a[34] << 8) | a[35];
      *pSalt2 = ((uint32_t)a[36] << 24) | ((uint32_t)a[37] << 16) |
                ((uint32_t)a[38] << 8) | a[39];
      ok = 1;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return ok;
}

void ls_ack(lsDb *p, uint64_t seq, uint32_t salt1, uint32_t salt2,
            uint32_t frames) {
  pthread_mutex_lock(&p->mu);
  if (seq > p->ev.acked) p->ev.acked = seq;
  p->ackSalt1 = salt1;
  p->ackSalt2 = salt2;
  p->ackFrames = frames;
  pthread_cond_broadcast(&p->appCond);
  pthread_mutex_unlock(&p->mu);
}

void ls_set_attached(lsDb *p, int attached) {
  pthread_mutex_lock(&p->mu);
  p->goAttached = attached;
  pthread_cond_broadcast(&p->appCond);
  pthread_mutex_unlock(&p->mu);
}

void ls_snapshot_begin(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  p->snapshotting = 1;
  while (p->dbWritesInFlight > 0 && !p->ev.shutdown) {
    pthread_cond_wait(&p->goCond, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
}

void ls_snapshot_end(lsDb *p) {
  pthread_mutex_lock(&p->mu);
  p->snapshotting = 0;
  pthread_cond_broadcast(&p->appCond);
  pthread_mutex_unlock(&p->mu);
}

void ls_set_gate_timeout_ms(int ms) {
  if (ms > 0) lsGateTimeoutMs = ms;
}

void ls_log(int code, const char *zMsg) { sqlite3_log(code, "%s", zMsg); }

