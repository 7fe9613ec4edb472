"""ticker.py: the source of the follower benchmark (tests/bench/followbench).

Usage: ticker.py EXTENSION DB_URI RATE SECONDS

Loads EXTENSION, opens DB_URI and, for SECONDS, commits one row a
transaction to table tick(id, ts) at RATE transactions a second, ts being
the wall-clock time (time.time()) just before the COMMIT. Prints "DONE <n>".
Run with Debian's /usr/bin/python3.
"""

import sys
import time

from client import connect, load_extension


def main():
    ext, uri, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    load_extension(ext)
    conn = connect(uri)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE IF NOT EXISTS tick(id INTEGER PRIMARY KEY, ts REAL, pad BLOB)")
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO tick(ts, pad) VALUES(?, randomblob(100))", (time.time(),))
        conn.execute("COMMIT")
        n += 1
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    conn.execute("SELECT litestream_sync(30000)").fetchall()
    print("DONE %d" % n, flush=True)
    conn.close()


if __name__ == "__main__":
    main()
