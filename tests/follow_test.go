package tests

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
	restorepkg "github.com/litestream-vfs/litestream_vfs/restore"
)

// bgProc is a process a test started and ends by PID.
type bgProc struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
}

func startBg(t *testing.T, dir string, env []string, name string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(name, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Dir, p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = dir, childEnv(env), p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL); <-p.done })
	return p
}

func (p *bgProc) signal(s syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s) // our child, by PID
	}
}

// wait waits for the process to end, at most d, and returns its exit code
// (-1: killed or still running).
func (p *bgProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s did not end within %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(p.cmd.Path), d, tail(p.stdout.String(), 2000), tail(p.stderr.String(), 3000))
		return -1
	}
}

// TestFollow (issue 13): ltxrestore -follow keeps a read replica current
// while the source moves money between accounts (the sum never changes)
// and a reader with plain python3 checks the sum on the follower again and
// again: it must never see a torn state. Meanwhile the follower is killed
// and restarted after its level-0 files were compacted away (it resumes
// from its state file, through level 1, without restoring afresh), a
// writer without the extension commits to the source (a new snapshot
// there), and a reader's write is refused. On MinIO, the store is also
// stopped for a while: the follower keeps serving, then catches up. At the
// end the follower's .dump equals the source's.
//
// FOLLOW_SECONDS sets the source's run (default 16).
func TestFollow(t *testing.T) {
	seconds := envCount(t, "FOLLOW_SECONDS", 16)
	for _, s3 := range []bool{false, true} {
		name := map[bool]string{false: "Directory", true: "S3"}[s3]
		t.Run(name, func(t *testing.T) {
			dir, db := newDB(t)
			params := []string{"compaction=1s,3s", "l0-retention=1s"}
			replicaURL := fileURL(defaultReplica(db))
			var env []string
			var srv *s3test.Server
			if s3 {
				srv = s3test.Start(t)
				bucket := srv.NewBucket(t)
				params = append(params, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint)
				replicaURL = "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
				env = []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
			}
			script := filepath.Join(filepath.Dir(pyClientPath), "transfers.py")
			writer := startBg(t, dir, env, python3Bin, script, "write", extPath, dbURI(db, params...), strconv.Itoa(seconds), strconv.FormatUint(newSeed(t), 10))
			deadline := time.Now().Add(20 * time.Second)
			for restoreLs(t, env, replicaURL) == "" {
				if time.Now().After(deadline) {
					t.Fatalf("nothing in the replica after 20 s\nwriter:\n%s", tail(writer.stderr.String(), 3000))
				}
				time.Sleep(100 * time.Millisecond)
			}
			rep := filepath.Join(dir, "follower.db")
			follow := func() *bgProc {
				return startBg(t, dir, env, ltxrestorePath, "-follow", "-interval", "100ms", "-o", rep, replicaURL)
			}
			f := follow()
			reader := startBg(t, dir, nil, python3Bin, script, "read", rep, strconv.Itoa(seconds+4))

			time.Sleep(time.Duration(seconds) * time.Second / 4)
			f.signal(syscall.SIGKILL)
			<-f.done
			time.Sleep(2500 * time.Millisecond) // level 0 is compacted into level 1 and expires
			// A writer without the extension: a neutral transfer.
			sqlitePlain(t, db, ".timeout 10000\nBEGIN IMMEDIATE; UPDATE acct SET bal = bal + 7 WHERE id = 0; UPDATE acct SET bal = bal - 7 WHERE id = 1; COMMIT;")
			f = follow()
			time.Sleep(time.Second)
			if strings.Contains(f.stderr.String(), "restored TXID") {
				t.Errorf("the restarted follower restored afresh instead of resuming:\n%s", f.stderr.String())
			}
			if r := runCmd(t, dir, nil, strings.NewReader("INSERT INTO acct VALUES(-1, 5, NULL);\n"), sqlite3Bin, rep); r.Code == 0 ||
				!(strings.Contains(r.Stderr, "database is locked") || strings.Contains(r.Stderr, "readonly")) {
				t.Errorf("a reader's write on the follower: %s", r)
			}
			if s3 {
				srv.Stop()
				time.Sleep(3 * time.Second)
				srv.Restart(t)
			}

			if code := writer.wait(t, time.Duration(seconds+60)*time.Second); code != 0 {
				t.Fatalf("writer exit %d\n%s\n%s", code, writer.stdout.String(), tail(writer.stderr.String(), 3000))
			}
			var synced int64
			for _, l := range splitLines(writer.stdout.String()) {
				if v, ok := strings.CutPrefix(l, "SYNCED "); ok {
					synced, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if synced == 0 {
				t.Fatalf("writer output: %s", writer.stdout.String())
			}
			deadline = time.Now().Add(20 * time.Second)
			for {
				st, err := restorepkg.ReadFollowState(rep + "-follow")
				if err == nil && int64(st.TXID) >= synced {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the follower is at %+v (%v) 20 s after the source synced TXID %d\n%s", st, err, synced, tail(f.stderr.String(), 3000))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if code := reader.wait(t, 30*time.Second); code != 0 || !strings.Contains(reader.stdout.String(), "READS") {
				t.Fatalf("reader exit %d: %s\n%s", code, reader.stdout.String(), tail(reader.stderr.String(), 2000))
			}
			f.signal(syscall.SIGTERM)
			if code := f.wait(t, 10*time.Second); code != 0 {
				t.Errorf("follower exit %d after SIGTERM\n%s", code, tail(f.stderr.String(), 3000))
			}
			if got, want := dumpHash(t, rep), dumpHash(t, db); got != want {
				t.Errorf("the follower's .dump differs from the source's")
			}
			t.Logf("FOLLOW %s: reader %s; source synced TXID %d", name, strings.TrimSpace(reader.stdout.String()), synced)
		})
	}
}

// restoreLs returns ltxrestore ls's output for url ("" if it failed).
func restoreLs(t *testing.T, env []string, replicaURL string) string {
	t.Helper()
	r := runCmd(t, os.TempDir(), env, nil, ltxrestorePath, "ls", replicaURL)
	if r.Code != 0 {
		return ""
	}
	return r.Stdout
}

// TestFollowBenchSmoke runs tests/bench_follow.sh --smoke so the benchmark
// of docs/performance.md cannot rot: every row present, rows seen on the
// follower, and an idle follower making about one request per interval.
func TestFollowBenchSmoke(t *testing.T) {
	r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "tests", "bench_follow.sh"), "--smoke")
	if r.Code != 0 {
		t.Fatalf("bench_follow.sh --smoke\n%s", r)
	}
	row := regexp.MustCompile(`(?m)^\| (1s|100ms) \| [^|]+ \| (\d+) \| \d+ \| \d+ \| \d+ \| \d+ \| ([\d.]+) \| [\d.]+ \|$`)
	rows := row.FindAllStringSubmatch(r.Stdout, -1)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3\n%s", len(rows), r.Stdout)
	}
	for _, m := range rows {
		if m[2] == "0" {
			t.Errorf("no rows seen on the follower: %s", m[0])
		}
		// One LIST per interval; a timer that fires early or late, or a
		// window boundary, moves it a little.
		if v, _ := strconv.ParseFloat(m[3], 64); v > 1.5 {
			t.Errorf("an idle follower made %s requests per interval, want about 1: %s", m[3], m[0])
		}
	}
	t.Logf("\n%s", r.Stdout)
}
