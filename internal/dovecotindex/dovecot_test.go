package dovecotindex

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// TestRealDovecot has a real Dovecot serve mbox mailboxes (an INBOX in a spool directory,
// folders in ~/mail, one nested) that had mail delivered and then some or all of it expunged
// over IMAP, two of them emptied to 0 bytes afterwards as a POP3 server or a mail reader
// leaves them, one large enough for Dovecot to write a dovecot.index snapshot that its
// log has moved past (a message delivered since). What EXAMINE reports of each must be what ReadMbox reads.
func TestRealDovecot(t *testing.T) {
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	spool := filepath.Join(dir, "spool")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(spool, 0o1777); err != nil {
		t.Fatal(err)
	}
	u := mailtest.NewUser(t, dir, "idxuser")
	root := filepath.Join(u.Home, "mail")
	u.Mkdir(t, root)
	u.Mkdir(t, filepath.Join(root, "Lists"))
	mbox := func(n int, body string) []byte {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "From a@example.org Mon Jan  1 10:%02d:00 2024\nSubject: message %d\n\n%s\n\n", i%60, i, body)
		}
		return []byte(b.String())
	}
	inbox := filepath.Join(spool, u.Name)
	u.WriteFile(t, inbox, mbox(3, "body"))
	u.WriteFile(t, filepath.Join(root, "Archive"), mbox(4, "body"))
	u.WriteFile(t, filepath.Join(root, "Lists", "dovecot"), mbox(5, "body"))
	u.WriteFile(t, filepath.Join(root, "Big"), mbox(400, strings.Repeat("text ", 100)))
	d := mailtest.StartDovecot(t, mailtest.DovecotConfig{MailLocation: "mbox:~/mail:INBOX=" + inbox, Users: []mailtest.User{u}})
	c := d.IMAP(t, u.Name)
	run := func(cmds ...string) {
		t.Helper()
		for _, cmd := range cmds {
			if _, err := c.Command(cmd); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, d.Log())
			}
		}
	}
	run(`SELECT INBOX`, `STORE 1:* +FLAGS (\Deleted)`, `EXPUNGE`,
		`SELECT Archive`, `STORE 1:* +FLAGS (\Deleted)`, `EXPUNGE`,
		`SELECT "Lists/dovecot"`, `STORE 2:4 +FLAGS (\Deleted)`, `EXPUNGE`,
		`SELECT Big`)
	// Flag changes over every message of Big fill its log until Dovecot writes a snapshot.
	for i := 0; i < 4; i++ {
		run(`STORE 1:* +FLAGS (\Seen \Flagged)`, `STORE 1:* -FLAGS (\Seen \Flagged)`)
	}
	run(`STORE 1:* +FLAGS (\Deleted)`, `EXPUNGE`, `CLOSE`)
	c.Close()
	// A message delivered to Big since goes into the log, past the snapshot that session left.
	big := filepath.Join(root, "Big")
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	u.WriteFile(t, big, append(b, mbox(1, "late")...))
	c = d.IMAP(t, u.Name)
	c.Examine(t, "Big")
	c.Close()
	// Emptied behind Dovecot's back: it keeps the UIDs of these in its index alone.
	for _, f := range []string{inbox, filepath.Join(root, "Archive"), big} {
		u.WriteFile(t, f, nil)
	}

	c = d.IMAP(t, u.Name)
	rootfd := openDir(t, root)
	snapshots := 0
	for _, name := range []string{"INBOX", "Archive", "Lists/dovecot", "Big"} {
		want := c.Examine(t, name)
		if want.UIDNext <= 1 {
			t.Fatalf("%s: UIDNEXT %d: the test needs a mailbox that had mail", name, want.UIDNext)
		}
		got, err := ReadMbox(rootfd, name)
		if err != nil || got.UIDValidity != want.UIDValidity || got.NextUID != want.UIDNext {
			t.Errorf("%s: read %+v, %v; Dovecot shows UIDVALIDITY %d, UIDNEXT %d", name, got, err, want.UIDValidity, want.UIDNext)
		}
		dir, base := filepath.Split(name)
		idx := filepath.Join(root, dir, ".imap", base)
		if b, err := os.ReadFile(filepath.Join(idx, IndexName)); err == nil {
			log, err := os.Stat(filepath.Join(idx, LogName))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: snapshot head %d, log %d bytes", name, le.Uint32(b[idxLogHeadOffset:]), log.Size())
			if head := int64(le.Uint32(b[idxLogHeadOffset:])); head < log.Size() {
				snapshots++
			}
		}
	}
	if snapshots == 0 {
		t.Errorf("Dovecot wrote no dovecot.index that its log moved past: the test no longer covers the snapshot")
	}
	for _, f := range []string{inbox, filepath.Join(root, "Archive"), big} {
		if st, err := os.Stat(f); err != nil || st.Size() != 0 {
			t.Errorf("%s is no longer empty: Dovecot wrote to it", f)
		}
	}
}
