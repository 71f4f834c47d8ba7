package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
	"github.com/maildirmig/maildirmig/maildir"
)

// useradd creates a real system user whose home, under dir, is made from skel (useradd -m -k),
// and removes it, home included, when the test ends.
func useradd(t *testing.T, base, dir, skel string) User {
	t.Helper()
	mailtest.RequireUserTools(t)
	a := mailtest.AddAccount(t, base, "-k", skel, "-d", filepath.Join(dir, "home", base), "-s", "/usr/sbin/nologin", "-U")
	return User{Name: a.Name, UID: a.UID, GID: a.GID, Home: a.Home}
}

// dovecotSees has Dovecot, from a throwaway configuration, open u's ~/Maildir and returns how
// many messages INBOX holds.
func dovecotSees(t *testing.T, u User) uint32 {
	t.Helper()
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{
		MailLocation: "maildir:~/Maildir",
		Users:        []mailtest.User{{Name: u.Name, Password: "x", UID: u.UID, GID: u.GID, Home: u.Home}},
	})
	return d.Status(t, u.Name, "INBOX").Messages
}

// TestSkelGivesNewUsersAMaildir proves the whole chain the guides rely on: skel makes the
// skeleton, useradd -m copies it into a new home owned by the new user, check finds it healthy,
// and Dovecot opens it with zero messages.
func TestSkelGivesNewUsersAMaildir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a real user with useradd and runs Dovecot as that user")
	}
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	skel := filepath.Join(dir, "skel")
	if _, err := MakeSkel(skel, "Maildir"); err != nil {
		t.Fatal(err)
	}
	u := useradd(t, "skel", dir, skel)

	for _, sub := range []string{"", "cur", "new", "tmp"} {
		fi, err := os.Lstat(filepath.Join(u.Home, "Maildir", sub))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(st.Uid) != u.UID || int(st.Gid) != u.GID {
			t.Errorf("Maildir/%s: %v uid %d gid %d, want a 0700 directory of %d:%d", sub, fi.Mode(), st.Uid, st.Gid, u.UID, u.GID)
		}
	}
	r, err := Run(context.Background(), Config{Users: []User{u}, AsUser: testAsUser})
	if err != nil || len(r.Problems) != 0 || r.Maildirs != 1 {
		t.Fatalf("check after useradd: %v, %d maildirs, %+v", err, r.Maildirs, r.Problems)
	}
	if n := dovecotSees(t, u); n != 0 {
		t.Errorf("Dovecot sees %d messages in the new user's INBOX, want 0", n)
	}
}

// TestEnsureMaildirForExistingUser gives a user made without any Maildir an empty one, and
// Dovecot then delivers into it: check must find what Dovecot wrote (its uidlist, its names with
// S= and W=) healthy, an independent test of what check accepts.
func TestEnsureMaildirForExistingUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a real user with useradd and runs Dovecot as that user")
	}
	mailtest.RequireDovecot(t)
	dir := mailtest.Dir(t)
	empty := filepath.Join(dir, "emptyskel")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	u := useradd(t, "exist", dir, empty)

	created, err := ensureMaildirAs(u, "Maildir")
	if err != nil || !created {
		t.Fatalf("EnsureMaildir: %v, created %v", err, created)
	}
	if created, err := ensureMaildirAs(u, "Maildir"); err != nil || created {
		t.Fatalf("EnsureMaildir again: %v, created %v", err, created)
	}
	d := mailtest.NewDovecot(t, mailtest.DovecotConfig{
		MailLocation: "maildir:~/Maildir",
		Users:        []mailtest.User{{Name: u.Name, Password: "x", UID: u.UID, GID: u.GID, Home: u.Home}},
	})
	if n := d.Status(t, u.Name, "INBOX").Messages; n != 0 {
		t.Fatalf("Dovecot sees %d messages, want 0", n)
	}
	du := d.User(t, u.Name)
	for i := range 3 {
		cmd := du.Command("doveadm", []string{"-c", d.Conf, "-o", "mail_location=maildir:~/Maildir", "save", "-m", "INBOX"})
		cmd.Stdin = strings.NewReader(fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\n\r\nbody %d\n", i, i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("doveadm save: %v: %s", err, out)
		}
	}
	if n := d.Status(t, u.Name, "INBOX").Messages; n != 3 {
		t.Fatalf("Dovecot sees %d messages after saving 3", n)
	}
	r, err := Run(context.Background(), Config{Users: []User{u}, AsUser: testAsUser})
	if err != nil || len(r.Problems) != 0 || r.Messages != 3 {
		t.Fatalf("check of the Maildir Dovecot wrote: %v, %d messages, %+v", err, r.Messages, r.Problems)
	}
	if _, err := os.Stat(filepath.Join(u.Home, "Maildir", "dovecot-uidlist")); err != nil {
		t.Fatalf("Dovecot wrote no uidlist, so the uidlist parser went untested: %v", err)
	}

	// What check calls a size mismatch is what breaks FETCH in Dovecot.
	newDir := filepath.Join(u.Home, "Maildir", "new")
	entries, err := os.ReadDir(newDir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("new/: %v, %d entries", err, len(entries))
	}
	file := entries[0].Name()
	n, err := maildir.ParseName(file)
	if err != nil || n.Size < 0 {
		t.Fatalf("Dovecot's name %q: %v, S=%d", file, err, n.Size)
	}
	liar := strings.Replace(file, fmt.Sprintf(",S=%d,W=%d", n.Size, n.VSize), fmt.Sprintf(",S=%d,W=%d", n.Size+100, n.VSize+100), 1)
	if err := os.Rename(filepath.Join(newDir, file), filepath.Join(newDir, liar)); err != nil {
		t.Fatal(err)
	}
	r, err = Run(context.Background(), Config{Users: []User{u}, AsUser: testAsUser})
	if err != nil || len(r.Problems) != 1 || r.Problems[0].Kind != SizeMismatch || r.Problems[0].Path != filepath.Join(newDir, liar) {
		t.Fatalf("check after renaming to %s: %v, %+v", liar, err, r.Problems)
	}
	out, err := d.Doveadm(t, u.Name, "fetch", "text", "mailbox", "INBOX", "all")
	if err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("Dovecot fetched every message despite the wrong S=: %v\n%s", err, out)
	}
}
