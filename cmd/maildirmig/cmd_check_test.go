package main

import (
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

func init() {
	scriptCmds["check-tree"] = cmdCheckTree
}

// The healthy tree's users: alice has a migrated Maildir with a folder, bob a home and no mail.
const (
	aliceUID = 1000
	bobUID   = 1001
)

// check-tree DIR: builds under DIR a system that maildirmig check finds healthy: etc/passwd with
// root, alice and bob; root's home without mail; alice's Maildir with a message in cur/ and new/,
// a dovecot-uidlist and a Maildir++ folder .Sent, all 0700/0600; her spool var/mail/alice,
// migrated (older than the Maildir); bob's empty home. Run as root, the files belong to the
// users; otherwise they are the invoker's, which is what maildirmig then expects.
func cmdCheckTree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: check-tree DIR")
	}
	makeCheckTree(ts, ts.MkAbs(args[0]))
}

// makeCheckTree builds check-tree's healthy system under root, for scripts and Go tests.
func makeCheckTree(f mailtest.Fataler, root string) *mailtest.Root {
	r := mailtest.NewRootAt(f, root)
	r.AddUser("root", 0)
	r.AddUser("alice", aliceUID)
	r.AddUser("bob", bobUID)
	r.Mkdir("var/mail", 0o1777, "")
	for _, d := range []string{"home/alice", "home/bob"} {
		r.Mkdir(d, 0o700, path.Base(d))
	}
	for _, d := range []string{"home/alice/Maildir", "home/alice/Maildir/.Sent"} {
		for _, sub := range []string{"", "/cur", "/new", "/tmp"} {
			r.Mkdir(d+sub, 0o700, "alice")
		}
	}
	msg := "From: bob@example.org\nSubject: hi\n\nhello\n"
	for _, file := range []struct{ path, content string }{
		{"home/alice/Maildir/cur/1717200000.M0Q0X0123456789abcdef.host,S=41,W=45:2,S", msg},
		{"home/alice/Maildir/new/1717200060.M0Q1X0123456789abcdef.host,S=41,W=45", msg},
		{"home/alice/Maildir/.Sent/cur/1717200120.M0Q0Xfedcba9876543210.host,S=41,W=45:2,S", msg},
		{"home/alice/Maildir/dovecot-uidlist", "3 V1717200000 N3 G0123456789abcdef0123456789abcdef\n" +
			"1 :1717200000.M0Q0X0123456789abcdef.host,S=41,W=45\n2 :1717200060.M0Q1X0123456789abcdef.host,S=41,W=45\n"},
		{"var/mail/alice", "From bob@example.org Sat Jun  1 00:00:00 2024\n" + msg},
	} {
		r.WriteFile(file.path, file.content, 0o600, "alice")
	}
	// Everything, directories too, is from before the migration: a Maildir that changed now
	// would hide a spool touched now.
	old := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		f.Fatalf("%v", err)
	}
	if os.Geteuid() != 0 {
		return r
	}
	// check looks at each home as its user, who must be able to pass through every directory
	// above it, as through /home; testscript's work directory is 0700.
	for d := root; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			f.Fatalf("%v", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				f.Fatalf("%v", err)
			}
		}
	}
	return r
}
