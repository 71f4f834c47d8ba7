package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// TestEmptyMailboxesKeepUIDs: an INBOX and folders that had mail delivered, all of it then
// expunged over IMAP, keep the UIDVALIDITY and UIDNEXT Dovecot showed once they are Maildirs.
// Dovecot leaves a mailbox it emptied with its pseudo-message, whose X-IMAP carries both
// (Lists/dovecot here); a POP3 server or a mail reader that empties a spool, or an
// administrator, leaves 0 bytes, and Dovecot keeps both in its index alone (the INBOX and
// Archive here): the migration reads them there, and skel --existing, run next on the night,
// leaves the Maildir it made.
func TestEmptyMailboxesKeepUIDs(t *testing.T) {
	e := newContinuityEnv(t, "emptydan")
	mail := filepath.Join(e.user.Home, "mail")
	e.user.Mkdir(t, filepath.Join(mail, "Lists"))
	mbox := func(n int) []byte {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "From a@example.org Mon Jan  1 10:%02d:00 2024\nSubject: message %d\n\nbody\n\n", i, i)
		}
		return []byte(b.String())
	}
	spool := filepath.Join(e.spool, e.user.Name)
	e.user.WriteFile(t, spool, mbox(3))
	e.user.WriteFile(t, filepath.Join(mail, "Archive"), mbox(4))
	e.user.WriteFile(t, filepath.Join(mail, "Lists", "dovecot"), mbox(2))
	mailboxes := []string{"INBOX", "Archive", "Lists/dovecot"}
	var cmds []string
	for _, m := range mailboxes {
		cmds = append(cmds, `SELECT "`+m+`"`, `STORE 1:* +FLAGS (\Deleted)`, `EXPUNGE`)
	}
	e.imap(t, cmds...)
	for _, f := range []string{spool, filepath.Join(mail, "Archive")} {
		e.user.WriteFile(t, f, nil)
	}

	before := map[string]mailtest.MailboxStatus{}
	c := e.dovecot.IMAP(t, e.user.Name)
	for _, m := range mailboxes {
		before[m] = c.Examine(t, m)
		if st := before[m]; st.Messages != 0 || st.UIDNext <= 1 {
			t.Fatalf("%s over mbox: %+v; the test needs an empty mailbox that had mail", m, st)
		}
	}
	c.Close()
	if st, err := os.Stat(spool); err != nil || st.Size() != 0 {
		t.Fatalf("the spool is no longer empty (%v): the test would not read Dovecot's index", err)
	}

	// The night's runbook: migrate, then skel --existing for users without a Maildir.
	e.dovecot.Stop(t)
	migrateBatch(t, e)
	dir := mailtest.Dir(t)
	passwd := filepath.Join(dir, "passwd")
	line := fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh\n", e.user.Name, e.user.UID, e.user.GID, e.user.Home)
	if err := os.WriteFile(passwd, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCommand(exec.Command(binary, "skel", "--existing", "-q", "--passwd", passwd, "--skel-dir", filepath.Join(dir, "skel"))); r.code != 0 {
		t.Fatalf("maildirmig skel --existing: exit %d: %s", r.code, r.stderr)
	}
	e.dovecot.SwitchMailLocation(t, "maildir:~/Maildir")
	e.dovecot.Start(t)
	c = e.dovecot.IMAP(t, e.user.Name)
	for _, m := range mailboxes {
		if got := c.Examine(t, m); got != before[m] {
			t.Errorf("%s: Dovecot shows %+v on the Maildir, %+v on the mbox", m, got, before[m])
		}
	}
}
