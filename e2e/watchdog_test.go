package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// batchDirs makes a spool directory, a state directory and an audit log path for one test and
// returns them with the flags that name them.
func batchDirs(t *testing.T) (spool, state, audit string, flags []string) {
	t.Helper()
	spool = filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(t.TempDir(), "state")
	audit = filepath.Join(t.TempDir(), "log", "audit.jsonl")
	return spool, state, audit, []string{"--spool-dir", spool, "--state-dir", state, "--audit-log", audit}
}

// startBinary starts maildirmig as root; wait collects its result.
func startBinary(t *testing.T, args ...string) (cmd *exec.Cmd, wait func() result) {
	t.Helper()
	cmd = exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			r.code = exit.ExitCode()
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.code = 128 + int(ws.Signal())
			}
		case err != nil:
			r.code, r.stderr = -1, err.Error()
		}
		done <- r
	}()
	return cmd, func() result {
		select {
		case r := <-done:
			return r
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("maildirmig %s did not end in 3 minutes", strings.Join(args, " "))
			return result{}
		}
	}
}

// workerOf returns the pid of parent's child running as uid, waiting for it to appear; 0 if
// parent exits first.
func workerOf(t *testing.T, parent *os.Process, uid int) int {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/status")
			if err != nil {
				continue
			}
			s := string(b)
			if strings.Contains(s, "\nPPid:\t"+strconv.Itoa(parent.Pid)+"\n") && strings.Contains(s, "\nUid:\t"+strconv.Itoa(uid)+"\t") {
				pid, _ := strconv.Atoi(e.Name())
				return pid
			}
		}
		if parent.Signal(syscall.Signal(0)) != nil {
			return 0
		}
	}
	t.Fatalf("no worker as uid %d appeared", uid)
	return 0
}

// waitWriting waits until the worker pid has put a file into maildir (tmp/, new/ or cur/): it is
// then in the middle of the spool. It reports false if the worker ended first.
func waitWriting(pid int, maildir string) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, sub := range []string{"tmp", "new", "cur"} {
			if ents, _ := os.ReadDir(filepath.Join(maildir, sub)); len(ents) > 0 {
				return true
			}
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return false
		}
	}
	return false
}

// processesOf lists the processes running as uid.
func processesOf(uid int) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err == nil && strings.Contains(string(b), "\nUid:\t"+strconv.Itoa(uid)+"\t") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// exactlyOnce checks that maildir holds the n messages of buildMbox(owner, n), each once.
func exactlyOnce(t *testing.T, maildir, owner string, n int) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i], _, _ = testMessage(owner, i)
	}
	countIDs(t, maildir, ids)
}

// TestWatchdogStoppedWorker: the user whose mail is being migrated stops the worker with
// SIGSTOP (kill -STOP works for them: the worker runs as them). With -j 1 the next user would
// wait for ever; root must kill the stalled worker after --stall-timeout, fail that user with
// the reason, release the spool's dotlock, migrate the other user and exit 3. A re-run then
// migrates the stopped user's mail exactly once.
func TestWatchdogStoppedWorker(t *testing.T) {
	mailtest.RequireUserTools(t)
	stopped := mailtest.AddAccount(t, "wdstop", "-s", "/usr/sbin/nologin")
	next := mailtest.AddAccount(t, "wdnext", "-s", "/usr/sbin/nologin")
	spool, _, audit, common := batchDirs(t)
	const big, small = 6000, 20
	writeSpool(t, spool, stopped.Name, stopped.UID, stopped.GID, big)
	writeSpool(t, spool, next.Name, next.UID, next.GID, small)
	maildir := filepath.Join(stopped.Home, "Maildir")

	args := append([]string{"mbox", "-j", "1", "--stall-timeout", "2s", "--no-folders"}, common...)
	cmd, wait := startBinary(t, append(args, "--user", stopped.Name, "--user", next.Name)...)
	pid := workerOf(t, cmd.Process, stopped.UID)
	if pid == 0 || !waitWriting(pid, maildir) {
		wait()
		t.Fatalf("the worker of %s ended before it could be stopped mid-spool", stopped.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	r := wait()
	t.Logf("exit %d %.1fs after the SIGSTOP\n%s%s", r.code, time.Since(began).Seconds(), r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3 (some users failed)", r.code)
	}
	want := "maildirmig: error: user " + stopped.Name + ": worker made no progress for 2s (stopped); killed\n"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q", want)
	}
	if want := next.Name + ": " + strconv.Itoa(small) + " messages, " + strconv.Itoa(small) + " written"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q: the other user was not migrated", want)
	}
	exactlyOnce(t, filepath.Join(next.Home, "Maildir"), next.Name, small)
	if _, err := os.Lstat(filepath.Join(spool, stopped.Name+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dotlock of %s is still there (%v)", stopped.Name, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("the stopped worker %d still exists", pid)
	}
	log, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"event":"user-failed"`) || !strings.Contains(string(log), "worker made no progress") {
		t.Errorf("the audit log does not record the stall:\n%s", log)
	}
	// The spool can be locked again at once: the re-run finishes the job exactly.
	r = runBinary(t, append(append([]string{"mbox", "--no-folders"}, common...), "--user", stopped.Name)...)
	t.Logf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d", r.code)
	}
	exactlyOnce(t, maildir, stopped.Name, big)
}

// TestInterruptRun sends SIGTERM or SIGINT to a run in the middle of a big spool, also with the
// user's worker stopped: the run must end with exit 130, leave no lock and no worker, and say
// the truth about tmp/: "partial files removed" only when tmp/ is empty. A re-run finishes the
// job exactly. The time each run took to end is logged, not asserted.
func TestInterruptRun(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdint", "-s", "/usr/sbin/nologin")
	const n = 4000
	maildir := filepath.Join(u.Home, "Maildir")
	for _, tc := range []struct {
		name         string
		sig          syscall.Signal
		stop         bool
		keepStopping bool
	}{
		{"SIGTERM", syscall.SIGTERM, false, false},
		{"SIGINT", syscall.SIGINT, false, false},
		{"SIGTERM-stopped-worker", syscall.SIGTERM, true, false},
		// The user keeps stopping the worker, so it can hardly abort: root kills it after the
		// grace period, and must not claim partial files were removed unless tmp/ is empty.
		{"SIGTERM-worker-kept-stopped", syscall.SIGTERM, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(maildir); err != nil {
				t.Fatal(err)
			}
			spool, _, _, common := batchDirs(t)
			writeSpool(t, spool, u.Name, u.UID, u.GID, n)
			args := append(append([]string{"mbox", "--no-folders"}, common...), "--user", u.Name)
			cmd, wait := startBinary(t, args...)
			pid := workerOf(t, cmd.Process, u.UID)
			if pid == 0 || !waitWriting(pid, maildir) {
				wait()
				t.Fatal("the worker ended before the run could be interrupted mid-spool")
			}
			if tc.stop {
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
			ended := make(chan struct{})
			if tc.keepStopping {
				go func() {
					for {
						select {
						case <-ended:
							return
						default:
							_ = syscall.Kill(pid, syscall.SIGSTOP)
						}
					}
				}()
			}
			began := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			r := wait()
			close(ended)
			tmp, _ := os.ReadDir(filepath.Join(maildir, "tmp"))
			t.Logf("%s: exit %d %.2fs after the signal, %d files in tmp/\n%s%s", tc.name, r.code, time.Since(began).Seconds(), len(tmp), r.stdout, r.stderr)
			if r.code != 130 {
				t.Errorf("exit %d, want 130", r.code)
			}
			if !strings.Contains(r.stderr, "maildirmig: error: interrupted after") {
				t.Errorf("stderr does not say the run was interrupted")
			}
			switch {
			case strings.Contains(r.stderr, "partial files removed"):
				if len(tmp) != 0 {
					t.Errorf("the run says partial files were removed, but tmp/ holds %d files", len(tmp))
				}
				if tc.keepStopping {
					// Between root's SIGCONT and the user's next SIGSTOP the worker may get
					// to abort after all; what counts is that the message is true.
					t.Logf("the worker its user kept stopping got to remove its partial files")
				}
			case strings.Contains(r.stderr, "the worker of "+u.Name+" was killed before it removed its partial files from tmp/, the next run removes them"):
			default:
				t.Errorf("stderr says nothing of the partial files")
			}
			if _, err := os.Lstat(filepath.Join(spool, u.Name+".lock")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the dotlock is still there (%v)", err)
			}
			if ps := processesOf(u.UID); len(ps) > 0 {
				t.Errorf("processes of %s left running: %v", u.Name, ps)
			}
			r = runBinary(t, args...)
			if r.code != 0 {
				t.Fatalf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			exactlyOnce(t, maildir, u.Name, n)
		})
	}
}

// TestWatchdogStoppedMailboxLock: for ~USER/Mailbox the dotlock is held by a worker of its own,
// as the user, for the whole migration. The user stops that one: root must not wait for its
// answer for ever when releasing the lock, but fail the user after --stall-timeout and end;
// the lock it held must not keep the next run out.
func TestWatchdogStoppedMailboxLock(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdmbox", "-s", "/usr/sbin/nologin")
	_, _, _, common := batchDirs(t)
	const n = 6000
	writeSpool(t, u.Home, "Mailbox", u.UID, u.GID, n)
	maildir := filepath.Join(u.Home, "Maildir")
	args := append(append([]string{"Mailbox", "--no-folders", "--stall-timeout", "2s"}, common...), "--user", u.Name)
	// The lock worker starts first and lives until the end; the converting worker comes next.
	_, wait := startStopped(t, u, args, maildir)
	began := time.Now()
	r := wait()
	t.Logf("exit %d %.1fs after the SIGSTOP\n%s%s", r.code, time.Since(began).Seconds(), r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	if want := "worker made no progress for 2s (stopped)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q", want)
	}
	if ps := processesOf(u.UID); len(ps) > 0 {
		t.Errorf("processes of %s left running: %v", u.Name, ps)
	}
	r = runBinary(t, args...)
	t.Logf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d", r.code)
	}
	exactlyOnce(t, maildir, "Mailbox", n)
	if _, err := os.Lstat(filepath.Join(u.Home, "Mailbox.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Mailbox.lock is still there after the re-run (%v)", err)
	}
}

// TestWatchdogStoppedConvert: root's convert into a user's Maildir runs a worker as that user
// too; stopped, it is killed after --stall-timeout and convert fails with the reason.
func TestWatchdogStoppedConvert(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdconv", "-s", "/usr/sbin/nologin")
	const n = 6000
	writeSpool(t, u.Home, "old.mbox", u.UID, u.GID, n)
	maildir := filepath.Join(u.Home, "Maildir")
	args := []string{"convert", "--stall-timeout", "2s", "--from", filepath.Join(u.Home, "old.mbox"), maildir}
	stopWorker(t, u, args, maildir, 1, "2s")
	exactlyOnce(t, maildir, "old.mbox", n)
}

// TestWatchdogStoppedFolderWorker: the mbox folders of ~/mail are migrated by a worker of
// their own; stopped by its user, it is killed too, after --stall-timeout plus the lock timeout
// it may spend waiting for a folder's lock, and a re-run migrates the folder exactly once.
func TestWatchdogStoppedFolderWorker(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdfold", "-s", "/usr/sbin/nologin")
	_, _, _, common := batchDirs(t)
	mail := filepath.Join(u.Home, "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	const n = 6000
	writeSpool(t, mail, "big", u.UID, u.GID, n)
	folder := filepath.Join(u.Home, "Maildir", ".big")
	args := append(append([]string{"mbox", "--stall-timeout", "2s", "--lock-timeout", "1s"}, common...), "--user", u.Name)
	stopWorker(t, u, args, folder, 3, "3s")
	exactlyOnce(t, folder, "big", n)
}

// TestWatchdogStoppedVerifyWorker: verify reads the Maildir through a worker as the user too;
// stopped, it is killed after --stall-timeout and that user's verification fails with the
// reason.
func TestWatchdogStoppedVerifyWorker(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdver", "-s", "/usr/sbin/nologin")
	spool, _, _, common := batchDirs(t)
	const n = 2000
	writeSpool(t, spool, u.Name, u.UID, u.GID, n)
	if r := runBinary(t, append(append([]string{"mbox", "--no-folders"}, common...), "--user", u.Name)...); r.code != 0 {
		t.Fatalf("mbox: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	args := append(append([]string{"verify", "--no-folders", "--stall-timeout", "2s"}, common...), "--user", u.Name)
	stopWorker(t, u, args, "", 3, "2s")
}

// stopWorker runs the binary with args, stops (SIGSTOP) u's worker once it writes into dir
// (at once when dir is ""), and checks that root killed the worker after the stall timeout
// (stall, as the message gives it): exit code want, the message on the console, no process
// of u left. Then it runs args again, which must succeed.
func stopWorker(t *testing.T, u mailtest.Account, args []string, dir string, want int, stall string) {
	t.Helper()
	_, wait := startStopped(t, u, args, dir)
	r := wait()
	t.Logf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != want {
		t.Errorf("exit %d, want %d", r.code, want)
	}
	if msg := "worker made no progress for " + stall + " (stopped); killed"; !strings.Contains(r.stdout+r.stderr, msg) {
		t.Errorf("output lacks %q", msg)
	}
	if ps := processesOf(u.UID); len(ps) > 0 {
		t.Errorf("processes of %s left running: %v", u.Name, ps)
	}
	if r := runBinary(t, args...); r.code != 0 {
		t.Fatalf("run again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestInterruptStoppedMailboxLock: a SIGTERM must end a Mailbox run within a few seconds even
// when the user stopped the worker holding ~/Mailbox.lock: root waits for its answer only for
// the grace period of an interrupt, not for the stall timeout. The time is logged.
func TestInterruptStoppedMailboxLock(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "wdmint", "-s", "/usr/sbin/nologin")
	_, _, _, common := batchDirs(t)
	const n = 4000
	writeSpool(t, u.Home, "Mailbox", u.UID, u.GID, n)
	maildir := filepath.Join(u.Home, "Maildir")
	args := append(append([]string{"Mailbox", "--no-folders"}, common...), "--user", u.Name)
	cmd, wait := startStopped(t, u, args, maildir)
	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := wait()
	t.Logf("exit %d %.2fs after the signal\n%s%s", r.code, time.Since(began).Seconds(), r.stdout, r.stderr)
	if r.code != 130 {
		t.Errorf("exit %d, want 130", r.code)
	}
	// Continued, the lock worker removed its lock before it ended.
	if _, err := os.Lstat(filepath.Join(u.Home, "Mailbox.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run says locks were released, but Mailbox.lock is there (%v)", err)
	}
	// The converting worker aborted; the lock worker writes no message files.
	if tmp, _ := os.ReadDir(filepath.Join(maildir, "tmp")); !strings.Contains(r.stderr, "partial files removed") || len(tmp) != 0 {
		t.Errorf("stderr does not say partial files were removed, or tmp/ holds %d files", len(tmp))
	}
	if ps := processesOf(u.UID); len(ps) > 0 {
		t.Errorf("processes of %s left running: %v", u.Name, ps)
	}
	r = runBinary(t, args...)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	exactlyOnce(t, maildir, "Mailbox", n)
	if _, err := os.Lstat(filepath.Join(u.Home, "Mailbox.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Mailbox.lock is still there after the re-run (%v)", err)
	}
}

// startStopped starts the binary with args and stops (SIGSTOP) u's first worker once it writes
// into dir (at once when dir is ""), as the user can.
func startStopped(t *testing.T, u mailtest.Account, args []string, dir string) (*exec.Cmd, func() result) {
	t.Helper()
	cmd, wait := startBinary(t, args...)
	pid := workerOf(t, cmd.Process, u.UID)
	if pid == 0 || dir != "" && !waitWriting(pid, dir) {
		wait()
		t.Fatal("the worker ended before it could be stopped in the middle of its work")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return cmd, wait
}

// TestHostileUidlistLockDir: a user makes a directory named dovecot-uidlist.lock in their
// Maildir and dates it 2000. It once made the worker spin for ever trying to unlink it as a
// stale lock, rewriting its run marker each time, which the watchdog took for progress: the
// run never ended and the spool's lock was held throughout. Now the worker refuses it at once
// as no lock anyone made; the user fails with the reason, the next user is migrated, the
// attacker's spool lock is released and the run ends (exit 3). Were the worker to spin again,
// --stall-timeout would kill it; were neither to act, the run would not end in the 3 minutes
// startBinary waits.
func TestHostileUidlistLockDir(t *testing.T) {
	mailtest.RequireUserTools(t)
	attacker := mailtest.AddAccount(t, "wdlock", "-s", "/usr/sbin/nologin")
	next := mailtest.AddAccount(t, "wdlnext", "-s", "/usr/sbin/nologin")
	spool, _, audit, common := batchDirs(t)
	const n = 20
	writeSpool(t, spool, attacker.Name, attacker.UID, attacker.GID, n)
	writeSpool(t, spool, next.Name, next.UID, next.GID, n)
	maildir := filepath.Join(attacker.Home, "Maildir")
	lock := filepath.Join(maildir, "dovecot-uidlist.lock")
	for _, d := range []string{maildir, filepath.Join(maildir, "cur"), filepath.Join(maildir, "new"), filepath.Join(maildir, "tmp"), lock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, attacker.UID, attacker.GID); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"mbox", "-j", "1", "--stall-timeout", "2s", "--no-folders"}, common...)
	_, wait := startBinary(t, append(args, "--user", attacker.Name, "--user", next.Name)...)
	r := wait()
	t.Logf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3 (some users failed)", r.code)
	}
	if want := "maildirmig: error: user " + attacker.Name + ": "; !strings.Contains(r.stderr, want) ||
		!strings.Contains(r.stderr, lock+": is a directory, not a lock file") {
		t.Errorf("stderr does not fail %s for its dovecot-uidlist.lock directory", attacker.Name)
	}
	if want := next.Name + ": " + strconv.Itoa(n) + " messages, " + strconv.Itoa(n) + " written"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q: the other user was not migrated", want)
	}
	exactlyOnce(t, filepath.Join(next.Home, "Maildir"), next.Name, n)
	if _, err := os.Lstat(filepath.Join(spool, attacker.Name+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dotlock of %s's spool is still there (%v)", attacker.Name, err)
	}
	if fi, err := os.Lstat(lock); err != nil || !fi.IsDir() {
		t.Errorf("the user's directory was touched: %v", err)
	}
	if ps := processesOf(attacker.UID); len(ps) > 0 {
		t.Errorf("processes of %s left running: %v", attacker.Name, ps)
	}
	log, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"event":"user-failed"`) {
		t.Errorf("the audit log does not record the failure:\n%s", log)
	}
}
