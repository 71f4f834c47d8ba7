package e2e

// The way back, judged by Dovecot: after a day on the Maildir, a rollback must give Dovecot,
// set back to mbox, exactly what it showed from the Maildir; and a migration after that must
// give the same once more.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noDateNoID is a message with neither Date nor Message-ID, as some scripts send.
const noDateNoID = "From: script@example.org\r\nTo: someone@example.org\r\nSubject: no date, no id\r\n\r\nsent by a script\r\n"

// TestRollbackJudged migrates an account, works on the Maildir through Dovecot for a day (new
// mail with From and >From body lines, flags and keywords set and cleared, a message moved to
// another folder, an expunge, a new subscribed folder, a message with neither Date nor
// Message-ID), records what clients see, rolls back and records Dovecot on the mbox, then
// migrates again and records Dovecot on the Maildir: all three recordings must be equal.
func TestRollbackJudged(t *testing.T) {
	e := newTwoPassEnv(t, "rback")
	mboxLocation := "mbox:~/mail:INBOX=" + e.postfix.Mailbox(e.user.Name)
	e.deliver(t, 0, 8)
	e.imap(t,
		`SELECT INBOX`,
		`FETCH 1:8 (FLAGS)`,
		`STORE 2 +FLAGS (\Seen Later)`,
		`CREATE Work`,
		`COPY 3 Work`,
		`SUBSCRIBE Work`,
	)
	e.dovecot.Stop(t)
	e.pass(t, "the migration")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	e.imap(t,
		`SELECT INBOX`,
		`STORE 1 +FLAGS (\Flagged $Work)`,
		`STORE 2 -FLAGS (\Seen Later)`,
		`COPY 4 Work`,
		`STORE 4 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(appendFromLines), appendFromLines),
		fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(noDateNoID), noDateNoID),
		`CREATE "Projects/2026"`,
		`SUBSCRIBE "Projects/2026"`,
		`COPY 5 "Projects/2026"`,
		`SELECT Work`,
		`STORE 1 +FLAGS (\Answered $Done)`,
	)
	onMaildir := e.record(t)

	e.dovecot.Stop(t)
	r := runBinary(t, "rollback", "--spool-dir", e.spool, "--state-dir", e.state, "--audit-log", e.audit, "--user", e.user.Name)
	if r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("rollback: %s", strings.TrimSpace(r.stdout))
	e.dovecot.SwitchMailLocation(t, mboxLocation)
	e.dovecot.Start(t)
	onMbox := e.record(t)
	compare(t, onMaildir, onMbox)
	t.Logf("after the rollback: %d folders, %d subscribed, %d INBOX UIDLs compared", len(onMbox.Folders), len(onMbox.Subscribed), len(onMbox.UIDL))

	// A second rollback writes nothing.
	e.dovecot.Stop(t)
	spool, err := os.ReadFile(e.postfix.Mailbox(e.user.Name))
	if err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, "rollback", "--spool-dir", e.spool, "--state-dir", e.state, "--audit-log", e.audit, "--user", e.user.Name)
	if r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Errorf("a second rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if again, err := os.ReadFile(e.postfix.Mailbox(e.user.Name)); err != nil || string(again) != string(spool) {
		t.Errorf("a second rollback rewrote the spool (%v)", err)
	}

	// And the way forward once more, into the Maildir that was kept.
	e.pass(t, "migrating again")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	again := e.record(t)
	compare(t, onMaildir, again)
}

// TestRollbackKeepsLateMail: mail Postfix delivered into the spool after the last pass is kept
// in the rolled-back mbox, after the Maildir's messages, and Dovecot on the mbox numbers it
// after them.
func TestRollbackKeepsLateMail(t *testing.T) {
	e := newTwoPassEnv(t, "rblate")
	e.deliver(t, 0, 5)
	e.imap(t, `SELECT INBOX`, `FETCH 1:5 (FLAGS)`)
	e.dovecot.Stop(t)
	e.pass(t, "the migration")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	e.imap(t, `SELECT INBOX`, `STORE 1 +FLAGS (\Flagged)`)
	onMaildir := e.record(t)
	// Postfix was never switched: two more reach the spool.
	e.deliver(t, 5, 2)
	e.dovecot.Stop(t)
	r := runBinary(t, "rollback", "--spool-dir", e.spool, "--state-dir", e.state, "--audit-log", e.audit, "--user", e.user.Name)
	if r.code != 0 || !strings.Contains(r.stdout, "that arrived since kept") {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.dovecot.SwitchMailLocation(t, "mbox:~/mail:INBOX="+e.postfix.Mailbox(e.user.Name))
	e.dovecot.Start(t)
	onMbox := e.record(t)
	was, now := onMaildir.Mailboxes["INBOX"], onMbox.Mailboxes["INBOX"]
	if len(now.Messages) != len(was.Messages)+2 {
		t.Fatalf("INBOX on mbox: %d messages, want the Maildir's %d and the 2 delivered since", len(now.Messages), len(was.Messages))
	}
	for i, m := range was.Messages {
		if fmt.Sprint(now.Messages[i]) != fmt.Sprint(m) {
			t.Errorf("message %d:\n%+v\nwas\n%+v", i+1, now.Messages[i], m)
		}
	}
	for _, m := range now.Messages[len(was.Messages):] {
		if m.UID < was.Status.UIDNext {
			t.Errorf("late mail got UID %d, below the UIDNEXT %d clients knew", m.UID, was.Status.UIDNext)
		}
	}
	if now.Status.UIDValidity != was.Status.UIDValidity {
		t.Errorf("UIDVALIDITY %d, was %d", now.Status.UIDValidity, was.Status.UIDValidity)
	}
	if _, err := os.Stat(filepath.Join(e.user.Home, "Maildir", "dovecot-uidlist")); err != nil {
		t.Errorf("the Maildir was touched: %v", err)
	}
}

// TestRollbackThenMaildirRemoved: after a rollback the administrator removes the Maildir to
// migrate again from scratch; the next pass gives Dovecot on a new Maildir exactly what it
// showed before the rollback, with the same UIDs.
func TestRollbackThenMaildirRemoved(t *testing.T) {
	e := newTwoPassEnv(t, "rbgone")
	e.deliver(t, 0, 6)
	e.imap(t, `SELECT INBOX`, `FETCH 1:6 (FLAGS)`, `CREATE Old`, `COPY 2 Old`)
	e.dovecot.Stop(t)
	e.pass(t, "the migration")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	e.imap(t,
		`SELECT INBOX`,
		`STORE 3 +FLAGS (\Seen $Later)`,
		`STORE 1 +FLAGS (\Deleted)`,
		`EXPUNGE`,
		fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(appendFromLines), appendFromLines),
	)
	onMaildir := e.record(t)
	e.dovecot.Stop(t)
	if r := runBinary(t, "rollback", "--spool-dir", e.spool, "--state-dir", e.state, "--audit-log", e.audit, "--user", e.user.Name); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(e.user.Home, "Maildir")); err != nil {
		t.Fatal(err)
	}
	e.pass(t, "migrating again into a new Maildir")
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	compare(t, onMaildir, e.record(t))
}
