"""litestream_vfs: continuous replication of SQLite databases to S3 or a
directory, from inside the process (a SQLite loadable extension).

    import sqlite3, litestream_vfs

    mem = sqlite3.connect(":memory:")
    litestream_vfs.load(mem)          # once per process: registers the VFS
    conn = sqlite3.connect("file:app.db?vfs=litestream", uri=True)
    conn.execute("PRAGMA journal_mode=WAL")

Configuration is by URI parameters and LITESTREAM_* environment variables,
as documented in the project's README and docs/configuration.md.
"""

import os

__all__ = ["load", "path", "__version__"]

_here = os.path.dirname(os.path.abspath(__file__))

try:
    with open(os.path.join(_here, "VERSION")) as _f:
        __version__ = _f.read().strip()  # written by build.sh wheel
except OSError:
    __version__ = "0+unknown"  # the source tree, not a built wheel


def path():
    """The bundled extension's path without its .so suffix, as SQLite
    names loadable extensions (`.load PATH` in the shell,
    sqlite3_load_extension, Connection.load_extension)."""
    return os.path.join(_here, "litestream_vfs")


def load(conn):
    """Load the extension through conn, a sqlite3.Connection. The VFS it
    registers stays for the life of the process; open databases with
    vfs=litestream afterwards. Extension loading is left disabled again.
    Raises sqlite3 errors as Connection.load_extension does (a Python
    built without extension loading has no enable_load_extension)."""
    conn.enable_load_extension(True)
    try:
        conn.load_extension(path())
    finally:
        conn.enable_load_extension(False)
