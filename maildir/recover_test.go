package maildir

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a maildirmig that is killed in the middle of a
// batch: with MAILDIR_TEST_HELPER=batch it adds helperMessages messages to
// MAILDIR_TEST_DIR in batches of helperBatch, and while it moves the second
// batch in (at the end of the third, whose sync ran meanwhile), once
// dovecot-uidlist.lock is taken and a few files are renamed in, says "ready"
// on stdout and waits to be killed. With MAILDIR_TEST_HELPER=rewrite it
// stops instead when the first batch's dovecot-uidlist has been written
// into dovecot-uidlist.lock, before the rename.
const (
	helperMessages = 170
	helperBatch    = 50
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("MAILDIR_TEST_HELPER"); mode != "" {
		helperBatchRun(mode, os.Getenv("MAILDIR_TEST_DIR"))
		return
	}
	os.Exit(m.Run())
}

func helperMessage(i int) *Message {
	return &Message{Date: testDate, Position: int64(i), New: true, Content: strings.NewReader(fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i))}
}

func helperBatchRun(mode, md string) {
	d, err := Open(md, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, err := NewWriter(d, Options{Host: testHost, BatchFiles: helperBatch})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	renames := 0
	w.trace = func(event string) error {
		if strings.HasPrefix(event, "rename tmp/") {
			renames++
		}
		if mode == "batch" && renames == helperBatch+10 || mode == "rewrite" && event == "fsync dovecot-uidlist.lock" {
			fmt.Println("ready")
			time.Sleep(time.Hour) // until killed; a bare select {} would be a deadlock the runtime ends
		}
		return nil
	}
	for i := range helperMessages {
		if _, err := w.Add(helperMessage(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Fprintln(os.Stderr, "helper: never stopped in the second batch")
	os.Exit(1)
}

// startHelper runs the helper on md until it is in the middle of its second
// batch, holding dovecot-uidlist.lock, with files of its own in tmp/.
func startHelper(t *testing.T, md string) *exec.Cmd {
	return startHelperMode(t, md, "batch")
}

func startHelperMode(t *testing.T, md, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MAILDIR_TEST_HELPER="+mode, "MAILDIR_TEST_DIR="+md)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	return cmd
}

func killHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want killed by SIGKILL", err)
	}
}

// tmpNames lists md/tmp.
func tmpNames(t *testing.T, md string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(md, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// checkExactlyOnce fails unless md holds want messages in cur/ and new/,
// and dovecot-uidlist lists each of them exactly once.
func checkExactlyOnce(t *testing.T, md string, want int) {
	t.Helper()
	names := sortedNames(t, md)
	if len(names) != want {
		t.Errorf("%d message files, want %d", len(names), want)
	}
	files := map[string]bool{}
	for _, n := range names {
		files[baseOf(filepath.Base(n))] = true
	}
	listed := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(md, "dovecot-uidlist")), "\n"), "\n")
	for _, l := range lines[1:] {
		_, base, ok := strings.Cut(l, ":")
		if !ok {
			t.Errorf("uidlist line %q has no file name", l)
			continue
		}
		listed[base]++
	}
	for base := range files {
		if listed[base] != 1 {
			t.Errorf("%s listed %d times in dovecot-uidlist", base, listed[base])
		}
	}
	for base := range listed {
		if !files[base] {
			t.Errorf("dovecot-uidlist lists %s, which is not in the Maildir", base)
		}
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); err == nil {
		t.Errorf("dovecot-uidlist.lock left behind")
	}
}

// rerunHelper adds the helper's messages again with w, the Writer of the run
// after a killed one, and checks that tmp/ is empty and each message is
// there exactly once.
func rerunHelper(t *testing.T, w *Writer, md string) {
	t.Helper()
	w.lockWait = time.Second
	for i := range helperMessages {
		if _, err := w.Add(helperMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if names := tmpNames(t, md); len(names) != 0 {
		t.Errorf("tmp/ after the re-run: %v", names)
	}
	checkExactlyOnce(t, md, helperMessages)
}

// TestRecoverAfterKill: a maildirmig killed with SIGKILL in the middle of a
// batch leaves its files in tmp/ and dovecot-uidlist.lock; the next Writer
// takes the lock over at once, removes every file of the dead run, and the
// re-run ends with every message listed exactly once and tmp/ empty.
func TestRecoverAfterKill(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	cmd := startHelper(t, md)
	pid := cmd.Process.Pid
	killHelper(t, cmd)

	left := tmpNames(t, md)
	if len(left) < 2 {
		t.Fatalf("tmp/ after the kill holds %v: the kill did not happen in a batch", left)
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); err != nil {
		t.Fatalf("the killed run left no dovecot-uidlist.lock: %v", err)
	}

	var notices []string
	d, err := Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost, BatchFiles: helperBatch, Recovered: func(s string) { notices = append(notices, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); err == nil {
		t.Errorf("dovecot-uidlist.lock still there after NewWriter")
	}
	if n := countFiles(t, md, "tmp"); n != 0 {
		t.Errorf("%d files of the dead run left in tmp/ after NewWriter", n)
	}
	wantNotices := []string{
		fmt.Sprintf("removed dovecot-uidlist.lock left by a maildirmig that died (pid %d)", pid),
		fmt.Sprintf("removed %d files left in tmp/ by a maildirmig that died (pid %d)", len(left)-1, pid),
	}
	if strings.Join(notices, "\n") != strings.Join(wantNotices, "\n") {
		t.Errorf("notices:\n%s\nwant:\n%s", strings.Join(notices, "\n"), strings.Join(wantNotices, "\n"))
	}
	rerunHelper(t, w, md)
}

// TestLiveRunLockNotTakenOver: the lock of a maildirmig that is alive is
// waited for and, after the wait, refused with its pid; its tmp/ files are
// left alone. Once it is killed, the same Writer takes the lock over at
// once.
func TestLiveRunLockNotTakenOver(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	cmd := startHelper(t, md)
	pid := cmd.Process.Pid
	before := tmpNames(t, md)

	var notices []string
	d, err := Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost, Fsync: FsyncNone, Recovered: func(s string) { notices = append(notices, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.lockWait = 500 * time.Millisecond
	for _, n := range before {
		if _, err := os.Lstat(filepath.Join(md, "tmp", n)); err != nil {
			t.Errorf("a live run's tmp/%s was removed: %v", n, err)
		}
	}
	if len(notices) != 0 {
		t.Errorf("notices about a live run: %q", notices)
	}
	_, err = w.Add(helperMessage(1000))
	if err == nil {
		err = w.Flush()
	}
	want := fmt.Sprintf("dovecot-uidlist.lock is held by maildirmig pid %d", pid)
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("adding beside a live run: %v, want an error ending %q", err, want)
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); err != nil {
		t.Errorf("the live run's lock is gone: %v", err)
	}

	killHelper(t, cmd)
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush once the holder died: %v", err)
	}
	took := fmt.Sprintf("took over dovecot-uidlist.lock left by a maildirmig that died (pid %d)", pid)
	if len(notices) != 1 || notices[0] != took {
		t.Errorf("notices: %q, want %q", notices, took)
	}
}

// TestForeignLockNotTakenOver: a dovecot-uidlist.lock that no run marker
// records (Dovecot's) is not taken over while fresh, and the error says
// since when it is held.
func TestForeignLockNotTakenOver(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	defer w.Close()
	w.lockWait = 300 * time.Millisecond
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	must(t, os.WriteFile(lock, nil, 0o600))
	_ = d
	add(t, w, msg(0, "x\n"))
	err := w.Flush()
	if err == nil || !regexp.MustCompile(`dovecot-uidlist\.lock is held by another process \(Dovecot\?\) since \d\d:\d\d:\d\d$`).MatchString(err.Error()) {
		t.Fatalf("Flush beside a fresh foreign lock: %v", err)
	}
	if _, err := os.Lstat(lock); err != nil {
		t.Errorf("the foreign lock was removed: %v", err)
	}
}

// TestRecoverLeavesOthersFiles: NewWriter removes the files of dead runs
// of this host only: those of a live Writer, of another host, of Dovecot or
// another MDA, and of an earlier maildirmig whose pid lives, stay.
func TestRecoverLeavesOthersFiles(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, live := newTestWriter(t, md, Options{BatchFiles: 100})
	defer live.Close()
	add(t, live, msg(0, "pending\n"))
	liveFiles := tmpNames(t, md)

	deadPid := deadPID(t)
	keep := []string{
		"1700000000.P1I0123abcd" + "Q0R00aa.other.example.org",                 // another host
		".maildirmig.P1I0123abcd.other.example.org",                            // its marker
		"1700000000.M12345P678.mx.example.org",                                 // Dovecot
		"1700000000.P678.mx.example.org",                                       // Postfix local
		fmt.Sprintf("1700000000.P%dQ3R0011aabbccdd.%s", os.Getpid(), testHost), // earlier maildirmig, alive
	}
	gone := []string{
		fmt.Sprintf("1700000000.P%dI89abcdefQ7R0011aabbccdd.%s", deadPid, testHost),
		fmt.Sprintf(".maildirmig.P%dI89abcdef.%s", deadPid, testHost),
		fmt.Sprintf("1700000000.P%dIfedcba98Q1R0011aabbccdd.%s", deadPid, testHost), // marker gone
		fmt.Sprintf("1700000000.P%dQ3R0011aabbccdd.%s", deadPid, testHost),          // earlier maildirmig, dead
	}
	for _, n := range append(append([]string{}, keep...), gone...) {
		must(t, os.WriteFile(filepath.Join(md, "tmp", n), []byte("x"), 0o600))
	}
	var notices []string
	_, w := newTestWriter(t, md, Options{Recovered: func(s string) { notices = append(notices, s) }})
	defer w.Close()
	for _, n := range append(keep, liveFiles...) {
		if _, err := os.Lstat(filepath.Join(md, "tmp", n)); err != nil {
			t.Errorf("tmp/%s removed: %v", n, err)
		}
	}
	for _, n := range gone {
		if _, err := os.Lstat(filepath.Join(md, "tmp", n)); err == nil {
			t.Errorf("tmp/%s left", n)
		}
	}
	if len(notices) != 3 {
		t.Errorf("notices: %q, want one per dead run", notices)
	}
	if err := live.Commit(); err != nil {
		t.Fatalf("the live Writer after another's recovery: %v", err)
	}
}

// deadPID returns the pid of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no true(1): %v", err)
	}
	if unix.Kill(cmd.Process.Pid, 0) != unix.ESRCH {
		t.Skip("the pid of an ended process is in use again")
	}
	return cmd.Process.Pid
}

// TestConcurrentWritersRecover: Writers starting while others write never
// remove a file another live Writer is filling.
func TestConcurrentWritersRecover(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	// The first Writer makes dovecot-uidlist, whose UIDVALIDITY the others keep.
	d0, w0 := newTestWriter(t, md, Options{})
	add(t, w0, msg(-1, "first\n"))
	if err := w0.Commit(); err != nil {
		t.Fatal(err)
	}
	w0.Close()
	d0.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for k := range 8 {
		wg.Go(func() {
			d, err := Open(md, false)
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			for round := range 5 {
				// Batches keep files in tmp/ while the other Writers start and recover.
				w, err := NewWriter(d, Options{Host: testHost, BatchFiles: 4, Recovered: func(s string) {
					errs <- fmt.Errorf("writer %d cleaned up though no run died: %s", k, s)
				}})
				if err != nil {
					errs <- err
					return
				}
				for i := range 10 {
					m := msg(int64(1000*k+100*round+i), fmt.Sprintf("%d %d %d\n", k, round, i))
					if _, err := w.Add(m); err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", k, round, err)
						w.Close()
						return
					}
				}
				if err := w.Commit(); err != nil {
					errs <- err
				}
				w.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if names := tmpNames(t, md); len(names) != 0 {
		t.Errorf("tmp/ after every Writer closed: %v", names)
	}
	checkExactlyOnce(t, md, 1+8*5*10)
}

func TestParseTmp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, token, host string
		pid               int
		legacy, ok        bool
	}{
		{"1700000000.P42I0123abcdQ7R001122334455.mx.example.org", "P42I0123abcd", "mx.example.org", 42, false, true},
		{"1700000000.P42I0123abcdL001122334455.mx", "P42I0123abcd", "mx", 42, false, true},
		{"1700000000.P42Q-1R001122334455.mx.example.org", "P42", "mx.example.org", 42, true, true},
		{"1700000000.P42I0123abcQ7R00.mx", "", "", 0, false, false}, // short run id
		{"1700000000.M123P42.mx", "", "", 0, false, false},          // Dovecot
		{"1700000000.P42.mx", "", "", 0, false, false},              // Postfix
		{"x.P42I0123abcdQ7R00.mx", "", "", 0, false, false},
		{"1700000000.P0I0123abcdQ7R00.mx", "", "", 0, false, false},
		{"1700000000.P42I0123abcdQ7R00", "", "", 0, false, false},
	} {
		token, host, pid, legacy, ok := parseTmp(c.name)
		if token != c.token || host != c.host || pid != c.pid || legacy != c.legacy || ok != c.ok {
			t.Errorf("parseTmp(%q) = %q %q %d %v %v, want %q %q %d %v %v", c.name, token, host, pid, legacy, ok, c.token, c.host, c.pid, c.legacy, c.ok)
		}
	}
}

func TestParseRecords(t *testing.T) {
	t.Parallel()
	const tok = "P42I0123abcd"
	in := strings.Join([]string{
		"dovecot-uidlist.lock 1700000000.P42I0123abcdLaabbccddeeff.mx 2049 77",
		"bad line",
		"../../etc/x.lock 1700000000.P42I0123abcdLaabbccddeeff.mx 1 2",      // not a lock of ours
		"dovecot-keywords.lock ../../etc/passwd 1 2",                        // not a tmp/ name
		"dovecot-keywords.lock 1700000000.P43I0123abcdLaabbccddeeff.mx 1 2", // another run's
		"dovecot-keywords.lock 1700000000.P42I0123abcdL00.mx 3 4",
		"dovecot-uidlist.lock 1700000000.P42I0123abcdL11.mx 2049",
	}, "\n")
	recs := parseRecords([]byte(in), tok)
	if len(recs) != 2 || recs[0].ino != 77 || recs[0].tmp != "1700000000.P42I0123abcdLaabbccddeeff.mx" ||
		recs[1].name != "dovecot-keywords.lock" || recs[1].dev != 3 {
		t.Errorf("parseRecords: %+v", recs)
	}
	if got := parseRecords(nil, tok); len(got) != 0 {
		t.Errorf("parseRecords(nil): %+v", got)
	}
}

// TestTmpInUse: the tmp/ files and the marker of a live Writer are in use, whatever their
// mtime; after Close, and for files of other programs, they are not.
func TestTmpInUse(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, w := newTestWriter(t, md, Options{BatchFiles: 10})
	add(t, w, msg(0, "pending\n"))
	names := tmpNames(t, md)
	if len(names) != 2 {
		t.Fatalf("tmp/ holds %v, want a marker and a pending file", names)
	}
	must(t, os.WriteFile(filepath.Join(md, "tmp", "1700000000.M1P2.other"), nil, 0o600))
	tmpfd := d.sub[subTmp]
	// The Writer is in this very process: F_OFD_GETLK sees its lock all the same, where a
	// classic fcntl lock would never show a process its own.
	for _, n := range names {
		if !TmpInUse(tmpfd, n) {
			t.Errorf("%s of a live Writer not in use", n)
		}
	}
	if TmpInUse(tmpfd, "1700000000.M1P2.other") {
		t.Errorf("a foreign file in use")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	marker := names[0]
	if !strings.HasPrefix(marker, markerPrefix) {
		marker = names[1]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(md, "tmp", marker), nil, 0o600))
	if TmpInUse(tmpfd, marker) {
		t.Errorf("an unlocked marker in use")
	}
}

func TestHeldError(t *testing.T) {
	t.Parallel()
	st := &unix.Stat_t{Mtim: unix.NsecToTimespec(time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local).UnixNano())}
	for _, c := range []struct {
		h    lockHolder
		st   *unix.Stat_t
		want string
	}{
		{lockHolder{pid: 42, alive: true}, st, "maildir: /m/dovecot-uidlist.lock is held by maildirmig pid 42"},
		{lockHolder{pid: 42}, st, "maildir: /m/dovecot-uidlist.lock was left by a maildirmig that died (pid 42) and could not be taken over"},
		{lockHolder{}, st, "maildir: /m/dovecot-uidlist.lock is held by another process (Dovecot?) since 03:04:05"},
		{lockHolder{}, nil, "maildir: /m/dovecot-uidlist.lock is held by another process"},
	} {
		if got := heldError("/m/dovecot-uidlist.lock", c.h, c.st).Error(); got != c.want {
			t.Errorf("heldError(%+v) = %q, want %q", c.h, got, c.want)
		}
	}
}

// TestDeadRecordMustMatch: a dead run's marker takes over only the very dotlock it recorded,
// whose tmp/ name is still the same inode. Dovecot may have taken that lock over as stale since
// and made its own, on ext4 often with the same inode number as a freed one: the tmp/ name kept
// the recorded inode alive, so Dovecot's lock cannot match it, and stays.
func TestDeadRecordMustMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		taken bool
	}{
		{"same lock", true},
		{"Dovecot's lock since", false},
		{"tmp name gone", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			var notices []string
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone, Recovered: func(s string) { notices = append(notices, s) }})
			defer w.Close()
			w.lockWait = 300 * time.Millisecond
			pid := deadPID(t)
			token := fmt.Sprintf("P%dI0123abcd", pid)
			lock := filepath.Join(md, "dovecot-uidlist.lock")
			tmp := "1700000000." + token + "L00aa." + testHost
			must(t, os.WriteFile(filepath.Join(md, "tmp", tmp), nil, 0o600))
			switch c.name {
			case "same lock":
				must(t, os.Link(filepath.Join(md, "tmp", tmp), lock))
			case "Dovecot's lock since", "tmp name gone":
				must(t, os.WriteFile(lock, nil, 0o600))
			}
			var st unix.Stat_t
			must(t, unix.Lstat(lock, &st))
			if c.name == "tmp name gone" {
				must(t, os.Remove(filepath.Join(md, "tmp", tmp)))
			}
			// The record names the lock file there now: only its tmp/ name tells.
			rec := lockRecord{name: "dovecot-uidlist.lock", tmp: tmp, dev: st.Dev, ino: st.Ino}
			must(t, os.WriteFile(filepath.Join(md, "tmp", markerPrefix+token+"."+testHost), []byte(rec.String()), 0o600))

			add(t, w, msg(0, "x\n"))
			err := w.Flush()
			_, lerr := os.Lstat(lock)
			if c.taken {
				want := fmt.Sprintf("took over dovecot-uidlist.lock left by a maildirmig that died (pid %d)", pid)
				if err != nil || len(notices) != 1 || notices[0] != want {
					t.Errorf("Flush: %v, notices %q; want the dead run's lock taken over", err, notices)
				}
				if lerr == nil {
					t.Errorf("dovecot-uidlist.lock still there after Flush")
				}
				if _, err := os.Lstat(filepath.Join(md, "tmp", tmp)); err == nil {
					t.Errorf("the dead lock's tmp/ name is still there")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "held by another process (Dovecot?)") || len(notices) != 0 {
				t.Errorf("Flush: %v, notices %q; want the lock left to its holder", err, notices)
			}
			if lerr != nil {
				t.Errorf("the lock was removed: %v", lerr)
			}
		})
	}
}

// TestRecoverAfterKillInRewrite: a run killed after it wrote the new dovecot-uidlist into
// dovecot-uidlist.lock, before the rename, left a lock whose mtime and content changed since it
// was taken; the next Writer takes it over at once all the same, and the re-run lists every
// message exactly once.
func TestRecoverAfterKillInRewrite(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	cmd := startHelperMode(t, md, "rewrite")
	pid := cmd.Process.Pid
	killHelper(t, cmd)
	b, err := os.ReadFile(filepath.Join(md, "dovecot-uidlist.lock"))
	if err != nil || !bytes.HasPrefix(b, []byte("3 V")) {
		t.Fatalf("the killed run left dovecot-uidlist.lock holding %q, %v; want a uidlist written into it", b, err)
	}
	var notices []string
	d, err := Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost, Recovered: func(s string) { notices = append(notices, s) }})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("removed dovecot-uidlist.lock left by a maildirmig that died (pid %d)", pid)
	if len(notices) == 0 || notices[0] != want {
		t.Errorf("notices %q, want first %q", notices, want)
	}
	rerunHelper(t, w, md)
}

// TestRecoverRefusesLinkedMarker: a "marker" that is a hard link to another file is neither
// truncated nor removed as a dead run's; the files of its run are left alone, and NewWriter
// says why.
func TestRecoverRefusesLinkedMarker(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w0 := newTestWriter(t, md, Options{})
	w0.Close()
	precious := filepath.Join(t.TempDir(), "precious")
	must(t, os.WriteFile(precious, []byte("dovecot-uidlist.lock x 1 2\n"), 0o600))
	marker := filepath.Join(md, "tmp", markerPrefix+"P4194304I0123abcd."+testHost)
	must(t, os.Link(precious, marker))
	file := filepath.Join(md, "tmp", "1700000000.P4194304I0123abcdQ0R00."+testHost)
	must(t, os.WriteFile(file, nil, 0o600))
	var notices []string
	_, w := newTestWriter(t, md, Options{Recovered: func(s string) { notices = append(notices, s) }})
	defer w.Close()
	if got := readFile(t, precious); got != "dovecot-uidlist.lock x 1 2\n" {
		t.Errorf("the linked file changed: %q", got)
	}
	for _, p := range []string{marker, file} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "is not a regular file with one link") {
		t.Errorf("notices %q", notices)
	}
}

// A user owns tmp/ and can fill it with markers that cannot be probed (FIFOs here) or with
// names of the marker's prefix but any shape, newlines included: the run names at most a few
// of the first, in one notice each and one for the rest, and takes none of the second for a
// run of ours, so that neither the console nor the audit log can be flooded or forged.
func TestRecoverBoundsNotices(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w0 := newTestWriter(t, md, Options{})
	w0.Close()
	tmp := filepath.Join(md, "tmp")
	const fifos = 40
	for i := range fifos {
		must(t, unix.Mkfifo(filepath.Join(tmp, fmt.Sprintf("%sP%dI0123abcd.%s", markerPrefix, 4194304+i, testHost)), 0o600))
	}
	forged := []string{
		markerPrefix + "X\nuser: 0 messages FAKE LINE\n." + testHost,
		markerPrefix + "P12I0123abcdzz." + testHost,
		markerPrefix + "P0I0123abcd." + testHost,
		markerPrefix + "PI0123abcd." + testHost,
	}
	for _, name := range forged {
		must(t, unix.Mkfifo(filepath.Join(tmp, name), 0o600))
	}
	var notices []string
	_, w := newTestWriter(t, md, Options{Recovered: func(s string) { notices = append(notices, s) }})
	defer w.Close()
	if len(notices) != maxLeftAlone+1 {
		t.Fatalf("%d notices, want %d:\n%s", len(notices), maxLeftAlone+1, strings.Join(notices, "\n"))
	}
	for _, n := range notices[:maxLeftAlone] {
		if !strings.Contains(n, "is not a regular file with one link") {
			t.Errorf("notice %q", n)
		}
	}
	if want := fmt.Sprintf("left tmp/ files of %d more runs alone", fifos-maxLeftAlone); notices[maxLeftAlone] != want {
		t.Errorf("last notice %q, want %q", notices[maxLeftAlone], want)
	}
	for _, n := range notices {
		if strings.Contains(n, "\n") || strings.Contains(n, "FAKE") {
			t.Errorf("a forged name reached a notice: %q", n)
		}
	}
	for _, name := range forged {
		if _, err := os.Lstat(filepath.Join(tmp, name)); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	for token, want := range map[string]bool{
		"P1I0123abcd": true, "P4194304Iffffffff": true,
		"P0I0123abcd": false, "PI0123abcd": false, "P1I0123abc": false, "P1I0123abcdd": false,
		"P1I0123ABCD": false, "P-1I0123abcd": false, "Q1I0123abcd": false, "P1x0123abcd": false, "": false,
	} {
		if got := validToken(token); got != want {
			t.Errorf("validToken(%q) = %v, want %v", token, got, want)
		}
	}
}

// TestRecoverBoundsDeadRunNotices: the user fills tmp/ with 50,000 names of the form a run of
// ours gives its files, each with a "pid" of its own and no marker: 50,000 dead runs. Their
// files go, as a dead run's do, but the run names only the first few, and counts the rest in
// one notice: the console and the audit log get six lines, not 50,000.
func TestRecoverBoundsDeadRunNotices(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w0 := newTestWriter(t, md, Options{})
	w0.Close()
	tmp := filepath.Join(md, "tmp")
	const runs = 50000
	for i := range runs {
		f, err := os.Create(filepath.Join(tmp, fmt.Sprintf("1700000000.P%dI0123abcdQ0R00.%s", 4194304+i, testHost)))
		must(t, err)
		must(t, f.Close())
	}
	var notices []string
	_, w := newTestWriter(t, md, Options{Recovered: func(s string) { notices = append(notices, s) }})
	defer w.Close()
	if len(notices) != maxLeftAlone+1 {
		t.Fatalf("%d notices for %d dead runs, want %d; the first: %q", len(notices), runs, maxLeftAlone+1, notices[:min(len(notices), 8)])
	}
	one := regexp.MustCompile(`^removed 1 file left in tmp/ by a maildirmig that died \(pid 4[0-9]{6}\)$`)
	for _, n := range notices[:maxLeftAlone] {
		if !one.MatchString(n) {
			t.Errorf("notice %q, want one matching %s", n, one)
		}
	}
	if want := fmt.Sprintf("removed %d more files left in tmp/ by %d more maildirmig runs that died", runs-maxLeftAlone, runs-maxLeftAlone); notices[maxLeftAlone] != want {
		t.Errorf("last notice %q, want %q", notices[maxLeftAlone], want)
	}
	if names := tmpNames(t, md); len(names) != 1 || !strings.HasPrefix(names[0], markerPrefix) {
		t.Errorf("tmp/ after recovery holds %d names besides the marker", len(names)-1)
	}
}
