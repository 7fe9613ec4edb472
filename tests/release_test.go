package tests

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
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
