package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// plainRig is a faultRig without Postfix: a spool directory like /var/mail (sticky, world
// writable, so a user may rename their own spool), a state directory and an audit log.
func plainRig(t *testing.T) *faultRig {
	t.Helper()
	mailtest.RequireUserTools(t)
	g := &faultRig{spool: filepath.Join(t.TempDir(), "spool")}
	if err := os.Mkdir(g.spool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(g.spool, 0o1777); err != nil {
		t.Fatal(err)
	}
	g.state = filepath.Join(t.TempDir(), "state")
	g.audit = filepath.Join(t.TempDir(), "log", "audit.jsonl")
	return g
}

// TestFullHome gives an account a home on a small tmpfs, so that its Maildir fills the file
// system for real: the run must fail that user with ENOSPC named once, leave nothing half
// written in cur/ or new/ and the spool as it was; once the file system is made larger, one
// re-run must be exact.
func TestFullHome(t *testing.T) {
	g := plainRig(t)
	// Not beneath t.TempDir(), which only root may enter: the worker runs as the user.
	mnt, err := os.MkdirTemp("", "mdmt-full-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(mnt) })
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// 1 MiB, and a mailbox of small messages: the run's check of the free space passes (the
	// mailbox is smaller), but each file takes a whole page of tmpfs, and the disk fills.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): no real full disk to test", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	u := &faultUser{Account: mailtest.AddAccount(t, "full", "-d", filepath.Join(mnt, "full"), "-s", "/usr/sbin/nologin"), kind: "tiny", n: 600}
	g.users = []*faultUser{u}
	g.reset(t)
	before := g.spoolSums(t)

	r := runBinary(t, g.args("mbox")...)
	t.Logf("mbox on a full home: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	checkFaultMessage(t, "full tmpfs", r.stderr, "no space left on device", g, "write:1")
	if fmt.Sprint(g.spoolSums(t)) != fmt.Sprint(before) {
		t.Errorf("the spool changed")
	}
	checkWhole(t, "full tmpfs", u)

	if out, err := exec.Command("mount", "-o", "remount,size=32m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount %s larger: %v: %s", mnt, err, out)
	}
	again := runBinary(t, g.args("mbox")...)
	if again.code != 0 {
		t.Errorf("re-run after space was freed: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	g.checkExact(t, "after space was freed")
}

// racer is a Perl loop, run as the user, that swaps each of Maildir/tmp, new and cur and the
// spool for a symlink (to a root-owned directory or file) and back, as fast as it can, until
// SIGTERM, pausing the given seconds after each; it then prints how many swaps it made.
const racer = `
use strict;
my ($home, $spool, $dir, $file, $pause) = @ARGV;
my $n = 0;
my $stop = 0;
$SIG{TERM} = sub { $stop = 1 };
my @targets = (["$home/Maildir/tmp", $dir], ["$home/Maildir/new", $dir], ["$home/Maildir/cur", $dir], [$spool, $file]);
while (!$stop) {
	for my $t (@targets) {
		my ($p, $to) = @$t;
		next unless rename($p, "$p.away");
		symlink($to, $p);
		$n++;
		unlink($p);
		rename("$p.away", $p);
		select(undef, undef, undef, $pause) if $pause > 0;
	}
}
print "$n\n";
`

// TestSymlinkRace runs `maildirmig mbox` while a process of the user keeps swapping tmp/,
// new/, cur/ and the spool for symlinks to root's files. Nothing may be written outside the
// home, nothing foreign chowned; the run fails that user or succeeds, cleanly; once the
// racer stops, one re-run must be exact.
func TestSymlinkRace(t *testing.T) {
	// The racer pauses between swaps in some rounds, so that runs get past the first check
	// and meet a swap anywhere later.
	pauses := []string{"0", "0.002", "0.0005", "0.01", "0", "0.001"}
	if testing.Short() {
		pauses = pauses[:3]
	}
	rounds := len(pauses)
	const runsPerRound = 3
	g := plainRig(t)
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	victimDir := filepath.Join(victim, "dir")
	victimFile := filepath.Join(victim, "secret")
	if err := os.Mkdir(victimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victimFile, []byte("From root Mon Jan  1 00:00:00 2024\nSubject: root's secret\n\nnot for users\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := &faultUser{Account: mailtest.AddAccount(t, "race", "-s", "/usr/sbin/nologin"), kind: "plain", n: 400}
	g.users = []*faultUser{u}
	swaps := 0
	for round := 0; round < rounds; round++ {
		g.reset(t)
		// The Maildir exists before the run, so the racer has something to swap from the start.
		for _, sub := range []string{"", "tmp", "new", "cur"} {
			p := filepath.Join(u.Home, "Maildir", sub)
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, u.UID, u.GID); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("perl", "-e", racer, u.Home, filepath.Join(g.spool, u.Name), victimDir, victimFile, pauses[round])
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot run perl as the user: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		// Runs one after the other while the racer goes on: the later ones resume what the
		// earlier left, or start again after a refusal.
		var codes []int
		var last result
		for k := 0; k < runsPerRound; k++ {
			r := runBinary(t, g.args("mbox")...)
			codes = append(codes, r.code)
			if r.code != 0 && r.code != 3 {
				t.Errorf("round %d, run %d: exit %d, want 0 or 3 (the user failed cleanly)\n%s%s", round, k, r.code, r.stdout, r.stderr)
			}
			if regexp.MustCompile(`panic|goroutine \d`).MatchString(r.stderr) {
				t.Errorf("round %d, run %d: the run crashed:\n%s", round, k, r.stderr)
			}
			if r.code != 0 {
				last = r
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("racer: %v: %s", err, out.String())
		}
		n, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("racer said %q", out.String())
		}
		swaps += n
		t.Logf("round %d (pause %ss): %d swaps during %d runs, exits %v; the last refusal: %s", round, pauses[round], n, runsPerRound, codes, strings.TrimSpace(last.stderr))
		// Nothing outside the home was written or chowned.
		checkVictim(t, victimDir, victimFile)
		// Everything in the home is the user's.
		err = filepath.WalkDir(u.Home, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != u.UID {
				t.Errorf("round %d: %s owned by uid %d, not the user's %d", round, p, st.Uid, u.UID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The racer may have left a swap half done when it stopped: put the names back as
		// they were, as the user would.
		for _, p := range []string{filepath.Join(u.Home, "Maildir", "tmp"), filepath.Join(u.Home, "Maildir", "new"), filepath.Join(u.Home, "Maildir", "cur"), filepath.Join(g.spool, u.Name)} {
			if _, err := os.Lstat(p + ".away"); err == nil {
				_ = os.Remove(p)
				if err := os.Rename(p+".away", p); err != nil {
					t.Fatal(err)
				}
			}
		}
		again := runBinary(t, g.args("mbox")...)
		if again.code != 0 {
			t.Errorf("round %d: re-run without the racer: exit %d\n%s%s", round, again.code, again.stdout, again.stderr)
		}
		g.checkExact(t, fmt.Sprintf("round %d", round))
	}
	if swaps == 0 {
		t.Errorf("the racer made no swap")
	}
	t.Logf("race swaps run: %d in %d rounds", swaps, rounds)
}

// checkVictim asserts that root's directory stayed empty and root's file unchanged and root's.
func checkVictim(t *testing.T, dir, file string) {
	t.Helper()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		t.Errorf("%s: %d entries written outside the home (%v)", dir, len(ents), err)
	}
	for _, p := range []string{dir, file} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s chowned to %d:%d", p, st.Uid, st.Gid)
		}
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), "not for users") {
		t.Errorf("%s changed: %q, %v", file, b, err)
	}
}

// badSpool is a spool that is not a plain mbox, and what must come of it.
type badSpool struct {
	name  string
	make  func(t *testing.T, p string, u mailtest.Account)
	fails string // what the user's error must say (a regexp); "" when the user is not failed
	says  string // what stdout must say of the user otherwise
}

func writeOwned(t *testing.T, p string, u mailtest.Account, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

func badSpools(short bool) []badSpool {
	long := 60 << 20
	if short {
		long = 20 << 20
	}
	return []badSpool{
		{name: "fifo", fails: "not a regular file", make: func(t *testing.T, p string, u mailtest.Account) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, u.UID, u.GID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "dir", fails: "not a regular file|is a directory", make: func(t *testing.T, p string, u mailtest.Account) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, u.UID, u.GID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "device", fails: "not a regular file", make: func(t *testing.T, p string, u mailtest.Account) {
			// The character device 1:3 is /dev/null's.
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
				t.Skipf("mknod: %v", err)
			}
			if err := os.Chown(p, u.UID, u.GID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "socket", fails: "not a regular file|is a socket", make: func(t *testing.T, p string, u mailtest.Account) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if err := os.Chown(p, u.UID, u.GID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "empty", says: "up to date", make: func(t *testing.T, p string, u mailtest.Account) { writeOwned(t, p, u, nil) }},
		{name: "truncated", says: "6 messages, 6 written", make: func(t *testing.T, p string, u mailtest.Account) {
			b := buildMbox(u.Name, 6)
			cut := bytes.LastIndex(b, []byte("\nFrom ")) + 1
			// The sixth message's From_ line and header, then half its body, cut mid-line.
			writeOwned(t, p, u, b[:cut+(len(b)-cut)/2])
		}},
		{name: "bitflip", says: "9 messages, 9 written", make: func(t *testing.T, p string, u mailtest.Account) {
			b := buildMbox(u.Name, 10)
			// A bit flipped in the fourth From_ line ("From" becomes "Fsom") joins the fourth
			// message to the third, and one in a body changes a byte.
			i := nthIndex(b, []byte("\nFrom "), 3) + 2
			b[i] ^= 0x01
			b[len(b)/2] ^= 0x20
			writeOwned(t, p, u, b)
		}},
		{name: "mmdf", fails: "not an mbox", make: func(t *testing.T, p string, u mailtest.Account) {
			var b bytes.Buffer
			for i := 0; i < 3; i++ {
				_, header, body := testMessage(u.Name, i)
				b.WriteString("\x01\x01\x01\x01\n" + header + "\n" + body + "\x01\x01\x01\x01\n")
			}
			writeOwned(t, p, u, b.Bytes())
		}},
		{name: "longline", says: "2 messages, 2 written", make: func(t *testing.T, p string, u mailtest.Account) {
			var b bytes.Buffer
			b.WriteString("From sender@example.org Mon Jan  1 10:00:00 2024\nSubject: one long line\nMessage-ID: <long.1@mdmt.test>\n\n")
			b.Write(bytes.Repeat([]byte("0123456789abcdef"), long/16))
			b.WriteString("\n\nFrom sender@example.org Mon Jan  1 10:00:01 2024\nSubject: after it\nMessage-ID: <long.2@mdmt.test>\n\nshort\n")
			writeOwned(t, p, u, b.Bytes())
		}},
	}
}

func nthIndex(b, sep []byte, n int) int {
	at := -1
	for k := 0; k <= n; k++ {
		i := bytes.Index(b[at+1:], sep)
		if i < 0 {
			return -1
		}
		at += 1 + i
	}
	return at
}

// TestBadSpools migrates, in one run, accounts whose spools are a FIFO, a directory, a
// device, a socket, empty, cut short mid-message, bit-flipped, MMDF and a message with a
// line of tens of MiB, beside one plain account. Each must get a clear outcome of its own
// (refused with the reason, or migrated), no source may change, and the plain account must
// be migrated exactly.
func TestBadSpools(t *testing.T) {
	g := plainRig(t)
	cases := badSpools(testing.Short())
	type bad struct {
		badSpool
		u   mailtest.Account
		sum string
	}
	var bads []bad
	var args []string
	for i, c := range cases {
		u := mailtest.AddAccount(t, fmt.Sprintf("bad%d", i), "-s", "/usr/sbin/nologin")
		p := filepath.Join(g.spool, u.Name)
		c.make(t, p, u)
		b := bad{badSpool: c, u: u}
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.sum = contentKey(data)
		}
		bads = append(bads, b)
		args = append(args, "--user", u.Name)
	}
	good := &faultUser{Account: mailtest.AddAccount(t, "good", "-s", "/usr/sbin/nologin"), kind: "plain", n: 25}
	g.users = []*faultUser{good}
	g.reset(t)

	done := make(chan result, 1)
	go func() { done <- runBinaryErr(append(g.args("mbox"), args...)...) }()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the run did not end in 5 minutes (a spool that blocks it?)")
	}
	t.Logf("mbox: exit %d\n%s%s", r.code, r.stdout, clip(r.stderr))
	if r.code != 3 {
		t.Errorf("exit %d, want 3 (some users failed)", r.code)
	}
	for _, b := range bads {
		t.Run(b.name, func(t *testing.T) {
			var errLine string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(l, "maildirmig: error: ") && regexp.MustCompile(`\b`+b.u.Name+`\b`).MatchString(l) {
					errLine = l
				}
			}
			md := filepath.Join(b.u.Home, "Maildir")
			if b.fails != "" {
				if errLine == "" || !regexp.MustCompile(b.fails).MatchString(errLine) {
					t.Errorf("no error line for %s saying %q, got %q", b.u.Name, b.fails, errLine)
				}
				if _, err := os.Lstat(md); err == nil {
					if n := len(messageFiles(t, md)); n > 0 {
						t.Errorf("%d message files written for a refused spool", n)
					}
				}
			} else {
				if errLine != "" {
					t.Errorf("migrated spool failed: %s", errLine)
				}
				want := b.u.Name + ": " + b.says
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q", want)
				}
				var n int
				if _, err := fmt.Sscan(b.says, &n); err == nil {
					if got := len(messageFiles(t, md)); got != n {
						t.Errorf("%d message files, want %d", got, n)
					}
				}
			}
			if b.sum != "" {
				data, err := os.ReadFile(filepath.Join(g.spool, b.u.Name))
				if err != nil || contentKey(data) != b.sum {
					t.Errorf("the spool changed (%v)", err)
				}
			}
		})
	}
	if strings.Contains(r.stderr, good.Name) {
		t.Errorf("the plain account is named in stderr:\n%s", r.stderr)
	}
	g.checkExact(t, "plain account beside bad spools")
	t.Logf("bad inputs run: %d", len(bads))
}
