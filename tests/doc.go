// Package tests holds the end-to-end tests of litestream_vfs. They drive real
// clients — the system sqlite3 shell, a C program linked with -lsqlite3
// (tests/c/client.c) and Debian's /usr/bin/python3 (tests/py/client.py) —
// against the built extension ./litestream_vfs.so, then restore the replica
// with ./bin/ltxrestore and compare the restored database with the source
// (sha256 of .dump, PRAGMA integrity_check, page size and page count).
//
// Run them with ./tests/run.sh, or after ./build.sh with
// `go test -count=1 ./tests/` (-short skips the slowest scenarios). Set
// E2E_SEED to replay a randomized workload; the seed is logged by each test.
package tests
