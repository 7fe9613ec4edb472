package tests

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReleaseBuild: ./build.sh builds a stripped extension that reports
// the git describe of the build (litestream_version(), the status's
// version, ltxrestore -version), and a second copy of the extension
// loaded into the same process is refused, naming both versions, not a
// crash.
func TestReleaseBuild(t *testing.T) {
	out, err := exec.Command("git", "-C", filepath.Dir(extPath), "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	want := strings.TrimSpace(string(out))
	f, err := elf.Open(extPath + ".so")
	if err != nil {
		t.Fatal(err)
	}
	if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
		t.Errorf("%s.so keeps its symbol table or DWARF: ./build.sh strips them (./build.sh --debug keeps them)", extPath)
	}
	f.Close()
	if st, err := os.Stat(extPath + ".so"); err == nil {
		t.Logf("extension: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
	}

	_, db := newDB(t)
	lines := shellWrite(t, db, dbURI(db), []string{"SELECT litestream_version();", "SELECT json_extract(litestream_status(), '$.version');"}, shellOpts{})
	if len(lines) != 2 || lines[0] != want || lines[1] != want {
		t.Errorf("litestream_version() and the status's version: %q, want %q (git describe)", lines, want)
	}
	if r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "-version"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "ltxrestore "+want {
		t.Errorf("ltxrestore -version: %s, want %q", r, "ltxrestore "+want)
	}

	// Another copy of the .so, as a second install would be.
	other := filepath.Join(t.TempDir(), "other_litestream_vfs.so")
	b, err := os.ReadFile(extPath + ".so")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, t.TempDir(), nil, strings.NewReader(".load "+extPath+"\n.load "+strings.TrimSuffix(other, ".so")+"\nSELECT 'alive';\n"), sqlite3Bin)
	if !strings.Contains(r.Stderr, "another copy of the extension (version "+want+") is loaded in this process") || !strings.Contains(r.Stdout, "alive") {
		t.Errorf("a second copy of the extension: want it refused, naming the version, and the shell alive\n%s", r)
	}
}

// TestInstall: ./build.sh install PREFIX puts the extension in PREFIX/lib
// and ltxrestore in PREFIX/bin, and with PREFIX/lib on LD_LIBRARY_PATH
// the spelling `.load litestream_vfs` (no path) works in the sqlite3
// shell, C and Python, from a directory that has no copy of it.
func TestInstall(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "prefix")
	r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "build.sh"), "install", prefix)
	if r.Code != 0 || !strings.Contains(r.Stdout, "installed "+prefix+"/lib/litestream_vfs.so") {
		t.Fatalf("./build.sh install %s\n%s", prefix, r)
	}
	// Not on the loader's path: it says what to export (it claimed an
	// ldconfig made /usr/local work, which it cannot: found by an attack).
	if !strings.Contains(r.Stdout, "export LD_LIBRARY_PATH="+prefix+"/lib") {
		t.Errorf("./build.sh install %s: want the LD_LIBRARY_PATH to export\n%s", prefix, r)
	}
	for _, f := range []string{"lib/litestream_vfs.so", "bin/ltxrestore"} {
		if st, err := os.Stat(filepath.Join(prefix, f)); err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("%s/%s after install: %v", prefix, f, err)
		}
	}
	// An empty PREFIX is refused (it installed into /usr/local); a
	// relative one is relative to where build.sh was run from.
	if r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "build.sh"), "install", ""); r.Code == 0 || !strings.Contains(r.Stderr, "PREFIX is empty") {
		t.Errorf("./build.sh install \"\": want it refused\n%s", r)
	}
	cwd := t.TempDir()
	if r := runCmd(t, cwd, nil, nil, filepath.Join(repoRoot, "build.sh"), "install", "rel"); r.Code != 0 || !fileExists(filepath.Join(cwd, "rel", "lib", "litestream_vfs.so")) {
		t.Errorf("./build.sh install rel from %s: want %s/rel/lib/litestream_vfs.so\n%s", cwd, cwd, r)
	}
	env := []string{"LD_LIBRARY_PATH=" + filepath.Join(prefix, "lib")}
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	sql := []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE IF NOT EXISTS t(x);", "INSERT INTO t VALUES(1);", syncLine(20000)}

	shell := runCmd(t, dir, env, strings.NewReader(strings.Join(sql, "\n")+"\n"), sqlite3Bin, "-cmd", ".load litestream_vfs", "-cmd", ".open "+dbURI(db))
	requireNoErr(t, "sqlite3 shell, .load litestream_vfs", splitLines(shell.Stdout), shell)
	c := runCmd(t, dir, env, strings.NewReader(strings.Join(sql[1:], "\n")+"\n"), cClientPath, "litestream_vfs", dbURI(db))
	requireNoErr(t, "C, sqlite3_load_extension(\"litestream_vfs\")", splitLines(c.Stdout), c)
	py := runCmd(t, dir, env, strings.NewReader(strings.Join(sql[1:], "\n")+"\n"), python3Bin, pyClientPath, "litestream_vfs", dbURI(db))
	requireNoErr(t, "python, load_extension(\"litestream_vfs\")", splitLines(py.Stdout), py)

	// Without the library path the bare name is not found: the test
	// above did load the installed copy.
	bare := runCmd(t, dir, nil, strings.NewReader("SELECT 1;\n"), sqlite3Bin, "-cmd", ".load litestream_vfs")
	if !strings.Contains(bare.Stderr, "litestream_vfs.so: cannot open shared object file") {
		t.Errorf(".load litestream_vfs without LD_LIBRARY_PATH: want it not found\n%s", bare)
	}

	out := filepath.Join(t.TempDir(), "restored.db")
	if r := runCmd(t, dir, nil, nil, filepath.Join(prefix, "bin", "ltxrestore"), "-o", out, db+"-replica"); r.Code != 0 {
		t.Fatalf("installed ltxrestore\n%s", r)
	}
	if got := sqlitePlain(t, out, "SELECT count(*) FROM t;"); strings.TrimSpace(got) != "3" {
		t.Errorf("restored rows: %q, want 3 (one from each client)", got)
	}
}

// TestPythonWheel: ./build.sh wheel builds dist/litestream_vfs-*.whl with
// the extension inside; installed into a venv made from Debian's python3
// (no network: --no-index), `litestream_vfs.load(conn)` registers the VFS,
// a database written through it replicates, and ltxrestore restores it.
func TestPythonWheel(t *testing.T) {
	r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "build.sh"), "wheel")
	if r.Code != 0 {
		t.Fatalf("./build.sh wheel\n%s", r)
	}
	m := regexp.MustCompile(`wheel (dist/litestream_vfs-\S+\.whl) \(version (\S+)\)`).FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("./build.sh wheel printed no wheel\n%s", r)
	}
	whl, version := filepath.Join(repoRoot, m[1]), m[2]
	venv := filepath.Join(t.TempDir(), "venv")
	if r := runCmd(t, repoRoot, nil, nil, python3Bin, "-m", "venv", venv); r.Code != 0 {
		t.Fatalf("python3 -m venv\n%s", r)
	}
	py := filepath.Join(venv, "bin", "python")
	if r := runCmd(t, repoRoot, nil, nil, py, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", whl); r.Code != 0 {
		t.Fatalf("pip install %s\n%s", whl, r)
	}
	dir := t.TempDir()
	script := `
import os, sqlite3, sys, litestream_vfs
assert os.path.exists(litestream_vfs.path() + ".so"), litestream_vfs.path()
assert litestream_vfs.path().startswith(sys.prefix), (litestream_vfs.path(), sys.prefix)
mem = sqlite3.connect(":memory:")
litestream_vfs.load(mem)
conn = sqlite3.connect("file:app.db?vfs=litestream", uri=True)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE t(x)")
conn.executemany("INSERT INTO t VALUES(?)", [(i,) for i in range(100)])
conn.commit()
print(litestream_vfs.__version__)
print(conn.execute("SELECT litestream_version()").fetchone()[0])
print(conn.execute("SELECT litestream_sync(20000)").fetchone()[0])
`
	r = runCmd(t, dir, nil, nil, py, "-c", script)
	lines := splitLines(r.Stdout)
	if r.Code != 0 || len(lines) != 3 {
		t.Fatalf("python with the wheel installed\n%s", r)
	}
	if lines[0] != version {
		t.Errorf("litestream_vfs.__version__ %q, want %q (build.sh's PEP 440 form of git describe)", lines[0], version)
	}
	if !strings.Contains(version, strings.TrimPrefix(strings.SplitN(lines[1], "-", 2)[0], "v")) {
		t.Errorf("wheel version %q does not carry the extension's %q", version, lines[1])
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if r := runCmd(t, dir, nil, nil, ltxrestorePath, "-o", out, filepath.Join(dir, "app.db-replica")); r.Code != 0 {
		t.Fatalf("ltxrestore\n%s", r)
	}
	if got := strings.TrimSpace(sqlitePlain(t, out, "SELECT count(*) FROM t;")); got != "100" {
		t.Errorf("restored rows %q, want 100", got)
	}
}

// TestNoMetricsBuild: ./build.sh --no-metrics builds the extension without
// the Prometheus endpoint (client_golang and protobuf), within issue 12's
// 10 MB; LITESTREAM_METRICS_ADDR then logs that this build has none, and
// replication works. The default build is restored afterwards.
func TestNoMetricsBuild(t *testing.T) {
	build := filepath.Join(repoRoot, "build.sh")
	t.Cleanup(func() {
		if r := runCmd(t, repoRoot, nil, nil, build); r.Code != 0 {
			t.Errorf("./build.sh (restoring the default build)\n%s", r)
		}
	})
	if r := runCmd(t, repoRoot, nil, nil, build, "--no-metrics"); r.Code != 0 {
		t.Fatalf("./build.sh --no-metrics\n%s", r)
	}
	st, err := os.Stat(extPath + ".so")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("extension without metrics: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
	if st.Size() > 10_000_000 {
		t.Errorf("./build.sh --no-metrics: %d bytes, want at most 10 MB", st.Size())
	}
	_, db := newDB(t)
	r := runShell(t, filepath.Dir(db), dbURI(db), strings.Join([]string{"PRAGMA journal_mode=WAL;", "CREATE TABLE t(x);", "INSERT INTO t VALUES (1);", syncLine(20000)}, "\n")+"\n",
		shellOpts{Env: []string{"LITESTREAM_METRICS_ADDR=127.0.0.1:1"}})
	requireNoErr(t, "sqlite3 shell", splitLines(r.Stdout), r)
	if !strings.Contains(r.Stderr, "no metrics endpoint") || !strings.Contains(r.Stderr, "--no-metrics") {
		t.Errorf("LITESTREAM_METRICS_ADDR with a build without metrics: want a warning naming --no-metrics\n%s", r)
	}
	verifyRestore(t, db, fileURL(defaultReplica(db)))
}
