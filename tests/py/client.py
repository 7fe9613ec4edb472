"""client.py: a Python client for the end-to-end tests.

Run with Debian's /usr/bin/python3 (its sqlite3 module has
enable_load_extension; a pyenv build may not).

Usage:
  client.py EXTENSION DB_URI
      Loads EXTENSION on a :memory: connection (then closes it: the extension
      must stay loaded) and opens DB_URI (a file: URI naming vfs=litestream).
      Prints "OPENED <main db file>", then reads SQL from stdin one line at a
      time, like tests/c/client.c: each line's statements run in order, rows
      print "|"-separated (NULL empty, blobs X'hex'), and the line's output
      ends with "OK" or "ERR <code> <msg>". A line starting with "@N " runs on
      connection N (0, 1, ...; opened on first use), so one process can write
      through several connections in turn. A line ".exit" leaves by
      sys.exit(0) with the connections open (interpreter shutdown), a line
      ".os_exit" by os._exit(0).

  client.py EXTENSION DB_URI ckpt-race SEED TXNS SECONDS
      One thread writes TXNS random transactions on connection A while the
      main thread runs PRAGMA wal_checkpoint(TRUNCATE|RESTART|PASSIVE) in a
      loop on connection B until the writer is done (bounded by count and by
      SECONDS). Then prints "WROTE n", "CKPT n busy=b errors=e nonempty=d"
      (d: checkpoints that completed on a non-empty WAL) and
      "TXID <litestream_sync(60000)>". Exit 5 if the writer did not finish.

  client.py EXTENSION DB_URI fork SEED
      Writes, forks a child that writes one row through the VFS and exits,
      writes more, syncs (see fork_mode).

  client.py EXTENSION DB_URI fork SEED idle
      The same, but the parent writes nothing after the fork: it polls
      litestream_status() until the state is ok (at most 20 s), prints
      "PARENT-STATUS <json>" and leaves with os._exit(0) (no exit flush),
      so whatever the replica holds of the child's rows, the parent's
      replicator shipped on its own.

  client.py EXTENSION DB_URI writer WHO TXNS SECONDS [THREADS]
      Inserts rows (who, n) into table mp, one transaction each, until TXNS
      are written or SECONDS pass; then prints "WROTE n",
      "TXID <litestream_sync(60000)>" and "STATUS <litestream_status()>".
      With THREADS > 1, that many threads do so at once, each on its own
      connection (WHO gets "-<thread>"), each printing its own lines.

Exit codes: 2 load failure ("LOADFAIL <msg>"), 3 open failure
("OPENFAIL <code> <msg>").
"""

import os
import random
import sqlite3
import sys
import threading
import time


def err_code(e):
    return getattr(e, "sqlite_errorcode", 1)


def load_extension(path):
    try:
        mem = sqlite3.connect(":memory:")
        mem.enable_load_extension(True)
        mem.load_extension(path)
        mem.close()
    except (sqlite3.Error, AttributeError) as e:
        print("LOADFAIL %s" % e, flush=True)
        sys.exit(2)


def connect(uri):
    conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                           check_same_thread=False, timeout=10.0)
    return conn


def split_statements(line):
    """Split line into complete SQL statements (quote- and comment-aware)."""
    out = []
    start = 0
    pos = line.find(";")
    while pos >= 0:
        chunk = line[start:pos + 1]
        if sqlite3.complete_statement(chunk):
            if chunk.strip() != ";":
                out.append(chunk)
            start = pos + 1
        pos = line.find(";", pos + 1)
    rest = line[start:]
    if rest.strip():
        out.append(rest)
    return out


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "X'%s'" % bytes(v).hex()
    return str(v)


def run_line(conn, line):
    for stmt in split_statements(line):
        try:
            cur = conn.execute(stmt)
            for row in cur.fetchall():
                print("|".join(fmt(v) for v in row))
        except sqlite3.Error as e:
            print("ERR %d %s" % (err_code(e), e))
            return
    print("OK")


def main_file(conn):
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return row[2]
    return ""


def lines_mode(uri):
    conns = {}

    def get(n):
        if n not in conns:
            conns[n] = connect(uri)
        return conns[n]

    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        if line == ".exit":  # interpreter shutdown, connections left open
            sys.exit(0)
        if line == ".os_exit":  # no shutdown at all: no atexit handler runs
            sys.stdout.flush()
            os._exit(0)
        n = 0
        if line.startswith("@"):
            head, _, line = line.partition(" ")
            n = int(head[1:])
        try:
            conn = get(n)
        except sqlite3.Error as e:
            print("ERR %d %s" % (err_code(e), e), flush=True)
            continue
        run_line(conn, line)
        sys.stdout.flush()
    for conn in conns.values():
        conn.close()


def ckpt_race(uri, seed, txns, seconds):
    a = connect(uri)
    # No busy handler on the checkpointer: a checkpoint that can't finish
    # returns at once, so it runs many times between the writer's commits.
    b = sqlite3.connect(uri, uri=True, isolation_level=None,
                        check_same_thread=False, timeout=0)
    sys.setswitchinterval(0.0002)
    a.execute("PRAGMA journal_mode=WAL").fetchall()
    a.execute("CREATE TABLE IF NOT EXISTS race(id INTEGER PRIMARY KEY, s TEXT, v BLOB)")
    deadline = time.monotonic() + seconds
    state = {"wrote": 0, "error": None}

    def writer():
        rnd = random.Random(seed)
        try:
            for i in range(txns):
                if time.monotonic() > deadline:
                    return
                for attempt in range(100):
                    try:
                        a.execute("BEGIN IMMEDIATE")
                        for _ in range(rnd.randint(1, 5)):
                            a.execute("INSERT INTO race(s, v) VALUES(?, ?)",
                                      ("t%d-%d" % (i, rnd.randint(0, 1 << 30)),
                                       rnd.randbytes(rnd.randint(10, 3000))))
                        if rnd.random() < 0.2:
                            a.execute("UPDATE race SET v = ? WHERE id % 7 = ?",
                                      (rnd.randbytes(rnd.randint(1, 200)), rnd.randint(0, 6)))
                        if rnd.random() < 0.1:
                            a.execute("DELETE FROM race WHERE id % 11 = ?", (rnd.randint(0, 10),))
                        a.execute("COMMIT")
                        break
                    except sqlite3.OperationalError as e:
                        if a.in_transaction:
                            a.execute("ROLLBACK")
                        if "locked" not in str(e) and "busy" not in str(e):
                            raise
                        if attempt == 99 or time.monotonic() > deadline:
                            raise
                state["wrote"] += 1
        except Exception as e:  # reported by the main thread
            state["error"] = e

    t = threading.Thread(target=writer)
    t.start()
    modes = ["TRUNCATE", "RESTART", "PASSIVE"]
    n = busy = errors = done = 0
    while t.is_alive() and n < 1000000 and time.monotonic() < deadline:
        try:
            row = b.execute("PRAGMA wal_checkpoint(%s)" % modes[n % 3]).fetchone()
            if row and row[0]:
                busy += 1
            elif row and row[1] > 0:
                done += 1
        except sqlite3.OperationalError:
            errors += 1
        n += 1
    t.join(timeout=max(1.0, deadline - time.monotonic() + 30))
    print("WROTE %d" % state["wrote"])
    print("CKPT %d busy=%d errors=%d nonempty=%d" % (n, busy, errors, done))
    if state["error"] is not None:
        print("WRITER-ERROR %s" % state["error"])
    txid = a.execute("SELECT litestream_sync(60000)").fetchone()[0]
    print("TXID %s" % txid, flush=True)
    b.close()
    a.close()
    if t.is_alive() or state["wrote"] != txns:
        sys.exit(5)


def writer_mode(uri, who, txns, seconds, threads=1):
    out = threading.Lock()

    def say(line):
        with out:
            print(line, flush=True)

    def write(name):
        c = connect(uri)
        c.execute("PRAGMA journal_mode=WAL").fetchall()
        c.execute("CREATE TABLE IF NOT EXISTS mp(who TEXT, n INTEGER, pad BLOB)")
        deadline = time.monotonic() + seconds
        n = 0
        while n < txns and time.monotonic() < deadline:
            try:
                c.execute("INSERT INTO mp VALUES(?, ?, randomblob(abs(random()) % 300))", (name, n))
            except sqlite3.OperationalError as e:
                # Many tight writer loops can starve one past its busy
                # timeout (SQLite's busy handler sleeps); try again.
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                continue
            n += 1
        say("WROTE %d" % n)
        say("TXID %s" % c.execute("SELECT litestream_sync(60000)").fetchone()[0])
        say("STATUS %s" % c.execute("SELECT litestream_status()").fetchone()[0])
        c.close()

    if threads <= 1:
        write(who)
        return
    errors = []

    def run(i):
        try:
            write("%s-%d" % (who, i))
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=seconds + 120)
    if errors or any(t.is_alive() for t in ts):
        say("WRITER-ERROR %s" % errors)
        sys.exit(6)


def fork_mode(uri, seed, idle=False):
    """Write, fork a child that writes through the VFS and exits, write more
    in the parent, sync. Prints "CHILD <status>" (or "CHILD-HUNG" if the child
    did not exit within 30 s; it is then killed) and "TXID <n>"."""
    import signal
    rnd = random.Random(seed)
    a = connect(uri)
    a.execute("PRAGMA journal_mode=WAL").fetchall()
    a.execute("CREATE TABLE IF NOT EXISTS forked(id INTEGER PRIMARY KEY, who TEXT, v BLOB)")
    for i in range(20):
        a.execute("INSERT INTO forked(who, v) VALUES('parent-before', ?)", (rnd.randbytes(rnd.randint(1, 4000)),))
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            c = connect(uri)
            for i in range(30 if idle else 1):
                c.execute("INSERT INTO forked(who, v) VALUES('child', randomblob(100))")
            try:
                c.execute("SELECT litestream_sync(5000)").fetchone()
                print("CHILD-SYNC ok", flush=True)
            except sqlite3.Error as e:
                print("CHILD-SYNC-ERR %s" % e, flush=True)
            c.close()
        except BaseException as e:
            print("CHILD-ERROR %s" % e, flush=True)
            code = 7
        os._exit(code)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        time.sleep(0.01)  # poll interval
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("CHILD-HUNG", flush=True)
    else:
        print("CHILD %d" % os.waitstatus_to_exitcode(status), flush=True)
    if idle:
        st = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = a.execute("SELECT litestream_status()").fetchone()[0]
            if '"state":"ok"' in st:
                break
            time.sleep(0.01)  # poll interval
        print("PARENT-STATUS %s" % st, flush=True)
        os._exit(0)
    for i in range(20):
        a.execute("INSERT INTO forked(who, v) VALUES('parent-after', ?)", (rnd.randbytes(rnd.randint(1, 4000)),))
    txid = a.execute("SELECT litestream_sync(60000)").fetchone()[0]
    print("TXID %s" % txid, flush=True)
    a.close()


def main():
    if len(sys.argv) < 3:
        print("usage: client.py EXTENSION DB_URI [ckpt-race SEED TXNS SECONDS]", file=sys.stderr)
        sys.exit(2)
    ext, uri = sys.argv[1], sys.argv[2]
    load_extension(ext)
    try:
        conn = connect(uri)
        name = main_file(conn)
    except sqlite3.Error as e:
        print("OPENFAIL %d %s" % (err_code(e), e), flush=True)
        sys.exit(3)
    print("OPENED %s" % name, flush=True)
    if len(sys.argv) > 3 and sys.argv[3] == "fork":
        conn.close()
        fork_mode(uri, int(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "idle")
        return
    if len(sys.argv) > 3 and sys.argv[3] == "writer":
        conn.close()
        writer_mode(uri, sys.argv[4], int(sys.argv[5]), float(sys.argv[6]),
                    int(sys.argv[7]) if len(sys.argv) > 7 else 1)
        return
    if len(sys.argv) > 3 and sys.argv[3] == "ckpt-race":
        conn.close()
        ckpt_race(uri, int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
        return
    conn.close()
    lines_mode(uri)


if __name__ == "__main__":
    main()
