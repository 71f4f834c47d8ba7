package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// lockedBatch is the fault that kills a run with SIGKILL as it takes dovecot-uidlist.lock for
// its second batch: with the first batch listed, the second moved into new/ and cur/ and the
// third already written to tmp/.
const lockedBatch = "locked:2:kill-run"

// TestKilledConvertRecovers kills the real maildirmig with SIGKILL while it holds
// dovecot-uidlist.lock in the middle of a batch, with its files in tmp/, and proves that one
// re-run takes the lock over at once (Dovecot's rule would make it wait two minutes and fail),
// removes the dead run's tmp/ files, and ends with every message in the Maildir and in
// dovecot-uidlist exactly once.
func TestKilledConvertRecovers(t *testing.T) {
	const messages = 3000
	dir := t.TempDir()
	src := filepath.Join(dir, "mbox")
	if err := os.WriteFile(src, buildMbox("killed", messages), 0o600); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "Maildir")
	if k := runWithFault(t, lockedBatch, "convert", "--from", src, md); !k.signaled {
		t.Fatalf("the run armed with %s was not killed: exit %d\nstderr: %s", lockedBatch, k.code, k.stderr)
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); err != nil {
		t.Fatalf("the killed run left no dovecot-uidlist.lock: %v", err)
	}
	tmpLeft, _ := os.ReadDir(filepath.Join(md, "tmp"))
	if len(tmpLeft) < 2 {
		t.Fatalf("the killed run left %d entries in tmp/, want its run marker and a batch's files", len(tmpLeft))
	}
	t.Logf("the killed run left dovecot-uidlist.lock and %d entries in tmp/", len(tmpLeft))

	began := time.Now()
	r := runCommand(exec.Command(binary, "convert", "--from", src, md))
	t.Logf("the re-run took %v", time.Since(began).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "held by") {
		t.Errorf("re-run complained of the lock: %s", r.stderr)
	}
	if left, _ := os.ReadDir(filepath.Join(md, "tmp")); len(left) != 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("tmp/ after the re-run: %v", names)
	}
	if _, err := os.Lstat(filepath.Join(md, "dovecot-uidlist.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dovecot-uidlist.lock after the re-run: %v", err)
	}
	files := messageFiles(t, md)
	if len(files) != messages {
		t.Errorf("%d message files, want %d", len(files), messages)
	}
	bases := map[string]bool{}
	for _, f := range files {
		base, _, _ := strings.Cut(filepath.Base(f), ":")
		bases[base] = true
	}
	lines, err := readUIDList(filepath.Join(md, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]int{}
	uids := map[uint64]bool{}
	for _, l := range lines {
		if uids[l.uid] {
			t.Errorf("dovecot-uidlist gives UID %d twice", l.uid)
		}
		uids[l.uid] = true
		listed[l.base]++
	}
	for base := range bases {
		if listed[base] != 1 {
			t.Errorf("%s listed %d times", base, listed[base])
		}
	}
	if len(listed) != len(bases) {
		t.Errorf("dovecot-uidlist lists %d files, the Maildir holds %d", len(listed), len(bases))
	}
}

// TestKilledMboxRecovers kills the real `maildirmig mbox` (root, and through its death the
// worker running as the user) with SIGKILL while the worker holds dovecot-uidlist.lock in a
// real user's Maildir, then proves that one re-run exits 0 at once and leaves every message
// exactly once, tmp/ empty, no lock and no temporary state file, and that verify agrees.
func TestKilledMboxRecovers(t *testing.T) {
	mailtest.RequireUserTools(t)
	const messages = 3000
	u := mailtest.AddAccount(t, "killed", "-s", "/usr/sbin/nologin")
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSpool(t, spool, u.Name, u.UID, u.GID, messages)
	state := filepath.Join(t.TempDir(), "state")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	common := []string{"--spool-dir", spool, "--state-dir", state, "--audit-log", audit, "--user", u.Name}
	md := filepath.Join(u.Home, "Maildir")
	lock := filepath.Join(md, "dovecot-uidlist.lock")
	// The worker, which runs as the user and may not kill root, stops itself at the point;
	// runWithFault then kills the run, root and worker, with SIGKILL.
	if k := runWithFault(t, lockedBatch, append([]string{"mbox"}, common...)...); !k.frozen {
		t.Fatalf("the run armed with %s was not killed at the lock: exit %d\nstderr: %s", lockedBatch, k.code, k.stderr)
	}
	if _, err := os.Lstat(lock); err != nil {
		t.Fatalf("the killed run left no dovecot-uidlist.lock: %v", err)
	}
	// The worker dies with root (its parent-death signal); give the kernel a moment to reap it.
	for i := 0; i < 100 && len(processesOf(u.UID)) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	tmp, _ := os.ReadDir(filepath.Join(md, "tmp"))
	t.Logf("the killed run left dovecot-uidlist.lock and %d entries in tmp/", len(tmp))

	r := runBinary(t, append([]string{"mbox"}, common...)...)
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// The console says what was cleaned up, as warnings, and nothing else.
	for _, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, "maildirmig: warning: user "+u.Name+": ") || !strings.Contains(line, "maildirmig that died (pid ") {
			t.Errorf("re-run's stderr: %q, want only warnings about what a dead run left", line)
		}
	}
	if !strings.Contains(r.stderr, "removed dovecot-uidlist.lock left by a maildirmig that died (pid ") {
		t.Errorf("re-run's stderr does not name the lock it took over:\n%s", r.stderr)
	}
	if left, _ := os.ReadDir(filepath.Join(md, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ after the re-run holds %d entries", len(left))
	}
	if _, err := os.Lstat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dovecot-uidlist.lock after the re-run: %v", err)
	}
	checkTree(t, md, u.UID, u.GID)
	exactlyOnce(t, md, u.Name, messages)
	lines, err := readUIDList(filepath.Join(md, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != messages {
		t.Errorf("dovecot-uidlist lists %d files, want %d", len(lines), messages)
	}
	temps, _ := filepath.Glob(filepath.Join(state, ".*.tmp"))
	temps2, _ := filepath.Glob(filepath.Join(state, "folders", ".*.tmp"))
	if len(temps)+len(temps2) != 0 {
		t.Errorf("temporary state files left: %v %v", temps, temps2)
	}
	// The audit log says what the re-run cleaned up.
	log, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) < 2 {
		t.Errorf("the killed run left %d entries in tmp/, want its run marker and a batch's files", len(tmp))
	}
	said := []string{`"kind":"recovered"`, `removed dovecot-uidlist.lock left by a maildirmig that died (pid `,
		` left in tmp/ by a maildirmig that died (pid `}
	for _, want := range said {
		if !strings.Contains(string(log), want) {
			t.Errorf("the audit log does not say %s", want)
		}
	}
	if v := runBinary(t, append([]string{"verify"}, common...)...); v.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}
