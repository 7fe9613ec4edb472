/*
** shim.h: the C side of the litestream VFS, shared between shim.c and the
** cgo glue. The shim wraps the default VFS, watches WAL writes and the
** WAL_WRITE shm lock, and hands "a transaction was committed" to Go through
** counters and a condition variable: no Go code runs on the commit path.
*/
#ifndef LITESTREAM_SHIM_H
#define LITESTREAM_SHIM_H

#include <stdint.h>

typedef struct lsDb lsDb;

/* lsEvents is a copy of one database's counters, taken under its mutex. */
typedef struct lsEvents {
  uint64_t announced;        /* commits announced at WAL_WRITE unlock */
  uint64_t acked;            /* announced commits Go has captured */
  uint64_t restarts;         /* WAL header rewrites, truncates, deletes passed */
  uint64_t gateTimeouts;     /* gates that gave up waiting for Go */
  uint64_t nonWalWrites;     /* main-db writes while no WAL was open */
  uint64_t exclusiveWrites;  /* WAL writes without the WAL_WRITE shm lock */
  uint64_t snapshotBroken;   /* db writes let through during a snapshot */
  uint64_t gateWaits;        /* times an app thread waited at a gate */
  uint64_t gateWaitNs;       /* total time app threads waited at gates */
  uint32_t mxFrame;          /* wal-index mxFrame at the last announce */
  uint32_t salt1, salt2;     /* WAL salts at the last announce */
  uint32_t endMxFrame;       /* last mxFrame of a generation about to end */
  uint32_t endSalt1, endSalt2; /* its salts */
  uint32_t endChange;        /* the wal-index change counter then (iChange) */
  uint64_t restartsDone;     /* restarts here, counted once done */
  uint64_t closes;           /* times the last main-db handle closed */
  uint64_t closeIno, closeSize; /* the database file then (stat) */
  int64_t closeMtimeNs, closeCtimeNs;
  uint64_t syncWaits;        /* replicate=sync commits that waited */
  uint64_t syncWaitNs;       /* their total wait */
  uint64_t syncTimeouts;     /* of them, not confirmed within sync-timeout */
  uint64_t syncDegraded;     /* while degraded: the TXID the replica must reach (0: not) */
  uint64_t syncRefused;      /* write locks refused by on-timeout=block */
  int nWalOpen;              /* WAL handles open now */
  int nConn;                 /* main-db handles open now */
  int gateWaiters;           /* app threads waiting at a gate */
  int shutdown;              /* the process is exiting */
} lsEvents;

/* lsShared is the layout of <db>-litestream/shared, the state the
** processes of one host share for a database (vfs/shared.go documents each
** field and who writes it; a test checks the two agree). Every process maps
** it; the shim of a process that does not replicate signals its commits
** through seq and holds its WAL resets until the owner's published capture
** position covers them. */
typedef struct lsShared {
  uint32_t magic, version;
  uint32_t seq;          /* futex: bumped at commits, sync requests, gate waits */
  uint32_t ownerWaiting; /* 1 while the owner's watcher sleeps on seq */
  uint32_t urgent;       /* bumped by gate waiters and sync requests */
  uint32_t pub;          /* futex: bumped by the owner after each publish */
  uint32_t pubWaiters;   /* processes sleeping on pub */
  uint32_t ownerPid;
  uint64_t restarts;     /* WAL resets let through by non-owner gates */
  uint64_t gateTimeouts; /* non-owner gates that gave up */
  uint32_t syncReq;
  uint32_t lock;         /* seqlock over the fields below: odd while written */
  uint32_t capSalt1, capSalt2, capFrames, following;
  uint64_t capTXID, replTXID;
  uint32_t stepReq, stepSeq, state, pendingBytes;
  char reason[256];
  char lastError[256];
  uint64_t wantTXID; /* the highest TXID a process waits to see replicated */
  uint32_t commitLock; /* seqlock over the three words below: odd while written */
  uint32_t commitSalt1, commitSalt2, commitFrames; /* wal-index at the last
                       ** commit of a process that does not replicate */
  uint8_t goOnly[1224 - 640]; /* Go's fields (vfs/shared.go) */
  uint64_t syncTXID; /* the highest TXID a replicate=sync commit waits for */
} lsShared;

/* shared.c. ls_shared_signal records a commit or gate wait (urgent) for
** the owner and wakes its watcher; ls_shared_behind reports whether the
** owner follows a generation and has not published a capture of (s1, s2)
** up to frame mx; ls_owner_gone whether no live process owns replication;
** ls_futex_wait sleeps while *w == val, at most ns nanoseconds. */
void ls_shared_signal(lsShared *s, int urgent);
/* ls_shared_commit publishes the wal-index header of a commit of a process
** that does not replicate: (s1, s2) committed up to frame mx. Called with
** WAL_WRITE held, so writers of it never overlap. */
void ls_shared_commit(lsShared *s, uint32_t mx, uint32_t s1, uint32_t s2);
int ls_shared_behind(lsShared *s, uint32_t mx, uint32_t s1, uint32_t s2);
int ls_owner_gone(lsShared *s);
void ls_futex_wait(uint32_t *w, uint32_t val, long ns);
/* ls_futex_wake wakes every sleeper on w, in any process. */
void ls_futex_wake(uint32_t *w);

/* ls_forked reports whether this process is a fork() child of the one
** that loaded the extension. */
int ls_forked(void);

/* pOrigVfs is the VFS the litestream VFS wraps (the default VFS at
** registration); shim.c sets it, realvfs.c opens files with it. */
struct sqlite3_vfs;
extern struct sqlite3_vfs *pOrigVfs;

/* LS_MIN_SQLITE_VERSION is the oldest SQLite the extension runs on
** (sqlite3_uri_key arrived in 3.31.0). */
#define LS_MIN_SQLITE_VERSION 3031000

/* ls_real_vfs_methods fills in the methods of a wrapping VFS that only pass
** through to pOrigVfs (all but xOpen and xDelete), as its iVersion allows;
** realvfs.c. */
void ls_real_vfs_methods(struct sqlite3_vfs *p);

/* ls_batch_own_threads switches the threads the Go runtime has started
** since the extension was loaded to SCHED_BATCH (threads.c); the first call
** only. Returns how many it switched, -1 if it did nothing. */
int ls_batch_own_threads(void);

/* ls_register_vfs registers the "litestream" VFS once per process (entry.c
** calls it from the entry point). */
int ls_register_vfs(char **pzErrMsg);

/* ls_version returns this build's version (git describe), known once the
** VFS is registered. */
const char *ls_version(void);

/* Called by Go. */
/* ls_wait blocks until the event version differs from seenVer (unless
** gateOnly), an app thread waits at a gate, a checkpoint starts or ls_poke
** is called (gateOnly: a WAL reset may follow a checkpoint, a poke is
** urgent), the process exits, or timeoutUs
** microseconds pass (<0: no timeout). It copies the counters to out and
** returns the version. */
uint64_t ls_wait(lsDb *p, uint64_t seenVer, int64_t timeoutUs, int gateOnly,
                 lsEvents *out);
/* ls_poke wakes ls_wait. */
void ls_poke(lsDb *p);
/* ls_notify wakes ls_wait unless it waits for gates only (another
** process committed: not urgent). */
void ls_notify(lsDb *p);
/* ls_set_shared gives the shim the process's mapping of the shared state;
** it is never unmapped. */
void ls_set_shared(lsDb *p, void *pShared);
/* ls_has_walindex reports whether a connection of this process has the
** wal-index of database zPath mapped. */
int ls_has_walindex(const char *zPath);
void ls_ack(lsDb *p, uint64_t seq, uint32_t salt1, uint32_t salt2,
            uint32_t frames);
int ls_walindex(lsDb *p, uint32_t *pMxFrame, uint32_t *pSalt1,
                uint32_t *pSalt2, uint32_t *pChange);
void ls_set_attached(lsDb *p, int attached);
void ls_snapshot_begin(lsDb *p);
void ls_snapshot_end(lsDb *p);
void ls_get_events(lsDb *p, lsEvents *out);
void *ls_reader_begin(const char *zPath, char **pzErr, int *pRc);
/* ls_reader_starting reports whether ls_reader_begin is under way in this
** process (realvfs.c). */
int ls_reader_starting(void);
void ls_reader_end(void *db);
void *ls_dbfile_open(const char *zPath, int *pRc);
int ls_dbfile_read(void *pFile, void *buf, int n, int64_t off);
int ls_dbfile_size(void *pFile, int64_t *pSize);
void ls_dbfile_close(void *pFile);
void ls_log(int code, const char *zMsg);
void ls_set_gate_timeout_ms(int ms);

#endif
