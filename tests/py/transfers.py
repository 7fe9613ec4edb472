"""transfers.py: the source and the reader of the follower test
(tests/follow_test.go).

Usage:
  transfers.py write EXTENSION DB_URI SECONDS SEED
      Loads EXTENSION, opens DB_URI, creates table acct with ACCOUNTS
      accounts of 1000 each unless it exists, then for SECONDS moves money
      between accounts in transactions (1-5 transfers each; now and then
      one that touches every account, making a large transaction), which
      keeps the sum at ACCOUNTS*1000, at about 100 transactions a second.
      Prints "TXNS <n>" and, from litestream_sync, "SYNCED <txid>".

  transfers.py read DB_PATH SECONDS
      Opens DB_PATH with plain sqlite3 (no extension) and, for SECONDS,
      checks again and again that the sum and count of acct are
      ACCOUNTS*1000 and ACCOUNTS, through one long-lived connection and a
      fresh one each time. Any other result prints "BAD <what>" and exits
      1; at the end "READS <n> DISTINCT <states seen>". A database that
      cannot be read yet (the follower has not restored it) is retried.

Run with Debian's /usr/bin/python3.
"""

import random
import sqlite3
import sys
import time

from client import connect, load_extension

ACCOUNTS = 200


def write(ext, uri, seconds, seed):
    rnd = random.Random(seed)
    load_extension(ext)
    conn = connect(uri)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE IF NOT EXISTS acct(id INTEGER PRIMARY KEY, bal INTEGER, note BLOB)")
    if conn.execute("SELECT count(*) FROM acct").fetchone()[0] == 0:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO acct VALUES(?, 1000, randomblob(200))", [(i,) for i in range(ACCOUNTS)])
        conn.execute("COMMIT")
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        if rnd.random() < 0.02:
            # Every account: rotate one unit around the ring.
            conn.execute("UPDATE acct SET bal = bal - 1, note = randomblob(%d)" % rnd.randint(100, 600))
            conn.execute("UPDATE acct SET bal = bal + 1")
        else:
            for _ in range(rnd.randint(1, 5)):
                a, b = rnd.randrange(ACCOUNTS), rnd.randrange(ACCOUNTS)
                x = rnd.randint(1, 50)
                conn.execute("UPDATE acct SET bal = bal - ? WHERE id = ?", (x, a))
                conn.execute("UPDATE acct SET bal = bal + ? WHERE id = ?", (x, b))
        conn.execute("COMMIT")
        n += 1
        time.sleep(0.01)
    print("TXNS %d" % n, flush=True)
    print("SYNCED %d" % conn.execute("SELECT litestream_sync(30000)").fetchone()[0], flush=True)
    conn.close()


def check(conn, what):
    n, s = conn.execute("SELECT count(*), sum(bal) FROM acct").fetchone()
    if n != ACCOUNTS or s != ACCOUNTS * 1000:
        print("BAD %s: count %s sum %s" % (what, n, s), flush=True)
        sys.exit(1)
    return conn.execute("SELECT sum(bal * id) FROM acct").fetchone()[0]


def read(path, seconds):
    deadline = time.monotonic() + seconds
    long = None
    reads, states = 0, set()
    while time.monotonic() < deadline:
        try:
            if long is None:
                long = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
            states.add(check(long, "long-lived connection"))
            fresh = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
            states.add(check(fresh, "fresh connection"))
            fresh.close()
            reads += 2
        except sqlite3.OperationalError as e:
            if "no such table" in str(e) or "unable to open" in str(e):
                long = None
                time.sleep(0.05)
                continue
            print("BAD error %s" % e, flush=True)
            sys.exit(1)
        time.sleep(0.002)
    print("READS %d DISTINCT %d" % (reads, len(states)), flush=True)


def main():
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        read(sys.argv[2], float(sys.argv[3]))


if __name__ == "__main__":
    main()
