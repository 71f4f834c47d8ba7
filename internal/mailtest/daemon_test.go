package mailtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonAgreesWithDoveadm starts the real daemon and checks that what an IMAP and a POP3
// client see matches what doveadm reports, so that tests may use either view.
func TestDaemonAgreesWithDoveadm(t *testing.T) {
	corpora := Corpora(t)
	dir := Dir(t)
	u := NewUser(t, dir, "client")
	u.Mkdir(t, filepath.Join(u.Home, "mail"))
	src := filepath.Join(corpora, "dovecot-written")
	u.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-inbox.mbox"), filepath.Join(u.Home, "inbox"))
	u.CopyFile(t, filepath.Join(src, "dovecot-mboxcl2-Archive.mbox"), filepath.Join(u.Home, "mail", "Archive"))
	u.WriteFile(t, filepath.Join(u.Home, "mail", ".subscriptions"), []byte("Archive\n"))
	d := StartDovecot(t, DovecotConfig{MailLocation: "mbox:~/mail:INBOX=~/inbox", Users: []User{u}})

	recs := d.Fetch(t, u.Name, "INBOX")
	st := d.Status(t, u.Name, "INBOX")
	c := d.IMAP(t, u.Name)
	if got := strings.Join(c.List(t), " "); got != "Archive INBOX" && got != "INBOX Archive" {
		t.Errorf("LIST %q, want Archive and INBOX", got)
	}
	if got := strings.Join(c.Lsub(t), " "); got != "Archive" {
		t.Errorf("LSUB %q, want Archive", got)
	}
	if ist := c.Status(t, "INBOX"); ist.Messages != st.Messages || ist.UIDValidity != st.UIDValidity || ist.UIDNext != st.UIDNext {
		t.Errorf("IMAP STATUS %+v, doveadm %+v", ist, st)
	}
	msgs := c.Messages(t, "INBOX")
	if len(msgs) != len(recs) || len(msgs) != 10 {
		t.Fatalf("IMAP sees %d messages, doveadm %d, want 10", len(msgs), len(recs))
	}
	for i, m := range msgs {
		r := recs[i]
		t.Run(fmt.Sprint(r.UID), func(t *testing.T) {
			if m.UID != r.UID {
				t.Errorf("IMAP UID %d, doveadm %d", m.UID, r.UID)
			}
			if !m.InternalDate.Equal(r.Received) {
				t.Errorf("INTERNALDATE %v, doveadm %v", m.InternalDate, r.Received)
			}
			if m.Size != r.VSize {
				t.Errorf("RFC822.SIZE %d, doveadm vsize %d", m.Size, r.VSize)
			}
			im := Record{Flags: m.Flags}
			if got, want := strings.Join(im.FlagsWithout(`\Recent`), " "), strings.Join(r.FlagsWithout(`\Recent`), " "); got != want {
				t.Errorf("IMAP flags %q, doveadm %q", got, want)
			}
		})
	}
	uidls := d.POP3UIDL(t, u.Name)
	if len(uidls) != len(recs) {
		t.Fatalf("POP3 lists %d messages, want %d", len(uidls), len(recs))
	}
	for i, r := range recs {
		// pop3_uidl_format %08Xu%08Xv: Dovecot's %X prints lower-case hex.
		want := fmt.Sprintf("%08x%08x", r.UID, st.UIDValidity)
		if uidls[i] != want {
			t.Errorf("message %d: POP3 UIDL %q, want %q", i+1, uidls[i], want)
		}
	}

	// After a switch the same user sees the (empty, new) Maildir.
	u.Mkdir(t, filepath.Join(u.Home, "Maildir"))
	d.SwitchMailLocation(t, "maildir:~/Maildir")
	c2 := d.IMAP(t, u.Name)
	if got := strings.Join(c2.List(t), " "); got != "INBOX" {
		t.Errorf("LIST after switch %q, want INBOX", got)
	}
	if n := len(c2.Messages(t, "INBOX")); n != 0 {
		t.Errorf("Maildir INBOX has %d messages, want 0", n)
	}
}

func TestParseIMAP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{`LIST (\HasNoChildren) "/" INBOX`, `[LIST [\HasNoChildren] / INBOX]`},
		{`LIST () "/" "a \"b\""`, `[LIST [] / a "b"]`},
		{"LIST () \"/\" {5}\r\nx y z", `[LIST [] / x y z]`},
		{`1 FETCH (UID 7 FLAGS (\Seen $label1) INTERNALDATE " 3-Sep-2020 12:26:40 -0400")`, `[1 FETCH [UID 7 FLAGS [\Seen $label1] INTERNALDATE  3-Sep-2020 12:26:40 -0400]]`},
		{`OK [UIDVALIDITY 3] ok`, `[OK [UIDVALIDITY 3] ok]`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseIMAP(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
	for _, bad := range []string{`(a`, `a)`, `"open`} {
		if _, err := parseIMAP(bad); err == nil {
			t.Errorf("parseIMAP(%q) accepted", bad)
		}
	}
}
