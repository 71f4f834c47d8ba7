package mailtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFetchDovecotWrittenMbox checks the recorder against the reference that Dovecot
// itself printed for the dovecot-written spool: if Fetch misreads doveadm, every e2e
// comparison built on it is worthless.
func TestFetchDovecotWrittenMbox(t *testing.T) {
	corpora := Corpora(t)
	dir := Dir(t)
	u := NewUser(t, dir, "judge")
	d := NewDovecot(t, DovecotConfig{MailLocation: "mbox:~/mail:INBOX=~/inbox", Users: []User{u}})
	src := filepath.Join(corpora, "dovecot-written")
	u.Mkdir(t, filepath.Join(u.Home, "mail"))
	u.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-inbox.mbox"), filepath.Join(u.Home, "inbox"))
	u.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-Archive.mbox"), filepath.Join(u.Home, "mail", "Archive"))
	expB, err := os.ReadFile(filepath.Join(src, "dovecot-mboxcl2.expected-doveadm-fetch.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := ParseFetchText(expB)
	if len(want) != 11 {
		t.Fatalf("expected file has %d records, want 11", len(want))
	}
	// The reference was printed on a UTC host.
	t.Setenv("TZ", "UTC")
	var got []Record
	for _, mb := range []string{"Archive", "INBOX"} {
		got = append(got, d.Fetch(t, u.Name, mb)...)
	}
	if len(got) != len(want) {
		t.Fatalf("fetched %d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		t.Run(w["mailbox"]+"/"+w["uid"], func(t *testing.T) {
			if g.Mailbox != w["mailbox"] || strconv.Itoa(int(g.UID)) != w["uid"] {
				t.Errorf("got %s/%d, want %s/%s", g.Mailbox, g.UID, w["mailbox"], w["uid"])
			}
			if s := strings.Join(g.Flags, " "); s != w["flags"] {
				t.Errorf("flags %q, want %q", s, w["flags"])
			}
			wantTime, err := time.ParseInLocation("2006-01-02 15:04:05", w["date.received"], time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			// Messages 9 and 10 of INBOX carry the date on which the file was written;
			// only the From_ dates can be compared.
			if g.Mailbox == "Archive" || g.UID <= 8 {
				if !g.Received.Equal(wantTime) {
					t.Errorf("received %v, want %v", g.Received.UTC(), wantTime)
				}
			}
			if strconv.FormatInt(g.VSize, 10) != w["size.virtual"] {
				t.Errorf("vsize %d, want %s", g.VSize, w["size.virtual"])
			}
			if s := g.HeaderValue("Subject"); s != w["hdr.subject"] {
				t.Errorf("subject %q, want %q", s, w["hdr.subject"])
			}
			for _, h := range []string{"X-UID", "Status", "X-IMAPbase", "Content-Length", "X-Keywords"} {
				if g.HeaderValue(h) != "" {
					t.Errorf("header %s visible to clients", h)
				}
			}
		})
	}
	st := d.Status(t, u.Name, "INBOX")
	if st.Messages != 10 || st.UIDValidity != 1795364162 || st.UIDNext != 11 {
		t.Errorf("INBOX status %+v, want 10 messages, uidvalidity 1795364162, uidnext 11", st)
	}
	if got, want := strings.Join(d.Mailboxes(t, u.Name), " "), "Archive INBOX"; got != want {
		t.Errorf("mailboxes %q, want %q", got, want)
	}
}
