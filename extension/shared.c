/*
** shared.c: the shim's side of the state the processes of one host share
** for a database (<db>-litestream/shared; layout lsShared in shim.h,
** documented in vfs/shared.go). Futexes on a MAP_SHARED file mapping are
** keyed by file and offset, so waiters and wakers in different processes
** meet.
*/
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

void ls_futex_wake(uint32_t *w) {
  syscall(SYS_futex, w, FUTEX_WAKE, 1 << 30, (void *)0, (void *)0, 0);
}

void ls_futex_wait(uint32_t *w, uint32_t val, long ns) {
  struct timespec ts = {0, ns};
  syscall(SYS_futex, w, FUTEX_WAIT, val, &ts, (void *)0, 0);
}

/* ls_shared_signal tells the owner something happened it must look at (a
** commit of this process, a gate wait) and wakes its watcher if it sleeps.
** On the commit path of a process that does not replicate: one atomic add
** and, while the owner sleeps, one futex wake. */
void ls_shared_signal(lsShared *s, int urgent) {
  uint32_t one = 1;
  if (urgent) {
    __atomic_add_fetch(&s->urgent, 1, __ATOMIC_SEQ_CST);
    ls_futex_wake(&s->urgent);
  }
  __atomic_add_fetch(&s->seq, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->ownerWaiting, __ATOMIC_SEQ_CST) == 1 &&
      __atomic_compare_exchange_n(&s->ownerWaiting, &one, 0, 0,
                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    ls_futex_wake(&s->seq);
  }
}

void ls_shared_commit(lsShared *s, uint32_t mx, uint32_t s1, uint32_t s2) {
  uint32_t v = __atomic_load_n(&s->commitLock, __ATOMIC_RELAXED);
  /* A writer killed mid-write left it odd: the next takes the next odd. */
  v = (v & 1) ? v + 2 : v + 1;
  __atomic_store_n(&s->commitLock, v, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->commitSalt1, s1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->commitSalt2, s2, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->commitFrames, mx, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->commitLock, v + 1, __ATOMIC_SEQ_CST);
}

/* ls_shared_behind reports whether the owner follows a WAL generation and
** has not yet published a capture of generation (s1, s2) up to frame mx.
** A block that cannot be read stably (its writer died mid-write) counts as
** not behind: nobody would ever publish. */
int ls_shared_behind(lsShared *s, uint32_t mx, uint32_t s1, uint32_t s2) {
  int tries;
  for (tries = 0; tries < 1000; tries++) {
    uint32_t v = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE);
    uint32_t f, c1, c2, fr;
    if (v & 1) continue;
    f = __atomic_load_n(&s->following, __ATOMIC_ACQUIRE);
    c1 = __atomic_load_n(&s->capSalt1, __ATOMIC_ACQUIRE);
    c2 = __atomic_load_n(&s->capSalt2, __ATOMIC_ACQUIRE);
    fr = __atomic_load_n(&s->capFrames, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&s->lock, __ATOMIC_ACQUIRE) == v) {
      return f && !(c1 == s1 && c2 == s2 && fr >= mx);
    }
  }
  return 0;
}

/* ls_owner_gone reports whether no live process owns replication. */
int ls_owner_gone(lsShared *s) {
  pid_t pid = (pid_t)__atomic_load_n(&s->ownerPid, __ATOMIC_ACQUIRE);
  if (pid <= 0) return 1;
  return kill(pid, 0) != 0 && errno == ESRCH;
}

