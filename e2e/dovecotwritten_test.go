package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// TestDovecotWrittenReference converts the spool and the Archive folder that Dovecot itself
// wrote, serves the Maildir with Dovecot, and demands what Dovecot reported for the mbox
// (dovecot-mboxcl2.expected-doveadm-fetch.txt): UIDs, flags and keywords, received dates,
// virtual sizes and subjects, plus the UIDVALIDITY and next UID from X-IMAPbase.
func TestDovecotWrittenReference(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequireDovecot(t)
	src := filepath.Join(corpora, "dovecot-written")
	expB, err := os.ReadFile(filepath.Join(src, "dovecot-mboxcl2.expected-doveadm-fetch.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := mailtest.ParseFetchText(expB)

	dir := mailtest.Dir(t)
	u := mailtest.NewUser(t, dir, "written")
	// The reference was printed on a UTC host, and the From_ lines carry no zone.
	u.TZ = "UTC"
	u.MailLocation = "maildir:~/Maildir"
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{MailLocation: "maildir:~/Maildir", Users: []mailtest.User{u}})
	maildir := filepath.Join(u.Home, "Maildir")
	for _, c := range []struct{ file, dst string }{
		{"dovecot-mboxcl2-inbox.mbox", maildir},
		{"dovecot-mboxcl2-Archive.mbox", filepath.Join(maildir, ".Archive")},
	} {
		spool := filepath.Join(u.Home, c.file)
		u.CopyFile(t, filepath.Join(src, c.file), spool)
		if r := convert(t, u, spool, c.dst); r.code != 0 {
			t.Fatalf("convert %s: exit %d, stderr %q", c.file, r.code, r.stderr)
		}
	}
	if got := strings.Join(d.Mailboxes(t, u.Name), " "); got != "Archive INBOX" {
		t.Errorf("mailboxes %q, want %q", got, "Archive INBOX")
	}
	var got []mailtest.Record
	for _, mb := range []string{"Archive", "INBOX"} {
		got = append(got, d.Fetch(t, u.Name, mb)...)
	}
	if len(got) != len(want) {
		t.Fatalf("Dovecot sees %d messages in the Maildir, the reference lists %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		t.Run(w["mailbox"]+"/"+w["uid"], func(t *testing.T) {
			if g.Mailbox != w["mailbox"] || strconv.Itoa(int(g.UID)) != w["uid"] {
				t.Errorf("message %s/%d, want %s/%s", g.Mailbox, g.UID, w["mailbox"], w["uid"])
			}
			wantFlags := mailtest.Record{Flags: strings.Fields(w["flags"])}
			if got, want := strings.Join(g.FlagsWithout(`\Recent`), " "), strings.Join(wantFlags.FlagsWithout(`\Recent`), " "); got != want {
				t.Errorf("flags %q, want %q", got, want)
			}
			wantTime, err := time.ParseInLocation("2006-01-02 15:04:05", w["date.received"], time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if !g.Received.Equal(wantTime) {
				t.Errorf("received %v, want %v", g.Received.UTC(), wantTime)
			}
			if strconv.FormatInt(g.VSize, 10) != w["size.virtual"] {
				t.Errorf("vsize %d, want %s", g.VSize, w["size.virtual"])
			}
			if s := g.HeaderValue("Subject"); s != w["hdr.subject"] {
				t.Errorf("subject %q, want %q", s, w["hdr.subject"])
			}
		})
	}
	for _, c := range []struct {
		mailbox          string
		validity, uidnxt uint32
	}{{"INBOX", 1795364162, 11}, {"Archive", 1795364161, 2}} {
		st := d.Status(t, u.Name, c.mailbox)
		if st.UIDValidity != c.validity || st.UIDNext != c.uidnxt {
			t.Errorf("%s: uidvalidity %d uidnext %d, want %d and %d", c.mailbox, st.UIDValidity, st.UIDNext, c.validity, c.uidnxt)
		}
	}
}
