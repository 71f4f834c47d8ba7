package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// postfixSample is how many notmuch-corpora messages the Postfix test delivers.
const postfixSample = 40

// TestPostfixSpool has the real Postfix local(8) deliver real messages into a spool, the way
// every mbox to migrate was written, converts that spool, and asks Dovecot to compare the
// spool with the Maildir.
func TestPostfixSpool(t *testing.T) {
	corpora := mailtest.Corpora(t)
	mailtest.RequireDovecot(t)
	mailtest.RequirePostfix(t)
	t.Setenv("TZ", judgeTZ) // the daemons write From_ lines in local time
	var msgs []string
	root := filepath.Join(corpora, "notmuch-corpora")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "README" {
			msgs = append(msgs, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(msgs)
	if len(msgs) < postfixSample {
		t.Fatalf("notmuch-corpora has %d messages, want at least %d", len(msgs), postfixSample)
	}
	// Every n-th file, so that each corner of the corpus (broken, crypto, html...) is in.
	step := len(msgs) / postfixSample
	var sample []string
	for i := 0; i < postfixSample; i++ {
		sample = append(sample, msgs[i*step])
	}

	p := mailtest.StartPostfix(t)
	dir := mailtest.Dir(t)
	u := mailtest.SystemUser(t, dir, "nobody")
	u.TZ = judgeTZ
	for _, m := range sample {
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		p.Deliver(t, u.Name, raw)
	}
	p.WaitQueueEmpty(t)
	p.Stop(t)

	spool := p.Mailbox(u.Name)
	asMbox, asMaildir := u, u
	asMbox.MailLocation = "mbox:~/mail:INBOX=~/inbox"
	asMaildir.Name = "nobody-md"
	asMaildir.MailLocation = "maildir:~/Maildir"
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{Users: []mailtest.User{asMbox, asMaildir}})
	u.Mkdir(t, filepath.Join(u.Home, "mail"))
	u.CopyFile(t, spool, filepath.Join(u.Home, "inbox"))
	want := d.Fetch(t, asMbox.Name, "INBOX")
	if len(want) != postfixSample {
		t.Fatalf("Dovecot reads %d messages from the spool, Postfix delivered %d", len(want), postfixSample)
	}
	r := convert(t, u, spool, filepath.Join(u.Home, "Maildir"))
	if r.code != 0 {
		t.Fatalf("maildirmig exit %d, stderr %q", r.code, r.stderr)
	}
	t.Logf("maildirmig: %s", r.stdout)
	got := d.Fetch(t, asMaildir.Name, "INBOX")
	compareRecords(t, want, got)
	if ms, ds := d.Status(t, asMbox.Name, "INBOX"), d.Status(t, asMaildir.Name, "INBOX"); ds.UIDNext != ms.UIDNext {
		t.Errorf("UIDNEXT %d, want %d", ds.UIDNext, ms.UIDNext)
	}
}
