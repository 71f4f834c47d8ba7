package mailtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostfixDeliversToSpool proves that the private Postfix delivers with local(8) into
// its own spool in mbox format, quoting From_ lines in bodies, and that Dovecot then reads
// that spool with every message.
func TestPostfixDeliversToSpool(t *testing.T) {
	p := StartPostfix(t)
	dir := Dir(t)
	u := SystemUser(t, dir, "nobody")
	const n = 3
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("From: a%d@example.org\nTo: nobody\nSubject: delivery %d\nMessage-ID: <d%d@example.org>\n\nbody %d\nFrom the desk of nobody\n", i, i, i, i)
		p.Deliver(t, u.Name, []byte(msg))
	}
	p.WaitQueueEmpty(t)
	spool := p.Mailbox(u.Name)
	b, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Count(b, []byte("\nFrom sender@example.org ")) + boolInt(bytes.HasPrefix(b, []byte("From sender@example.org "))); got != n {
		t.Errorf("spool has %d From_ lines, want %d:\n%s", got, n, b)
	}
	if got := bytes.Count(b, []byte("\n>From the desk")); got != n {
		t.Errorf("spool has %d quoted body lines, want %d", got, n)
	}
	fi, err := os.Stat(spool)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("spool mode %v, want 0600", fi.Mode().Perm())
	}

	inbox := filepath.Join(u.Home, "inbox")
	u.CopyFile(t, spool, inbox)
	d := NewDovecot(t, DovecotConfig{MailLocation: "mbox:~/mail:INBOX=~/inbox", Users: []User{u}})
	recs := d.Fetch(t, u.Name, "INBOX")
	if len(recs) != n {
		t.Fatalf("dovecot sees %d messages, want %d", len(recs), n)
	}
	// Postfix's queue manager does not promise to deliver in submission order.
	seen := map[string]bool{}
	for i, r := range recs {
		seen[r.HeaderValue("Subject")] = true
		if !strings.Contains(r.Body, ">From the desk") {
			t.Errorf("message %d body %q lacks the quoted line", i, r.Body)
		}
	}
	for i := 0; i < n; i++ {
		if s := fmt.Sprintf("delivery %d", i); !seen[s] {
			t.Errorf("no message with subject %q in the spool", s)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
