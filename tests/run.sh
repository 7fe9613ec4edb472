#!/usr/bin/env bash
# tests/run.sh: THE test command. Installs the system clients the end-to-end
# tests drive (when missing), checks formatting, vets, builds, then runs every
# Go test. Its output ends with go test's summary; its status is go test's.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { echo "tests/run.sh: $*" >&2; exit 1; }

step "system clients: /usr/bin/sqlite3, sqlite3.h + libsqlite3 (libsqlite3-dev), /usr/bin/python3 (with venv, pip, setuptools, wheel)"
missing=()
[ -x /usr/bin/sqlite3 ] || missing+=(sqlite3)
# libsqlite3-dev: sqlite3.h and the libsqlite3.so link for gcc ... -lsqlite3.
dev_status=ok
if command -v dpkg-query >/dev/null 2>&1; then
	dev_status=$(dpkg-query -W -f='${Status}' libsqlite3-dev 2>/dev/null || true)
	[ "$dev_status" = "install ok installed" ] && dev_status=ok
fi
if [ ! -f /usr/include/sqlite3.h ] || [ "$dev_status" != ok ]; then
	missing+=(libsqlite3-dev)
fi
[ -x /usr/bin/python3 ] || missing+=(python3)
# The wheel test (TestPythonWheel): build a wheel without network and install
# it into a venv of Debian's python3.
if ! { /usr/bin/python3 -c 'import setuptools, wheel, ensurepip' && /usr/bin/python3 -m pip --version; } >/dev/null 2>&1; then
	missing+=(python3-venv python3-pip python3-setuptools python3-wheel)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	echo "installing: ${missing[*]}"
	command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root or install them"
		sudo=(sudo -n)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update </dev/null || die "apt-get update failed"
	"${sudo[@]}" apt-get install -y "${missing[@]}" </dev/null || die "apt-get install ${missing[*]} failed"
fi
[ -x /usr/bin/sqlite3 ] && [ -f /usr/include/sqlite3.h ] && [ -x /usr/bin/python3 ] ||
	die "system clients still missing after install"
/usr/bin/python3 -c 'import sqlite3; sqlite3.connect(":memory:").enable_load_extension(True)' ||
	die "/usr/bin/python3's sqlite3 module cannot load extensions"
echo "sqlite3 $(/usr/bin/sqlite3 -version | cut -d' ' -f1), $(/usr/bin/python3 --version), $(go version)"

step "gofmt"
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path './.cache/*' -print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files are not formatted (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo ok

step "go vet ./..."
go vet ./...

step "./build.sh"
./build.sh

step "go test -race -short (pure-Go packages)"
go test -race -short -count=1 ./vfs/... ./replicator/... ./replica/... ./restore/...

step "fuzz: every target a few seconds (FUZZ_TIME, default 3s)"
# Each target's seed corpus also runs in the full go test below; here the
# fuzzer mutates it. A soak: FUZZ_TIME=10m tests/run.sh.
grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.cache/' | sort | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "$pkg $target"
		# Go 1.26's fuzz coordinator can fail a target with a bare "context
		# deadline exceeded" at the end of -fuzztime, having found nothing
		# (go.dev/issue/75804, fixed in 1.27): such a run, and only such a
		# run (no failing input written), is tried once more.
		for try in 1 2; do
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZ_TIME:-3s}" "$pkg" >/tmp/fuzz.$$ 2>&1; then
				break
			fi
			if [ "$try" = 1 ] && grep -q 'context deadline exceeded' /tmp/fuzz.$$ && ! grep -q 'Failing input written' /tmp/fuzz.$$; then
				echo "$target: the fuzz coordinator's deadline race (go.dev/issue/75804), nothing found; once more"
				continue
			fi
			cat /tmp/fuzz.$$
			rm -f /tmp/fuzz.$$
			die "fuzz target $target in $pkg failed"
		done
	done
done
rm -f /tmp/fuzz.$$

step "go test -count=1 ./..."
# As build.sh builds ltxrestore: with sqlite_dbpage (ltxrestore -follow).
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -DSQLITE_ENABLE_DBPAGE_VTAB"
exec go test -count=1 -timeout 40m ./...
