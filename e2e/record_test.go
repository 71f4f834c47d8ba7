package e2e

// The proof on the server: maildirmig record reads what Dovecot shows a user before the switch
// (mbox) and after it (the Maildir maildirmig made), and maildirmig compare says whether any
// client would download mail again. A right switch compares equal; a wrong one (the namespace
// separator left at ".", a pop3_uidl_format that changes the UIDLs) is caught and named.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/dovecotview"
	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/migrate"
)

// recordSpool is an INBOX as Postfix writes it: one message in ISO-8859-1, one with CRLF line
// ends and a ">From" line, two plain ones.
var recordSpool = "From a@example.org Mon Jan  1 10:00:00 2024\nFrom: a@example.org\nSubject: one\nMessage-ID: <1@example.org>\n\nbody one\n\n" +
	"From b@example.org Mon Jan  1 11:00:00 2024\nFrom: b@example.org\nSubject: =?iso-8859-1?q?caf=E9?=\nMessage-ID: <2@example.org>\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9 cr\xe8me\n\n" +
	"From c@example.org Mon Jan  1 12:00:00 2024\r\nFrom: c@example.org\r\nSubject: crlf\r\nMessage-ID: <3@example.org>\r\n\r\nbody three\r\n>From the desk of\r\n\r\n" +
	"From d@example.org Tue Jan  2 09:30:00 2024\nFrom: d@example.org\nSubject: four\nMessage-ID: <4@example.org>\n\nbody four\n\n" +
	"From e@example.org Tue Jan  2 10:30:00 2024\nFrom: e@example.org\nSubject: five\nMessage-ID: <5@example.org>\n\nbody five\n\n"

var recordFolder = "From f@example.org Wed Jan  3 08:00:00 2024\nFrom: f@example.org\nSubject: list mail\n\nlist body\n\n" +
	"From g@example.org Wed Jan  3 09:00:00 2024\nFrom: g@example.org\nSubject: more list mail\n\nmore\n\n"

// newRecordEnv is a continuityEnv whose user has the INBOX above, a folder Archive and a
// folder Lists/dovecot beneath a \Noselect parent, after a client read, flagged, tagged,
// expunged, filed and subscribed over IMAP; one subscription has no folder any more.
func newRecordEnv(t *testing.T, name string) *continuityEnv {
	t.Helper()
	e := newContinuityEnv(t, name)
	e.user.WriteFile(t, filepath.Join(e.spool, name), []byte(recordSpool))
	e.user.WriteFile(t, filepath.Join(e.user.Home, "mail", "Archive"), []byte(recordFolder))
	e.user.Mkdir(t, filepath.Join(e.user.Home, "mail", "Lists"))
	e.user.WriteFile(t, filepath.Join(e.user.Home, "mail", "Lists", "dovecot"), []byte(recordFolder))
	e.imap(t,
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Seen \Flagged $Important)`,
		`STORE 2 +FLAGS (\Answered Work)`,
		`STORE 4 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		`CREATE "Entw&APw-rfe"`,
		`COPY 2:3 "Entw&APw-rfe"`,
		`SUBSCRIBE "Archive"`,
		`SUBSCRIBE "Lists/dovecot"`,
		`SUBSCRIBE "Entw&APw-rfe"`,
	)
	// A subscription whose folder another client deleted: LSUB still shows it.
	subs := filepath.Join(e.user.Home, "mail", ".subscriptions")
	b, err := os.ReadFile(subs)
	if err != nil {
		t.Fatal(err)
	}
	e.user.WriteFile(t, subs, append(b, "Gone\n"...))
	return e
}

// recordPasswd writes a passwd file with the users, for maildirmig's --passwd.
func recordPasswd(t *testing.T, users ...mailtest.User) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:x:%d:%d::%s:/bin/sh\n", u.Name, u.UID, u.GID, u.Home)
	}
	path := filepath.Join(mailtest.Dir(t), "passwd")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// maildirmig runs the binary as root.
func maildirmig(args ...string) result {
	return runCommand(exec.Command(binary, args...))
}

func TestRecordCompareSwitch(t *testing.T) {
	e := newRecordEnv(t, "rcalice")
	passwd := recordPasswd(t, e.user)
	dir := mailtest.Dir(t)
	file := func(name string) string { return filepath.Join(dir, name) }
	record := func(name string, want int, args ...string) result {
		t.Helper()
		full := append([]string{"record", "--passwd", passwd, "--dovecot-config", e.dovecot.Conf, "--hash"}, args...)
		r := maildirmig(append(full, file(name), e.user.Name)...)
		if r.code != want {
			t.Fatalf("record %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s\n%s", name, r.code, want, r.stdout, r.stderr, e.dovecot.Log())
		}
		return r
	}
	compare := func(before, after string, want int) result {
		t.Helper()
		r := maildirmig("compare", file(before), file(after))
		if r.code != want {
			t.Fatalf("compare %s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", before, after, r.code, want, r.stdout, r.stderr)
		}
		return r
	}

	// Before the night: Dovecot serves the mbox.
	r := record("before.jsonl", 0)
	if want := "rcalice: 5 mailboxes, 10 messages, 4 POP3 UIDLs\n"; !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
		t.Errorf("record: stdout %q, stderr %q; want it to start %q", r.stdout, r.stderr, want)
	}
	if st, err := os.Stat(file("before.jsonl")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the recording: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	checkAgainstClients(t, e, file("before.jsonl"))

	// The night: Dovecot stops, maildirmig migrates, Dovecot is switched to the Maildir.
	e.dovecot.Stop(t)
	r = maildirmig("record", "--passwd", passwd, "--dovecot-config", e.dovecot.Conf, file("stopped.jsonl"), e.user.Name)
	if r.code != 1 || !strings.Contains(r.stderr, "maildirmig: error: Dovecot is not running") {
		t.Errorf("record with Dovecot stopped: exit %d, stderr %q; want 1 and why", r.code, r.stderr)
	}
	if _, err := os.Lstat(file("stopped.jsonl")); err == nil {
		t.Errorf("a recording was written with Dovecot stopped")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files beside the recording, want none (no temporary file left)", len(ents)-1)
	}
	migrateBatch(t, e)
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)

	record("after.jsonl", 0)
	r = compare("before.jsonl", "after.jsonl", 0)
	if !strings.Contains(r.stdout, "\nrcalice: no difference\n") || !strings.HasSuffix(r.stdout, "\n1 user compared, 0 differ; no client downloads again\n") {
		t.Errorf("compare after a right switch:\n%s", r.stdout)
	}
	t.Logf("right switch:\n%s", r.stdout)

	// The same file again is refused, and left as it was.
	old, _ := os.ReadFile(file("after.jsonl"))
	r = record("after.jsonl", 1)
	if b, _ := os.ReadFile(file("after.jsonl")); string(b) != string(old) || !strings.Contains(r.stderr, "exists: a recording is never replaced without --force") {
		t.Errorf("recording over after.jsonl: stderr %q; the file changed: %t", r.stderr, string(b) != string(old))
	}

	// Wrong switch: the separator left at Maildir++'s ".": every nested folder is renamed.
	e.dovecot.Reconfigure(t, "namespace inbox {\n  inbox = yes\n  separator = .\n}\n")
	record("dot.jsonl", 0)
	r = compare("before.jsonl", "dot.jsonl", 1)
	for _, want := range []string{
		`settings: namespace separator "/" -> "."`,
		`rcalice: mailbox "Lists/dovecot": is missing after (2 messages before)`,
		`rcalice: mailbox "Lists.dovecot": is new after (2 messages)`,
		`rcalice: subscription "Lists/dovecot" is missing after`,
		"1 user compared, 1 differs; clients would download again: 2 messages missing",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("compare with the separator left at \".\": no line %q in\n%s", want, r.stdout)
		}
	}
	t.Logf("separator left at \".\":\n%s", r.stdout)

	// Wrong switch: pop3_uidl_format = %m, which a Maildir cannot serve: Dovecot's POP3 server
	// lists no UIDL at all, so every POP3 client that logs in fails or starts over.
	e.dovecot.Reconfigure(t, namespaceSlash+"pop3_uidl_format = %m\n")
	r = record("md5.jsonl", 3)
	if !strings.Contains(r.stderr, "maildirmig: error: user rcalice: POP3 UIDLs could not be listed: ") || !strings.Contains(r.stderr, "Header MD5 not found") {
		t.Errorf("record with pop3_uidl_format = %%m: stderr %q", r.stderr)
	}
	r = compare("before.jsonl", "md5.jsonl", 1)
	for _, want := range []string{
		`settings: pop3_uidl_format "%08Xu%08Xv" -> "%m"`,
		"1 user compared, 1 differs; clients would download again: 4 POP3 UIDLs changed",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("compare with pop3_uidl_format = %%m: no line %q in\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^rcalice: POP3 UIDLs were recorded before but not after \(.*Header MD5 not found.*\): POP3 clients would download again$`).MatchString(r.stdout) {
		t.Errorf("compare with pop3_uidl_format = %%m does not say why:\n%s", r.stdout)
	}
	t.Logf("pop3_uidl_format = %%m:\n%s", r.stdout)

	// Wrong switch: a format the Maildir can serve, but that gives other UIDLs (%g is the
	// Maildir file's base name there).
	e.dovecot.Reconfigure(t, namespaceSlash+"pop3_uidl_format = %g\n")
	record("guid.jsonl", 0)
	r = compare("before.jsonl", "guid.jsonl", 1)
	if !regexp.MustCompile(`(?m)^rcalice: mailbox "INBOX": UID 1: POP3 UIDL [0-9a-f]{16} -> [0-9]+\.M0Q0X[0-9a-f]+\.`).MatchString(r.stdout) ||
		!strings.HasSuffix(r.stdout, "clients would download again: 4 POP3 UIDLs changed\n") {
		t.Errorf("compare with pop3_uidl_format = %%g:\n%s", r.stdout)
	}
}

// checkAgainstClients reads the account as IMAP and POP3 clients do (continuityEnv.record:
// LIST, LSUB, STATUS, EXAMINE, FETCH, POP3 UIDL) and checks the recording at path says the
// same.
func checkAgainstClients(t *testing.T, e *continuityEnv, path string) {
	t.Helper()
	f, err := dovecotview.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.User(e.user.Name)
	if err != nil {
		t.Fatal(err)
	}
	seen := e.record(t)
	decode := func(names []string) []string {
		var out []string
		for _, n := range names {
			d, err := migrate.DecodeMUTF7(n)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		slices.Sort(out)
		return out
	}
	var names []string
	for _, mb := range u.Mailboxes {
		names = append(names, mb.Name)
	}
	slices.Sort(names)
	if got, want := names, decode(seen.Folders); !slices.Equal(got, want) {
		t.Errorf("recorded mailboxes %q, IMAP LIST %q", got, want)
	}
	if got, want := append([]string(nil), u.Subscribed...), decode(seen.Subscribed); !slices.Equal(got, want) {
		t.Errorf("recorded subscriptions %q, IMAP LSUB %q", got, want)
	}
	compared := 0
	for imapName, v := range seen.Mailboxes {
		name := decode([]string{imapName})[0]
		var mb *dovecotview.Mailbox
		for i := range u.Mailboxes {
			if u.Mailboxes[i].Name == name {
				mb = &u.Mailboxes[i]
			}
		}
		if mb == nil || mb.NoSelect {
			t.Errorf("%s: IMAP selects it, the recording has %+v", name, mb)
			continue
		}
		if mb.UIDValidity != v.Status.UIDValidity || mb.UIDNext != v.Status.UIDNext || uint32(mb.Count) != v.Status.Messages || len(mb.Messages) != len(v.Messages) {
			t.Errorf("%s: recorded UIDVALIDITY %d UIDNEXT %d, %d messages; IMAP %+v, %d messages", name, mb.UIDValidity, mb.UIDNext, mb.Count, v.Status, len(v.Messages))
			continue
		}
		for i, m := range v.Messages {
			r := mb.Messages[i]
			if r.UID != m.UID || !slices.Equal(r.Flags, m.Flags) || !r.Received.Equal(m.InternalDate) || r.Size != m.Size {
				t.Errorf("%s: recorded %+v, IMAP %+v", name, r, m)
			}
			compared++
		}
	}
	var uidls []string
	for _, m := range u.Mailboxes[0].Messages {
		uidls = append(uidls, m.UIDL)
	}
	if u.Mailboxes[0].Name != "INBOX" || !slices.Equal(uidls, seen.UIDL) {
		t.Errorf("recorded INBOX UIDLs %q, POP3 UIDL %q", uidls, seen.UIDL)
	}
	if compared != 10 || len(uidls) != 4 {
		t.Errorf("%d messages and %d UIDLs compared with what clients see, want 10 and 4", compared, len(uidls))
	}
}

// TestRecordUsers records, as an administrator would without naming anyone, the users of a
// passwd file beneath --root: one Dovecot reads, one whose home Dovecot may not enter, and two
// Dovecot does not know (root, and an account missing from its userdb). The unreadable user
// fails (exit 3) and is named; the others are recorded; the unknown ones are only noted.
// Compared with itself, the file says which user could not be compared (exit 3).
func TestRecordUsers(t *testing.T) {
	e := newRecordEnv(t, "rcbob")
	bad := mailtest.NewUser(t, filepath.Dir(filepath.Dir(e.user.Home)), "rcbad")
	e.dovecot.AddUser(t, bad)
	if err := os.Chown(bad.Home, 0, 0); err != nil {
		t.Fatal(err)
	}
	ghost := mailtest.User{Name: "rcghost", UID: bad.UID + 1, GID: bad.GID + 1, Home: "/nonexistent"}
	root := mailtest.Dir(t)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	pw := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d::%s:/bin/sh\n%s:x:%d:%d::%s:/bin/sh\n%s:x:%d:%d::%s:/bin/sh\n",
		e.user.Name, e.user.UID, e.user.GID, e.user.Home, bad.Name, bad.UID, bad.GID, bad.Home, ghost.Name, ghost.UID, ghost.GID, ghost.Home)
	// The test's uids are above Debian's UID_MAX: the tree's login.defs lets them in.
	for name, body := range map[string]string{"etc/passwd": pw, "etc/group": "", "etc/login.defs": "UID_MIN 1000\nUID_MAX 99999\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(mailtest.Dir(t), "before.jsonl")
	r := maildirmig("record", "--root", root, "--dovecot-config", e.dovecot.Conf, "-j", "3", path)
	if r.code != 3 {
		t.Fatalf("record: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, re := range []string{
		`(?m)^maildirmig: error: user rcbad: doveadm .*Permission denied`,
		`(?m)^maildirmig: error: 1 of 4 users could not be recorded in full; .*before.jsonl holds what could be$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stderr) {
			t.Errorf("record's stderr does not match %s:\n%s", re, r.stderr)
		}
	}
	wantOut := "root: not a Dovecot user: userdb lookup: user root doesn't exist\n" +
		"rcbob: 5 mailboxes, 10 messages, 4 POP3 UIDLs\n" +
		"rcghost: not a Dovecot user: userdb lookup: user rcghost doesn't exist\n" +
		"recorded 4 users, 10 messages, in " + path + " (2 not Dovecot users)\n"
	if r.stdout != wantOut {
		t.Errorf("record's stdout:\n%s\nwant\n%s", r.stdout, wantOut)
	}
	r = maildirmig("compare", path, path)
	if r.code != 3 || !strings.Contains(r.stderr, "maildirmig: error: user rcbad: could not be compared: could not be recorded before: doveadm ") ||
		!strings.Contains(r.stdout, "rcbob: no difference\n") || !strings.HasSuffix(r.stdout, "4 users compared, 0 differ, 1 could not be compared; no client downloads again\n") {
		t.Errorf("compare: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// Named, a user Dovecot does not know is an error.
	r = maildirmig("record", "--root", root, "--dovecot-config", e.dovecot.Conf, filepath.Join(filepath.Dir(path), "named.jsonl"), "rcbob", "rcghost")
	if r.code != 3 || !strings.Contains(r.stderr, "maildirmig: error: user rcghost: Dovecot does not serve this user: userdb lookup: user rcghost doesn't exist\n") {
		t.Errorf("record naming a user Dovecot does not know: exit %d, stderr %q", r.code, r.stderr)
	}
}
