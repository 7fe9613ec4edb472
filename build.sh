#!/usr/bin/env bash
# build.sh builds the SQLite loadable extension ./litestream_vfs.so and the
# restore tool ./bin/ltxrestore from the repository root.
#
#   ./build.sh                    stripped release build
#   ./build.sh --debug            keeps the symbols (a debugger, perf)
#   ./build.sh --no-metrics       without the Prometheus endpoint (9 MB, not 12)
#   ./build.sh install [PREFIX]   builds, then installs PREFIX/lib/litestream_vfs.so
#                                 and PREFIX/bin/ltxrestore (PREFIX: /usr/local)
#   ./build.sh wheel              builds, then a Python wheel bundling the
#                                 extension into dist/ (python/; no network)
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (install Go 1.26+ from https://go.dev/dl/)"
command -v gcc >/dev/null 2>&1 || die "gcc not found on PATH (cgo needs a C compiler: apt-get install -y gcc)"

export CGO_ENABLED=1

# ./build.sh builds stripped binaries (no symbol table or DWARF: the
# extension is loaded into other people's processes, smaller is better);
# --debug keeps the symbols for a debugger or perf; --no-metrics leaves the
# Prometheus endpoint out (client_golang and protobuf: 3 MB of the 12).
strip="-s -w"
tags=""
install=""
wheel=""
usage="usage: ./build.sh [--debug] [--no-metrics] [install [PREFIX] | wheel]"
while [ $# -gt 0 ]; do
	case "$1" in
	--debug) strip="" ;;
	--no-metrics) tags="nometrics" ;;
	install)
		if [ $# -ge 2 ]; then
			[ -n "$2" ] || die "install: PREFIX is empty ($usage)"
			install="$2"
			shift
		else
			install=/usr/local
		fi
		# Relative to where build.sh was run from.
		case "$install" in /*) ;; *) install="$caller/$install" ;; esac
		[ $# -eq 1 ] || die "$usage"
		;;
	wheel) wheel=1; [ $# -eq 1 ] || die "$usage" ;;
	*) die "$usage" ;;
	esac
	shift
done
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
ldflags="$strip -X github.com/litestream-vfs/litestream_vfs/internal/version.Version=$version"

echo "build.sh: building litestream_vfs.so ($version)"
# Built under a temporary name and renamed into place: a process that has
# the old file loaded keeps its (unlinked) copy instead of seeing it
# rewritten underneath (SIGBUS).
go build -trimpath -tags "$tags" -buildmode=c-shared -ldflags "$ldflags" -o litestream_vfs.so.tmp ./extension
mv -f litestream_vfs.so.tmp litestream_vfs.so
# c-shared also writes a C header for the exported Go functions; nobody needs it.
rm -f litestream_vfs.h litestream_vfs.so.h litestream_vfs.so.tmp.h

echo "build.sh: building bin/ltxrestore"
mkdir -p bin
# ltxrestore -follow writes pages through SQLite's sqlite_dbpage table,
# which the bundled SQLite of go-sqlite3 compiles only when asked.
CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -DSQLITE_ENABLE_DBPAGE_VTAB" \
	go build -trimpath -ldflags "$ldflags" -o bin/ltxrestore.tmp ./cmd/ltxrestore
mv -f bin/ltxrestore.tmp bin/ltxrestore

echo "build.sh: ok (./litestream_vfs.so $(( $(stat -c %s litestream_vfs.so) / 1024 )) KiB, ./bin/ltxrestore $(( $(stat -c %s bin/ltxrestore) / 1024 )) KiB)"

if [ -n "$wheel" ]; then
	py=/usr/bin/python3
	[ -x "$py" ] || py=python3
	{ "$py" -c 'import setuptools, wheel' && "$py" -m pip --version; } >/dev/null 2>&1 ||
		die "wheel: $py lacks pip, setuptools or wheel (Debian: apt-get install -y python3-pip python3-setuptools python3-wheel)"
	stage="$(mktemp -d)"
	trap 'rm -rf "$stage"' EXIT
	cp -R python/. "$stage/"
	cp litestream_vfs.so "$stage/litestream_vfs/litestream_vfs.so"
	# PEP 440 from git describe: v1.2.3-4-gabc-dirty -> 1.2.3.post4+gabc.dirty,
	# an untagged abc-dirty -> 0.0.0+abc.dirty.
	"$py" - "$version" >"$stage/litestream_vfs/VERSION" <<'PY'
import re, sys
d = sys.argv[1]
m = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:-(\d+)-g([0-9a-f]+))?(-dirty)?", d)
if m:
    v = m[1] + (".post" + m[2] if m[2] else "")
    local = ".".join(x for x in ["g" + m[3] if m[3] else "", "dirty" if m[4] else ""] if x)
else:
    v, local = "0.0.0", re.sub(r"[^a-z0-9]+", ".", d.lower()).strip(".") or "unknown"
print(v + ("+" + local if local else ""))
PY
	mkdir -p dist
	# One wheel in dist/, so `pip install dist/litestream_vfs-*.whl` has one
	# to take (two versions made pip fail: ResolutionImpossible).
	rm -f dist/litestream_vfs-*.whl
	"$py" -m pip wheel --quiet --no-build-isolation --no-deps --no-index -w dist "$stage" ||
		die "wheel: pip wheel failed"
	echo "build.sh: wheel $(ls -t dist/litestream_vfs-*.whl | head -1) (version $(cat "$stage/litestream_vfs/VERSION"))"
	exit 0
fi

[ -n "$install" ] || exit 0
# install: the same rename into place, so a running process keeps its copy.
mkdir -p "$install/lib" "$install/bin" || die "install: cannot create $install/lib and $install/bin"
install -m 0755 litestream_vfs.so "$install/lib/.litestream_vfs.so.tmp" && mv -f "$install/lib/.litestream_vfs.so.tmp" "$install/lib/litestream_vfs.so" ||
	die "install: cannot write $install/lib/litestream_vfs.so"
install -m 0755 bin/ltxrestore "$install/bin/.ltxrestore.tmp" && mv -f "$install/bin/.ltxrestore.tmp" "$install/bin/ltxrestore" ||
	die "install: cannot write $install/bin/ltxrestore"
echo "build.sh: installed $install/lib/litestream_vfs.so and $install/bin/ltxrestore"
# `.load litestream_vfs` (no path) finds the library the way dlopen does:
# LD_LIBRARY_PATH, the ld.so cache, the system directories. ldconfig does
# not help: its cache takes only lib*.so files (it was run, and loading by
# name still failed; found by an attack). So check it, with the sqlite3
# shell if there is one, and say what to export when it does not.
found=""
if command -v sqlite3 >/dev/null 2>&1; then
	found=$(cd / && echo "SELECT litestream_version();" | sqlite3 -cmd ".load litestream_vfs" 2>/dev/null || true)
fi
if [ "$found" = "$version" ]; then
	echo "build.sh: .load litestream_vfs finds it by name"
else
	printf 'build.sh: to load it by name (.load litestream_vfs): export LD_LIBRARY_PATH=%q\n' "$install/lib"
fi
