"""crashwriter.py: the writer the crash loop (tests/crash_test.go) kills.

Usage:
  crashwriter.py EXTENSION DB_URI SEED
      Loads EXTENSION and opens DB_URI (vfs=litestream). Appends rows to
      table c(seq, pad) from the next free seq, in transactions of 1-20
      rows (pad is a function of seq, see pad()), and every few transactions
      calls litestream_sync(10000) and prints "ACK <max seq> <txid>": every
      row up to it is in the replica. Now and then it runs
      wal_checkpoint(TRUNCATE) or PASSIVE. Runs until killed, or for at most
      200,000 transactions or 60 s, then prints "DONE".

  crashwriter.py - DB_PATH SEED
      The same without the extension (a plain SQLite writer the replicator
      never hears of), for a bounded 20-200 rows; prints "DONE <max seq>".

Run with Debian's /usr/bin/python3.
"""

import hashlib
import random
import sqlite3
import sys
import time

from client import connect, load_extension


def pad(seq):
    """The pad of row seq: 0-1,248 bytes that depend only on seq."""
    return hashlib.sha256(b"%d" % seq).digest() * (seq % 40)


def main():
    ext, uri, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rnd = random.Random(seed)
    plain = ext == "-"
    if plain:
        conn = sqlite3.connect(uri, isolation_level=None, timeout=10.0)
    else:
        load_extension(ext)
        conn = connect(uri)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE IF NOT EXISTS c(seq INTEGER PRIMARY KEY, pad BLOB)")
    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM c").fetchone()[0]
    print("START %d" % seq, flush=True)
    stop = seq + rnd.randint(20, 200) if plain else 1 << 62
    deadline = time.monotonic() + 60
    txns = 0
    sync_in = rnd.randint(1, 30)
    while txns < 200000 and time.monotonic() < deadline and seq < stop:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(rnd.randint(1, 20)):
            seq += 1
            conn.execute("INSERT INTO c VALUES(?, ?)", (seq, pad(seq)))
        conn.execute("COMMIT")
        txns += 1
        if plain:
            continue
        r = rnd.random()
        if r < 0.02:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        elif r < 0.04:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        sync_in -= 1
        if sync_in == 0:
            txid = conn.execute("SELECT litestream_sync(10000)").fetchone()[0]
            print("ACK %d %d" % (seq, txid), flush=True)
            sync_in = rnd.randint(1, 30)
    print("DONE %d" % seq, flush=True)
    conn.close()


if __name__ == "__main__":
    main()
