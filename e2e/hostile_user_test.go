package e2e

// Attacks of a hostile user (who owns their home, Maildir and spool, and races root) on what
// root runs over every user: each test performs one and checks what root did.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// TestRecordFIFOEnds: a user puts a FIFO among the messages of their Maildir; Dovecot opens
// it to learn its size and blocks. maildirmig record must end anyway, fail that user with a
// reason, and exit 3.
func TestRecordFIFOEnds(t *testing.T) {
	e := newContinuityEnv(t, "rtfifo")
	md := filepath.Join(e.user.Home, "Maildir")
	for _, d := range []string{md, md + "/cur", md + "/new", md + "/tmp"} {
		e.user.Mkdir(t, d)
	}
	e.user.WriteFile(t, filepath.Join(md, "cur", "1704067200.M1P1.host,S=11,W=12:2,S"), []byte("Subject: x\n"))
	fifo := filepath.Join(md, "cur", "1704067300.M1P2.host:2,S")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(fifo, e.user.UID, e.user.GID); err != nil {
		t.Fatal(err)
	}
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	passwd := recordPasswd(t, e.user)
	out := filepath.Join(t.TempDir(), "rec.jsonl")
	// The test's own bound, far above the stall timeout given: without it the run never ends.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "record", "--passwd", passwd, "--dovecot-config", e.dovecot.Conf, "--stall-timeout", "2s", out, e.user.Name)
	r := runCommand(cmd)
	if ctx.Err() != nil {
		t.Fatalf("maildirmig record did not end: %+v", r)
	}
	t.Logf("record: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 || !strings.Contains(r.stderr, "maildirmig: error: user "+e.user.Name+": doveadm") || !strings.Contains(r.stderr, "printed nothing for 2s, killed") {
		t.Errorf("record: exit %d, stderr %q; want 3 and the user failed for a doveadm that printed nothing", r.code, r.stderr)
	}
}

// TestRecordHashSparseMessage: a user plants a sparse file of a terabyte among their
// messages, its size in its name (Dovecot trusts it). maildirmig record --hash, as root, must
// neither take that size in memory nor read the terabyte: the user fails with the reason, the
// run ends, and the user recorded after them is recorded in full.
func TestRecordHashSparseMessage(t *testing.T) {
	e := newContinuityEnv(t, "rtsparse")
	md := filepath.Join(e.user.Home, "Maildir")
	for _, d := range []string{md, md + "/cur", md + "/new", md + "/tmp"} {
		e.user.Mkdir(t, d)
	}
	const huge = 1 << 40
	sparse := filepath.Join(md, "cur", fmt.Sprintf("1704067200.M1P1.host,S=%d,W=%d:2,S", huge, huge))
	e.user.WriteFile(t, sparse, []byte("Subject: x\n\n"))
	if err := os.Truncate(sparse, huge); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", huge, err)
	}
	e.user.WriteFile(t, filepath.Join(md, "cur", "1704067300.M1P2.host,S=11,W=12:2,S"), []byte("Subject: y\n"))
	// A user recorded after the attacker, with -j 1.
	next := mailtest.NewUser(t, mailtest.Dir(t), "rtnext")
	nmd := filepath.Join(next.Home, "Maildir")
	for _, d := range []string{nmd, nmd + "/cur", nmd + "/new", nmd + "/tmp"} {
		next.Mkdir(t, d)
	}
	next.WriteFile(t, filepath.Join(nmd, "cur", "1704067300.M1P2.host,S=11,W=12:2,S"), []byte("Subject: z\n"))
	e.dovecot.AddUser(t, next)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	passwd := recordPasswd(t, e.user, next)
	out := filepath.Join(t.TempDir(), "rec.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := runCommand(exec.CommandContext(ctx, binary, "record", "--hash", "-j", "1", "--passwd", passwd, "--dovecot-config", e.dovecot.Conf, out, e.user.Name, next.Name))
	if ctx.Err() != nil {
		t.Fatalf("maildirmig record --hash did not end: %+v", r)
	}
	t.Logf("record --hash: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 || !strings.Contains(r.stderr, "maildirmig: error: user "+e.user.Name+": ") || !strings.Contains(r.stderr, fmt.Sprintf("%d bytes", int64(huge))) {
		t.Errorf("record --hash: exit %d, stderr %q; want 3 and the user failed for a message too large to hash", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, next.Name+": 1 mailbox, 1 message,") {
		t.Errorf("the user after the attacker: stdout %q; want them recorded", r.stdout)
	}
}

// TestCheckFixHostileLinks: a user's Maildir holds, under message names, a hard link to a file
// of root's (where protected_hardlinks is off), a symlink to another, and a FIFO. check --fix,
// as root, must report them, change neither root file's mode nor content, remove nothing,
// not hang on the FIFO, and still repair the user's own file.
func TestCheckFixHostileLinks(t *testing.T) {
	mailtest.RequireUserTools(t)
	u := mailtest.AddAccount(t, "ckfix", "-s", "/usr/sbin/nologin")
	md := filepath.Join(u.Home, "Maildir")
	for _, d := range []string{md, md + "/cur", md + "/new", md + "/tmp"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	linked, pointed := filepath.Join(victim, "linked"), filepath.Join(victim, "pointed")
	for _, p := range []string{linked, pointed} {
		if err := os.WriteFile(p, []byte("root's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hard := filepath.Join(md, "cur", "1704067200.M1P1.h,S=7,W=7:2,S")
	if err := os.Link(linked, hard); err != nil {
		t.Skipf("no hard link from the home to %s: %v", victim, err)
	}
	sym := filepath.Join(md, "cur", "1704067201.M1P1.h,S=7,W=7:2,S")
	if err := os.Symlink(pointed, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(sym, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(md, "new", "1704067202.M1P1.h,S=7,W=7")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(fifo, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(md, "cur", "1704067203.M1P1.h,S=4,W=4:2,S")
	writeOwned(t, own, u, []byte("own\n"))
	if err := os.Chmod(own, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := runCommand(exec.CommandContext(ctx, binary, "check", "--fix", "--state-dir", t.TempDir(), "--spool-dir", t.TempDir(), u.Name))
	if ctx.Err() != nil {
		t.Fatalf("check --fix did not end: %+v", r)
	}
	t.Logf("check --fix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 2 {
		t.Errorf("exit %d, want 2 (critical)", r.code)
	}
	for _, want := range []string{hard + ": owned by uid 0", sym + ": is a symlink", fifo + ": is a FIFO", own + ": message file mode 0644, want 0600 [mode] (chmod 0600)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
	for _, p := range []string{linked, pointed} {
		fi, err := os.Stat(p)
		b, _ := os.ReadFile(p)
		if err != nil || fi.Mode().Perm() != 0o644 || fi.Sys().(*syscall.Stat_t).Uid != 0 || string(b) != "root's\n" {
			t.Errorf("%s after check --fix: %v, %v, %q; want root's, 0644, untouched", p, fi.Mode(), err, b)
		}
	}
	for _, p := range []string{hard, sym, fifo} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v; check --fix must remove nothing but stale tmp/ files", p, err)
		}
	}
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the user's own file: %v, %v; want it repaired to 0600", fi.Mode(), err)
	}
}

// TestMirrorSymlinkRace: mirror passes (the user's spool rewritten between them, a flag each
// time, so that every pass renames files) while a process of the user keeps swapping tmp/,
// new/ and cur/ for symlinks to a directory of root's. Nothing may land outside the home,
// every run ends cleanly, and once the racer stops one pass leaves the exact mirror.
func TestMirrorSymlinkRace(t *testing.T) {
	g := plainRig(t)
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	victimDir, victimFile := filepath.Join(victim, "dir"), filepath.Join(victim, "secret")
	if err := os.Mkdir(victimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victimFile, []byte("From root Mon Jan  1 00:00:00 2024\nSubject: root's secret\n\nnot for users\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := &faultUser{Account: mailtest.AddAccount(t, "mrace", "-s", "/usr/sbin/nologin"), kind: "plain", n: 300}
	g.users = []*faultUser{u}
	g.reset(t)
	if r := runBinary(t, g.args("mbox")...); r.code != 0 {
		t.Fatalf("first pass: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	spool := filepath.Join(g.spool, u.Name)
	orig, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	// The racer is given no spool to swap: the test rewrites the spool between passes.
	cmd := exec.Command("perl", "-e", racer, u.Home, filepath.Join(t.TempDir(), "none"), victimDir, victimFile, "0.0005")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run perl as the user: %v", err)
	}
	var codes []int
	renamed := 0
	for k := 0; k < 6; k++ {
		// Message k read by a client: "Status: RO" after its From_ line.
		at := nthIndex(orig, []byte("\nFrom "), k+1) + 1
		if k == 0 {
			at = 0
		}
		nl := bytes.IndexByte(orig[at:], '\n') + at + 1
		b := append(append(append([]byte(nil), orig[:nl]...), "Status: RO\n"...), orig[nl:]...)
		writeOwned(t, spool, u.Account, b)
		r := runBinary(t, g.args("mbox")...)
		codes = append(codes, r.code)
		if strings.Contains(r.stdout, "renamed for") {
			renamed++
		}
		if r.code != 0 && r.code != 3 || strings.Contains(r.stderr, "panic") {
			t.Errorf("pass %d: exit %d\n%s%s", k, r.code, r.stdout, r.stderr)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("racer: %v: %s", err, out.String())
	}
	t.Logf("racer: %s swaps; exits %v; %d passes renamed files", strings.TrimSpace(out.String()), codes, renamed)
	if renamed == 0 {
		t.Errorf("no pass renamed a file: the race never met a mirror pass at work")
	}
	checkVictim(t, victimDir, victimFile)
	for _, p := range []string{"tmp", "new", "cur"} {
		p = filepath.Join(u.Home, "Maildir", p)
		if _, err := os.Lstat(p + ".away"); err == nil {
			_ = os.Remove(p)
			if err := os.Rename(p+".away", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := runBinary(t, g.args("mbox")...); r.code != 0 {
		t.Errorf("pass without the racer: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	g.checkExact(t, "after the race")
}
