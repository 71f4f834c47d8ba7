package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// runBinary runs the maildirmig binary as root (the test process) and returns its exit code and
// output.
func runBinary(t *testing.T, args ...string) result {
	t.Helper()
	r := runBinaryErr(args...)
	if r.code < 0 {
		t.Fatalf("run maildirmig: %s", r.stderr)
	}
	return r
}

// runBinaryErr is runBinary for goroutines other than the test's: a binary that could not be
// started gives code -1 and the reason in stderr.
func runBinaryErr(args ...string) result {
	return runCommand(exec.Command(binary, args...))
}

// testMessage is the i-th message of a test mailbox: its Message-ID, and a body whose length
// varies, so that a message cut short or merged with its neighbour shows.
func testMessage(owner string, i int) (id string, header, body string) {
	id = fmt.Sprintf("<%d.%s@mdmt.test>", i, owner)
	header = fmt.Sprintf("From: Sender %d <sender@example.org>\nTo: %s@localhost\nSubject: message %d for %s\nMessage-ID: %s\nDate: Mon, 1 Jan 2024 10:%02d:%02d +0000\n",
		i, owner, i, owner, id, (i/60)%60, i%60)
	var b strings.Builder
	for j := 0; j < 1+(i*37)%300; j++ {
		fmt.Fprintf(&b, "message %d line %d of a body that varies in length\n", i, j)
	}
	return id, header, b.String()
}

// buildMbox writes an mbox of n messages as an MTA would; every third message was read
// (Status: RO, so it belongs in cur/ with S), the others are new.
func buildMbox(owner string, n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		_, header, body := testMessage(owner, i)
		fmt.Fprintf(&b, "From sender@example.org Mon Jan  1 10:%02d:%02d 2024\n%s", (i/60)%60, i%60, header)
		if i%3 == 0 {
			b.WriteString("Status: RO\n")
		}
		b.WriteString("\n" + body + "\n")
	}
	return b.Bytes()
}

// writeSpool stores an mbox of n messages as dir/NAME, owned by the user and their primary
// group, mode 0600, as local(8) creates a spool.
func writeSpool(t *testing.T, dir, name string, uid, gid, n int) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buildMbox(name, n), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// checkTree asserts that every directory and file beneath maildir (maildir included) is owned
// by uid and gid, that directories are 0700 and files 0600, and that nothing else (a symlink,
// a FIFO) is there. It returns the message files of cur/ and new/, relative to maildir.
func checkTree(t *testing.T, maildir string, uid, gid int) []string {
	t.Helper()
	var msgs []string
	seen := 0
	err := filepath.WalkDir(maildir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		seen++
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(filepath.Dir(maildir), p)
		if int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
		}
		switch {
		case fi.IsDir():
			if perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); perm != 0o700 {
				t.Errorf("%s: directory mode %v, want 0700", rel, perm)
			}
		case fi.Mode().IsRegular():
			if perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); perm != 0o600 {
				t.Errorf("%s: file mode %v, want 0600", rel, perm)
			}
			if sub := filepath.Base(filepath.Dir(p)); filepath.Dir(filepath.Dir(p)) == maildir && (sub == "cur" || sub == "new") {
				msgs = append(msgs, sub+"/"+fi.Name())
			}
		default:
			t.Errorf("%s: %v, want only directories and regular files", rel, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", maildir, err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Lstat(filepath.Join(maildir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("%s/%s missing or not a directory", maildir, sub)
		}
	}
	if fi, err := os.Lstat(filepath.Join(maildir, "dovecot-uidlist")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s/dovecot-uidlist missing or not a regular file", maildir)
	}
	if ents, _ := os.ReadDir(filepath.Join(maildir, "tmp")); len(ents) != 0 {
		t.Errorf("%s/tmp holds %d files after the run", maildir, len(ents))
	}
	t.Logf("%s: %d directories and files checked, %d messages", maildir, seen, len(msgs))
	return msgs
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// messageIDs returns the Message-ID of every message file, counting repeats.
func messageIDs(t *testing.T, maildir string, files []string) map[string]int {
	t.Helper()
	ids := make(map[string]int)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(maildir, f))
		if err != nil {
			t.Fatal(err)
		}
		m := messageIDRe.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: no Message-ID", f)
			continue
		}
		ids[string(m[1])]++
	}
	return ids
}

var messageIDRe = regexp.MustCompile(`(?mi)^Message-ID: (<[^>\n]*>)$`)

// TestBatchRealUsers migrates, as root, the spools of real accounts made with useradd, each
// odd in one way the old bash loop got wrong: a nologin shell, a home outside /home, a primary
// group not named after the user, a home reachable only through a supplementary group; and
// root, whose home is given by a --passwd file so that the host's /root is never touched.
// Every file and directory created must belong to the user's uid and passwd primary gid with
// Maildir modes, every message must be there, and verify must prove it.
func TestBatchRealUsers(t *testing.T) {
	mailtest.RequireUserTools(t, "groupadd", "groupdel")
	base, err := os.MkdirTemp("/srv", "mdmt-")
	if err != nil {
		t.Skipf("cannot make a home outside /home: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}

	staff, staffGID := mailtest.AddGroup(t, "staff")
	extra, extraGID := mailtest.AddGroup(t, "extra")
	// erin's home lies in a directory only the group extra may traverse: the worker reaches it
	// only if it runs with erin's supplementary groups.
	gate := filepath.Join(base, "gate")
	if err := os.Mkdir(gate, 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(gate, 0, extraGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(gate, 0o710); err != nil {
		t.Fatal(err)
	}

	type acct struct {
		u        mailtest.Account
		messages int
	}
	accounts := []acct{
		{u: mailtest.AddAccount(t, "bob", "-s", "/usr/sbin/nologin"), messages: 7},
		{u: mailtest.AddAccount(t, "carol", "-d", filepath.Join(base, "carol"), "-s", "/bin/sh"), messages: 12},
		{u: mailtest.AddAccount(t, "dave", "-g", staff, "-s", "/bin/sh"), messages: 5},
		{u: mailtest.AddAccount(t, "erin", "-G", extra, "-d", filepath.Join(gate, "erin"), "-s", "/bin/sh"), messages: 9},
	}
	if g := accounts[2].u.GID; g != staffGID {
		t.Fatalf("dave's primary gid is %d, want %s's %d", g, staff, staffGID)
	}
	if _, err := user.LookupGroup(accounts[2].u.Name); err == nil {
		t.Fatalf("a group named %s exists: the test would not tell the passwd gid from it", accounts[2].u.Name)
	}
	if accounts[0].u.Home != "/home/"+accounts[0].u.Name {
		t.Fatalf("bob's home is %s, want the default under /home", accounts[0].u.Home)
	}

	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	audit := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	common := []string{"--spool-dir", spool, "--state-dir", state, "--audit-log", audit}
	var selected []string
	homes := map[string][]string{}
	for _, a := range accounts {
		writeSpool(t, spool, a.u.Name, a.u.UID, a.u.GID, a.messages)
		selected = append(selected, "--user", a.u.Name)
		homes[a.u.Name] = listDir(t, a.u.Home)
	}

	r := runBinary(t, append(append([]string{"mbox", "-j", "2", "--audit-messages"}, common...), selected...)...)
	t.Logf("mbox: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("mbox: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, a := range accounts {
		u := a.u
		t.Run(u.Name, func(t *testing.T) {
			want := fmt.Sprintf("%s: %d messages, %d written, 0 already there", u.Name, a.messages, a.messages)
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
			maildir := filepath.Join(u.Home, "Maildir")
			files := checkTree(t, maildir, u.UID, u.GID)
			if len(files) != a.messages {
				t.Errorf("%d message files, want %d", len(files), a.messages)
			}
			ids := messageIDs(t, maildir, files)
			for i := 0; i < a.messages; i++ {
				id, _, _ := testMessage(u.Name, i)
				if ids[id] != 1 {
					t.Errorf("message %s is there %d times, want once", id, ids[id])
				}
			}
			// The home gained the Maildir and nothing else, and is still the user's.
			after := listDir(t, u.Home)
			if got, want := strings.Join(after, " "), strings.Join(append(append([]string(nil), homes[u.Name]...), "Maildir"), " "); got != sortedWords(want) {
				t.Errorf("home holds %q, want %q", got, sortedWords(want))
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(u.Home, &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != u.UID || int(st.Gid) != u.GID {
				t.Errorf("home owner %d:%d, want %d:%d", st.Uid, st.Gid, u.UID, u.GID)
			}
			// The spool is read, never changed.
			b, err := os.ReadFile(filepath.Join(spool, u.Name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, buildMbox(u.Name, a.messages)) {
				t.Errorf("the spool changed")
			}
		})
	}

	v := runBinary(t, append(append([]string{"verify"}, common...), selected...)...)
	t.Logf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	if v.code != 0 {
		t.Errorf("verify: exit %d, stderr %q", v.code, v.stderr)
	}
	for _, a := range accounts {
		if want := fmt.Sprintf("%s: %d of %d messages verified", a.u.Name, a.messages, a.messages); !strings.Contains(v.stdout, want) {
			t.Errorf("verify stdout lacks %q", want)
		}
	}

	// A second run finds everything in place and writes nothing.
	again := runBinary(t, append(append([]string{"mbox"}, common...), selected...)...)
	if again.code != 0 || !strings.Contains(again.stdout, fmt.Sprintf("%d users: 0 migrated, %d up to date", len(accounts), len(accounts))) {
		t.Errorf("second run: exit %d, stdout %q, stderr %q", again.code, again.stdout, again.stderr)
	}

	t.Run("root", func(t *testing.T) {
		// root through a --passwd file that gives it a temporary home: its Maildir goes there, not
		// to /root, and its spool is the test spool's root file, not /var/mail/root.
		home := filepath.Join(t.TempDir(), "root")
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		passwd := filepath.Join(t.TempDir(), "passwd")
		if err := os.WriteFile(passwd, []byte("root:x:0:0:root:"+home+":/bin/bash\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		const n = 4
		writeSpool(t, spool, "root", 0, 0, n)
		args := append([]string{"--passwd", passwd, "--user", "root"}, common...)
		r := runBinary(t, append([]string{"mbox"}, args...)...)
		t.Logf("mbox: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("root: %d messages, %d written", n, n)) {
			t.Fatalf("mbox as root: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		maildir := filepath.Join(home, "Maildir")
		if files := checkTree(t, maildir, 0, 0); len(files) != n {
			t.Errorf("%d message files, want %d", len(files), n)
		}
		v := runBinary(t, append([]string{"verify"}, args...)...)
		if v.code != 0 || !strings.Contains(v.stdout, fmt.Sprintf("root: %d of %d messages verified", n, n)) {
			t.Errorf("verify root: exit %d, stdout %q, stderr %q", v.code, v.stdout, v.stderr)
		}
	})
}

func sortedWords(s string) string {
	w := strings.Fields(s)
	sort.Strings(w)
	return strings.Join(w, " ")
}
