/*
** threads.c: the replicator's threads run under SCHED_BATCH, so that they
** never preempt the application's threads when they wake (the scheduler
** still gives them their fair share of CPU at its tick, and an idle CPU at
** once). Without it a replicator thread woken by its own I/O completing
** (a spool fsync returning) took the CPU from a writer in the middle of a
** transaction, tens of times a second under load on a 2-core machine
** (docs/performance.md).
**
** A new thread inherits its creator's policy, and the Go runtime makes its
** threads with pthread_create from the thread that needs one: usually one
** of its own, so switching the threads the runtime has when the extension
** is loaded covers most later ones. A thread it makes while the
** application's thread runs extension code (opening a database, say)
** starts with the application's policy; the replicator's goroutines switch
** the thread they run on (internal/threads). The application's threads are
** told apart by a list taken in a
** constructor that runs before the Go runtime starts (constructors with a
** priority run before the unprioritized one the Go linker registers). A
** thread the application starts while the extension is being loaded may be
** switched too; that costs it no CPU share, only wakeup preemption.
**
** LITESTREAM_BATCH_THREADS=0 leaves every thread's policy alone.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static int *lsAppTids = 0; /* threads that existed before the Go runtime */
static int nAppTids = 0;
static int lsAppTidsOk = 0; /* the list is complete */

/* lsEachTask calls x for every thread of this process; 0 if /proc could
** not be read. */
static int lsEachTask(void (*x)(int tid, void *arg), void *arg) {
  DIR *dir = opendir("/proc/self/task");
  struct dirent *e;
  if (dir == 0) return 0;
  while ((e = readdir(dir)) != 0) {
    int tid = atoi(e->d_name);
    if (tid > 0) x(tid, arg);
  }
  closedir(dir);
  return 1;
}

static void lsAddAppTid(int tid, void *arg) {
  int *pCap = (int *)arg;
  if (*pCap < 0) return; /* out of memory earlier: the list is unusable */
  if (nAppTids == *pCap) {
    int nNew = *pCap ? 2 * *pCap : 64;
    int *aNew = realloc(lsAppTids, (size_t)nNew * sizeof(int));
    if (aNew == 0) {
      *pCap = -1;
      return;
    }
    lsAppTids = aNew;
    *pCap = nNew;
  }
  lsAppTids[nAppTids++] = tid;
}

__attribute__((constructor(101))) static void lsListAppThreads(void) {
  int cap = 0;
  lsAppTidsOk = lsEachTask(lsAddAppTid, &cap) && cap >= 0;
}

static void lsBatchIfOurs(int tid, void *arg) {
  int i, *pN = (int *)arg;
  struct sched_param param;
  for (i = 0; i < nAppTids; i++) {
    if (lsAppTids[i] == tid) return;
  }
  memset(&param, 0, sizeof(param));
  if (sched_setscheduler(tid, SCHED_BATCH, &param) == 0) (*pN)++;
}

int ls_batch_own_threads(void) {
  static int done = 0; /* a second load must not take later app threads */
  const char *zEnv = getenv("LITESTREAM_BATCH_THREADS");
  int n = 0;
  if (!__sync_bool_compare_and_swap(&done, 0, 1)) return -1;
  if (!lsAppTidsOk || (zEnv && strcmp(zEnv, "0") == 0)) return -1;
  lsEachTask(lsBatchIfOurs, &n);
  return n;
}
