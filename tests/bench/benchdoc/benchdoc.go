// Package benchdoc is what the benchmark drivers under tests/bench share:
// the machine facts their tables start with, and the replacement of their
// generated section of docs/performance.md.
package benchdoc

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

var modelRE = regexp.MustCompile(`model name\s*:\s*(.*)`)

// Machine describes this machine and the versions a table was measured
// with.
func Machine() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := modelRE.FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	sq, _ := exec.Command("sqlite3", "-version").Output()
	return fmt.Sprintf("%s, %d CPUs, %s, SQLite %s, Litestream 0.5.16, MinIO %s",
		cpu, runtime.NumCPU(), runtime.Version(), strings.Fields(string(sq) + " ?")[0], s3test.MinioVersion)
}

// WriteSection replaces the text between "<!-- name:begin -->" and
// "<!-- name:end -->" in the file at path with table, or appends the
// marked section if the file has none.
func WriteSection(path, name, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	section := begin + "\n" + table + end
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	} else {
		s = s[:i] + section + s[j+len(end):]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// Main is a driver's main: it parses -smoke and -write, runs run in the
// repository root (the working directory) and prints its table; -write
// puts the table into the section of docs/performance.md. run cleans up
// after itself before it returns, error or not (a log.Fatal inside it
// would skip its deferred cleanup: a MinIO left running).
func Main(name, section string, run func(root string, smoke bool) (string, error)) {
	smoke := flag.Bool("smoke", false, "a short run that checks every part works (its figures mean little)")
	write := flag.Bool("write", false, "replace the generated section of docs/performance.md")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	root, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	table, err := run(root, *smoke)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(table)
	if *write {
		if err := WriteSection(filepath.Join(root, "docs", "performance.md"), section, table); err != nil {
			log.Fatal(err)
		}
		fmt.Println(name + ": docs/performance.md updated")
	}
}
