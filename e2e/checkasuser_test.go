package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// ownedMaildir makes a healthy Maildir of n messages in u's home, all of it u's, as if u had
// made it; subs are the subdirectories to make ("cur", "new", "tmp").
func ownedMaildir(t *testing.T, u mailtest.Account, n int, subs ...string) string {
	t.Helper()
	md := filepath.Join(u.Home, "Maildir")
	for _, d := range append([]string{""}, subs...) {
		if err := os.MkdirAll(filepath.Join(md, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(md, d), u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		writeOwned(t, filepath.Join(md, "cur", fmt.Sprintf("1700000000.M%dP1.host,S=5,W=5:2,S", i)), u, []byte("hello"))
	}
	return md
}

// checkReport is what the tests read of check --format json.
type checkReport struct {
	Users, Maildirs, Messages int
	Problems                  []struct {
		Severity, Kind, User, Path, Detail, Fixed, Hint string
	}
}

// TestCheckHungHome: the home of the first of three users stops answering while check looks
// into it. The fault point stops that user's worker at its 100th look, as a process waiting on
// a dead NFS server stands still; the other users' Maildirs have far fewer entries, so only
// that worker stops. With -j 1 the others wait behind it: root must kill the worker after
// --stall-timeout, report that user as not checked with the home and the reason, check the
// others and exit 3, and leave no process of the user behind.
func TestCheckHungHome(t *testing.T) {
	mailtest.RequireUserTools(t)
	hung := mailtest.AddAccount(t, "chkhung", "-s", "/usr/sbin/nologin")
	a := mailtest.AddAccount(t, "chka", "-s", "/usr/sbin/nologin")
	b := mailtest.AddAccount(t, "chkb", "-s", "/usr/sbin/nologin")
	ownedMaildir(t, hung, 300, "cur", "new", "tmp")
	ownedMaildir(t, a, 2, "cur", "new", "tmp")
	ownedMaildir(t, b, 2, "cur", "new", "tmp")

	run := runLeftStopped(t, "look:100:stop", "check", "-j", "1", "--stall-timeout", "2s", "--format", "json",
		"--spool-dir", t.TempDir(), "--state-dir", t.TempDir(), hung.Name, a.Name, b.Name)
	if run.stoppedPID == 0 || run.stoppedPID == run.root || run.stoppedUID != hung.UID {
		t.Errorf("the process that stood still in the home: pid %d uid %d; want a worker of root %d running as %s (uid %d)",
			run.stoppedPID, run.stoppedUID, run.root, hung.Name, hung.UID)
	}
	if run.code != 3 {
		t.Errorf("exit %d, want 3 (a user could not be checked)", run.code)
	}
	var r checkReport
	if err := json.Unmarshal([]byte(run.stdout), &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	if r.Users != 3 || r.Maildirs != 2 || r.Messages != 4 {
		t.Errorf("report: %d users, %d maildirs, %d messages; want 3, 2 and 4: the others were not checked", r.Users, r.Maildirs, r.Messages)
	}
	if len(r.Problems) != 1 {
		t.Fatalf("want one problem, got %+v", r.Problems)
	}
	p := r.Problems[0]
	if p.Severity != "unknown" || p.Kind != "unchecked" || p.User != hung.Name || p.Path != hung.Home ||
		!strings.Contains(p.Detail, "worker made no progress for 2s (stopped); killed") || !strings.Contains(p.Hint, "--stall-timeout") {
		t.Errorf("problem %+v; want %s's home unchecked: worker made no progress for 2s (stopped); killed, with a hint", p, hung.Name)
	}
	if left := processesOf(hung.UID); len(left) > 0 {
		t.Errorf("processes of %s left: %v", hung.Name, left)
	}
}

// stoppedRun is a run whose process stopped itself at a fault point and was left so.
type stoppedRun struct {
	result
	root                   int // the pid of the run's maildirmig
	stoppedPID, stoppedUID int // the first of its processes seen stopped (0, -1: none)
}

// runLeftStopped runs the faultinject binary as root with spec (POINT:N:stop) in fault.Env
// and waits for it to end, noting the first of its processes that stops itself and leaving
// it stopped, as a process blocked on a hung home stands still: the run must end without
// anyone's help. One that is not over within a minute is killed and the test fails.
func runLeftStopped(t *testing.T, spec string, args ...string) stoppedRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), fault.Env+"="+spec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := stoppedRun{root: cmd.Process.Pid, stoppedUID: -1}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	deadline := time.After(time.Minute)
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-deadline:
			kids, _ := runTree(run.root)
			_ = syscall.Kill(run.root, syscall.SIGKILL)
			for _, pid := range kids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			<-done
			t.Fatalf("maildirmig %s did not end within a minute (stopped: pid %d, uid %d)\n%s%s",
				strings.Join(args, " "), run.stoppedPID, run.stoppedUID, stdout.String(), stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		kids, _ := runTree(run.root)
		for _, pid := range append([]int{run.root}, kids...) {
			if state, uid, ok := procState(pid); ok && state == 'T' && run.stoppedPID == 0 {
				run.stoppedPID, run.stoppedUID = pid, uid
			}
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		run.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	run.stdout, run.stderr = stdout.String(), stderr.String()
	t.Logf("maildirmig %s: exit %d\n%s%s", strings.Join(args, " "), run.code, run.stdout, run.stderr)
	return run
}

// TestCheckFixAndSkelAsUser: what check --fix and skel --existing create in a home is made by
// a process running as the home's user, never by root's. The fault point stops every process
// that looks into a home at its first look; each one stopped must be the user's, and the run
// then goes on. What they made is the user's, with the user's group and mode 0700, and the
// repair is in the audit log.
func TestCheckFixAndSkelAsUser(t *testing.T) {
	mailtest.RequireUserTools(t)
	fix := mailtest.AddAccount(t, "chkfix", "-s", "/usr/sbin/nologin")
	bare := mailtest.AddAccount(t, "chkbare", "-s", "/usr/sbin/nologin")
	md := ownedMaildir(t, fix, 1, "cur", "new") // no tmp/: Dovecot cannot use it
	if err := os.RemoveAll(filepath.Join(bare.Home, "Maildir")); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")

	lookers := func(u mailtest.Account) func(s stopped) {
		return func(s stopped) {
			if s.uid != u.UID {
				t.Errorf("process %d looked into %s's home as uid %d, not as %s (uid %d)", s.pid, u.Name, s.uid, u.Name, u.UID)
			}
		}
	}
	r, stops := runWithStop(t, "look:1:stop", lookers(fix), "check", "--fix", "--spool-dir", t.TempDir(),
		"--state-dir", t.TempDir(), "--audit-log", audit, fix.Name)
	t.Logf("check --fix: exit %d, %d stops\n%s%s", r.code, stops, r.stdout, r.stderr)
	if stops == 0 {
		t.Errorf("no process stopped at its first look into the home: the fault point was not passed")
	}
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(md, "tmp")) {
		t.Errorf("check --fix: exit %d; want 0 and the repair of %s/tmp reported", r.code, md)
	}
	ownedDirs(t, fix, filepath.Join(md, "tmp"))
	if log, err := os.ReadFile(audit); err != nil || !strings.Contains(string(log), `"event":"check-fix"`) {
		t.Errorf("the audit log does not record the repair (%v):\n%s", err, log)
	}

	r, stops = runWithStop(t, "look:1:stop", lookers(bare), "skel", "--existing", "--skel-dir", filepath.Join(t.TempDir(), "skel"), bare.Name)
	t.Logf("skel --existing: exit %d, %d stops\n%s%s", r.code, stops, r.stdout, r.stderr)
	if stops == 0 {
		t.Errorf("no process stopped at its first look into the home: the fault point was not passed")
	}
	bmd := filepath.Join(bare.Home, "Maildir")
	if r.code != 0 || !strings.Contains(r.stdout, "user "+bare.Name+": created "+bmd) {
		t.Errorf("skel --existing: exit %d; want 0 and %s created", r.code, bmd)
	}
	ownedDirs(t, bare, bmd, filepath.Join(bmd, "cur"), filepath.Join(bmd, "new"), filepath.Join(bmd, "tmp"))
}

// ownedDirs checks that each path is a directory of u's, with u's primary group, mode 0700.
func ownedDirs(t *testing.T, u mailtest.Account, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(st.Uid) != u.UID || int(st.Gid) != u.GID {
			t.Errorf("%s: %v owned by %d:%d; want a 0700 directory of %s (%d:%d)", p, fi.Mode(), st.Uid, st.Gid, u.Name, u.UID, u.GID)
		}
	}
}

// TestSkelHungHome: skel --existing stands still in a home (the fault point stops the worker
// as it is about to make the Maildir: the 4th look, which a home that has one never reaches).
// Root must kill it after --stall-timeout, name the user and the home, serve the next user
// and exit 3; nothing is left half made.
func TestSkelHungHome(t *testing.T) {
	mailtest.RequireUserTools(t)
	hung := mailtest.AddAccount(t, "skhung", "-s", "/usr/sbin/nologin")
	next := mailtest.AddAccount(t, "sknext", "-s", "/usr/sbin/nologin")
	if err := os.RemoveAll(filepath.Join(hung.Home, "Maildir")); err != nil {
		t.Fatal(err)
	}
	ownedMaildir(t, next, 0, "cur", "new", "tmp")
	r := runLeftStopped(t, "look:4:stop", "skel", "--existing", "--stall-timeout", "1s",
		"--skel-dir", filepath.Join(t.TempDir(), "skel"), hung.Name, next.Name)
	if r.stoppedPID == 0 || r.stoppedPID == r.root || r.stoppedUID != hung.UID {
		t.Errorf("the process that stood still: pid %d uid %d; want a worker of root %d running as %s (uid %d)",
			r.stoppedPID, r.stoppedUID, r.root, hung.Name, hung.UID)
	}
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	for _, want := range []string{
		"maildirmig: error: user " + hung.Name + ": home " + hung.Home + ": worker made no progress for 1s (stopped); killed\n",
		"maildirmig: error: 1 of 2 users failed\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if _, err := os.Lstat(filepath.Join(hung.Home, "Maildir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s/Maildir: %v; the stopped worker made nothing yet", hung.Home, err)
	}
	// The next user has a Maildir (its worker, under the same fault, must not reach the 4th
	// look): "1 of 2 users failed" above is what says it was served.
}
