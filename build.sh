#!/usr/bin/env bash
# build.sh builds the SQLite loadable extension ./litestream_vfs.so and the
# restore tool ./bin/ltxrestore from the repository root.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (install Go 1.26+ from https://go.dev/dl/)"
command -v gcc >/dev/null 2>&1 || die "gcc not found on PATH (cgo needs a C compiler: apt-get install -y gcc)"

export CGO_ENABLED=1

echo "build.sh: building litestream_vfs.so"
go build -buildmode=c-shared -o litestream_vfs.so ./extension
# c-shared also writes a C header for the exported Go functions; nobody needs it.
rm -f litestream_vfs.h

echo "build.sh: building bin/ltxrestore"
mkdir -p bin
go build -o bin/ltxrestore ./cmd/ltxrestore

echo "build.sh: ok (./litestream_vfs.so, ./bin/ltxrestore)"
