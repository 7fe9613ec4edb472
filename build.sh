#!/usr/bin/env bash
# build.sh builds the SQLite loadable extension ./litestream_vfs.so and the
# restore tool ./bin/ltxrestore from the repository root.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (install Go 1.26+ from https://go.dev/dl/)"
command -v gcc >/dev/null 2>&1 || die "gcc not found on PATH (cgo needs a C compiler: apt-get install -y gcc)"

export CGO_ENABLED=1

# ./build.sh builds stripped binaries (no symbol table or DWARF: the
# extension is loaded into other people's processes, smaller is better);
# ./build.sh --debug keeps the symbols for a debugger or perf.
strip="-s -w"
case "${1:-}" in
"") ;;
--debug) strip="" ;;
*) die "usage: ./build.sh [--debug]" ;;
esac
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
ldflags="$strip -X github.com/litestream-vfs/litestream_vfs/internal/version.Version=$version"

echo "build.sh: building litestream_vfs.so ($version)"
go build -trimpath -buildmode=c-shared -ldflags "$ldflags" -o litestream_vfs.so ./extension
# c-shared also writes a C header for the exported Go functions; nobody needs it.
rm -f litestream_vfs.h

echo "build.sh: building bin/ltxrestore"
mkdir -p bin
go build -trimpath -ldflags "$ldflags" -o bin/ltxrestore ./cmd/ltxrestore

echo "build.sh: ok (./litestream_vfs.so $(( $(stat -c %s litestream_vfs.so) / 1024 )) KiB, ./bin/ltxrestore $(( $(stat -c %s bin/ltxrestore) / 1024 )) KiB)"
