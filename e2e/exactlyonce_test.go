package e2e

import (
	"bytes"
	"errors"
	"fmt"
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

// undatedMessages is how many messages the undated spools of these tests hold: a few
// thousand, fewer than a run's first resume point (4096 messages), more than a batch of files
// (512), so that a run killed after its first batch leaves files and no state.
const undatedMessages = 3000

// undatedMbox is a bounce spool as a mail server collects it: "From MAILER-DAEMON" lines
// without a date (so it is read in loose mode) and messages without a Date: header, each
// with its own Message-ID and a body whose length varies. Every message is dated by the
// spool's mtime.
func undatedMbox(owner string, n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "From MAILER-DAEMON\nFrom: Mail Delivery System <MAILER-DAEMON@mdmt.test>\nTo: %s@localhost\n"+
			"Subject: undeliverable %d\nMessage-ID: <bounce%d.%s@mdmt.test>\n\n", owner, i, i, owner)
		for j := 0; j < 20+(i*37)%60; j++ {
			fmt.Fprintf(&b, "bounce %d line %d: the remote server said no\n", i, j)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// killAfterFirstFiles runs the maildirmig binary with args and SIGKILLs it as soon as maildir
// holds a message file: a run that dies after its first batch moved in, before any resume
// point. It returns false when the run ended by itself before it could be killed.
func killAfterFirstFiles(t *testing.T, maildir string, args ...string) bool {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			t.Logf("%s ended before the kill: %v\n%s", args[0], err, stderr.String())
			return false
		default:
		}
		if len(messageFiles(t, maildir)) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// The whole run dies at once: root and its workers, which could otherwise move in a few
	// more files before the kernel's parent-death signal reaches them.
	workers, _ := runTree(cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range workers {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	err := <-done
	for _, pid := range workers {
		for alive(pid) {
			time.Sleep(time.Millisecond)
		}
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Logf("%s ended before the kill: %v\n%s", args[0], err, stderr.String())
		return false
	}
	return true
}

// alive reports whether pid still runs (a zombie does not).
func alive(pid int) bool {
	state, ok := procField(pid, 0)
	return ok && state != "Z"
}

// procField returns field i after the command name of /proc/PID/stat: 0 is the state, 1 the
// parent's pid.
func procField(pid, i int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) <= i {
		return "", false
	}
	return f[i], true
}

// countIDs asserts that maildir holds every message of want exactly once, and nothing else.
func countIDs(t *testing.T, maildir string, want []string) {
	t.Helper()
	files := messageFiles(t, maildir)
	ids := messageIDs(t, maildir, files)
	if len(files) != len(want) || len(ids) != len(want) {
		t.Errorf("%s: %d files, %d distinct messages, want %d", maildir, len(files), len(ids), len(want))
	}
	for i, id := range want {
		if c := ids[id]; c != 1 {
			t.Errorf("%s: message %d (%s) present %d times, want once", maildir, i, id, c)
			break
		}
	}
}

func bounceIDs(owner string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("<bounce%d.%s@mdmt.test>", i, owner)
	}
	return ids
}

// TestUndatedSpoolKilledThenDelivered reproduces issue 8's duplicates: `maildirmig mbox` is
// SIGKILLed while it migrates a real user's loose-mode spool whose messages have no date,
// after its first batch is in the Maildir and before any resume point; the spool is touched
// and the real Postfix delivers one message into it. The re-run must find every file the
// killed run wrote (their names never held the spool's mtime) and write only the rest, so
// that each message is in the Maildir exactly once, and verify must prove it. A message then
// stored a second time by hand under another time part (as earlier versions wrote it) makes
// verify fail for that user, naming both files. Dovecot then shows every message once, in
// spool order.
func TestUndatedSpoolKilledThenDelivered(t *testing.T) {
	mailtest.RequirePostfix(t)
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "bounce", "-s", "/usr/sbin/nologin")
	p := mailtest.StartPostfix(t)
	spool := p.Mailbox(u.Name)
	maildir := filepath.Join(u.Home, "Maildir")
	state := filepath.Join(t.TempDir(), "state")
	audit := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	args := []string{"mbox", "--spool-dir", p.SpoolDir, "--state-dir", state, "--audit-log", audit, "--user", u.Name}

	killed := false
	for try := 0; try < 3 && !killed; try++ {
		for _, dir := range []string{maildir, state} {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(spool, undatedMbox(u.Name, undatedMessages), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(spool, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
		killed = killAfterFirstFiles(t, maildir, args...)
	}
	if !killed {
		t.Fatal("every run ended before it could be killed")
	}
	// Count only once no process of the user is left that could still move a file in.
	for i := 0; i < 500 && len(processesOf(u.UID)) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	before := len(messageFiles(t, maildir))
	if before >= undatedMessages {
		t.Fatalf("%d files after the kill; want fewer than the %d messages", before, undatedMessages)
	}
	// A dead run's locks are the recovery tests' subject, not this one's: the spool's dotlock
	// it left would hold Postfix back until Postfix finds it stale (minutes), and a
	// dovecot-uidlist.lock would delay the re-run. They are removed as an administrator would.
	os.Remove(filepath.Join(maildir, "dovecot-uidlist.lock"))
	os.Remove(spool + ".lock")

	fi, err := os.Stat(spool)
	if err != nil {
		t.Fatal(err)
	}
	touched := fi.ModTime().Add(-90 * time.Minute)
	if err := os.Chtimes(spool, touched, touched); err != nil {
		t.Fatal(err)
	}
	const delivered = "<delivered.after.kill@mdmt.test>"
	p.Deliver(t, u.Name, []byte("From: sender@example.org\nTo: "+u.Name+"@localhost\nSubject: after the kill\nMessage-ID: "+delivered+"\n\nnew mail\n"))
	p.WaitQueueEmpty(t)
	after, err := os.Stat(spool)
	if err != nil || after.ModTime().Equal(touched) || after.Size() == fi.Size() {
		t.Fatalf("the delivery did not reach the spool: %v, %v", after, err)
	}
	delivery := after.ModTime().Truncate(time.Second)

	r := runBinary(t, args...)
	t.Logf("re-run: exit %d, %d files before\n%s%s", r.code, before, r.stdout, r.stderr)
	total := undatedMessages + 1
	want := fmt.Sprintf("%s: %d messages, %d written, %d already there", u.Name, total, total-before, before)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("re-run: exit %d, stdout %q; want %q", r.code, r.stdout, want)
	}
	countIDs(t, maildir, append(bounceIDs(u.Name, undatedMessages), delivered))

	verify := []string{"verify", "--spool-dir", p.SpoolDir, "--state-dir", state, "--audit-log", audit, "--user", u.Name}
	v := runBinary(t, verify...)
	if ok := fmt.Sprintf("%s: %d of %d messages verified", u.Name, total, total); v.code != 0 || !strings.Contains(v.stdout, ok) {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q; want %q", v.code, v.stdout, v.stderr, ok)
	}

	// The duplicate an earlier version's re-run wrote: the same message, its name's time part
	// the spool's mtime.
	var orig string
	for _, f := range messageFiles(t, maildir) {
		if strings.HasPrefix(filepath.Base(f), "0.M0Q7X") {
			orig = f
		}
	}
	if orig == "" {
		t.Fatal("no file of message 8 named with the time 0")
	}
	b, err := os.ReadFile(filepath.Join(maildir, orig))
	if err != nil {
		t.Fatal(err)
	}
	dup := "new/" + strings.Replace(filepath.Base(strings.SplitN(orig, ":", 2)[0]), "0.M0", "1700000000.M123456", 1)
	if err := os.WriteFile(filepath.Join(maildir, dup), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(maildir, dup), u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	v = runBinary(t, verify...)
	t.Logf("verify with a duplicate: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	if v.code != 3 || !strings.Contains(v.stderr, "maildirmig: error: user "+u.Name+": ") ||
		!strings.Contains(v.stderr, "stored more than once: message 8 (") ||
		!strings.Contains(v.stderr, orig) || !strings.Contains(v.stderr, dup) {
		t.Fatalf("verify with %s stored again as %s: exit %d, stderr %q; want exit 3 naming the user and both files", orig, dup, v.code, v.stderr)
	}
	if err := os.Remove(filepath.Join(maildir, dup)); err != nil {
		t.Fatal(err)
	}
	if v = runBinary(t, verify...); v.code != 0 {
		t.Fatalf("verify without the duplicate: exit %d, stderr %q", v.code, v.stderr)
	}

	// Dovecot shows the messages once each, in spool order, each undated one received at the
	// spool's mtime as the run that wrote it saw it.
	firstMTime := fi.ModTime().Unix()
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{MailLocation: "maildir:~/Maildir",
		Users: []mailtest.User{{Name: u.Name, Password: "pw", UID: u.UID, GID: u.GID, Home: u.Home}}})
	recs := d.Fetch(t, u.Name, "INBOX")
	if len(recs) != total {
		t.Fatalf("Dovecot shows %d messages, want %d", len(recs), total)
	}
	id := bounceIDs(u.Name, undatedMessages)
	for i, rec := range recs {
		got := rec.HeaderValue("Message-ID")
		switch {
		case i == undatedMessages:
			if got != delivered {
				t.Errorf("Dovecot's last message is %s, want the delivered %s", got, delivered)
			}
		case got != id[i]:
			t.Fatalf("Dovecot's message %d is %s, want %s", i+1, got, id[i])
		case rec.Received.Unix() != firstMTime && rec.Received.Unix() != delivery.Unix():
			t.Errorf("message %d received %v, want the spool's mtime before the kill (%v) or after the delivery (%v)",
				i+1, rec.Received, time.Unix(firstMTime, 0), delivery)
		}
	}
}

// TestConvertUndatedKilledThenTouched is the same for `maildirmig convert --from F`, which
// keeps no state: killed after its first batch, run again after `touch F`, it writes only
// what the killed run had not, and a third run after another touch writes nothing.
func TestConvertUndatedKilledThenTouched(t *testing.T) {
	mailtest.RequireRoot(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "bounces.mbox")
	maildir := filepath.Join(dir, "Maildir")
	args := []string{"convert", "--from", src, maildir}
	killed := false
	for try := 0; try < 3 && !killed; try++ {
		if err := os.RemoveAll(maildir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, undatedMbox("conv", undatedMessages), 0o600); err != nil {
			t.Fatal(err)
		}
		killed = killAfterFirstFiles(t, maildir, args...)
	}
	if !killed {
		t.Fatal("every run ended before it could be killed")
	}
	before := len(messageFiles(t, maildir))
	// A uidlist lock the dead run may have left is the recovery tests' subject.
	os.Remove(filepath.Join(maildir, "dovecot-uidlist.lock"))

	for i, wantWritten := range []int{undatedMessages - before, 0} {
		at := time.Now().Add(time.Duration(i+1) * time.Hour)
		if err := os.Chtimes(src, at, at); err != nil {
			t.Fatal(err)
		}
		r := runBinary(t, args...)
		want := fmt.Sprintf(": %d messages, %d written, %d already there", undatedMessages, wantWritten, undatedMessages-wantWritten)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("convert after touch %d (%d files before): exit %d, stdout %q, stderr %q; want %q", i+1, before, r.code, r.stdout, clip(r.stderr), want)
		}
		countIDs(t, maildir, bounceIDs("conv", undatedMessages))
	}
}
