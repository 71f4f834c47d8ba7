package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
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
	ts.Check(makeCheckTree(ts.MkAbs(args[0])))
}

// makeCheckTree builds check-tree's healthy system under root, for scripts and Go tests.
func makeCheckTree(root string) (err error) {
	check := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	dirs := []string{"root", "etc", "var/mail", "home/bob", "home/alice/Maildir",
		"home/alice/Maildir/cur", "home/alice/Maildir/new", "home/alice/Maildir/tmp",
		"home/alice/Maildir/.Sent", "home/alice/Maildir/.Sent/cur", "home/alice/Maildir/.Sent/new", "home/alice/Maildir/.Sent/tmp"}
	for _, d := range dirs {
		check(os.MkdirAll(filepath.Join(root, d), 0o700))
		check(os.Chmod(filepath.Join(root, d), 0o700))
	}
	for _, d := range []string{"etc", "home", "var"} {
		check(os.Chmod(filepath.Join(root, d), 0o755))
	}
	check(os.Chmod(filepath.Join(root, "var/mail"), 0o1777))
	msg := "From: bob@example.org\nSubject: hi\n\nhello\n"
	files := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001:Bob:/home/bob:/usr/sbin/nologin\n", 0o644},
		{"etc/group", "root:x:0:\nalice:x:1000:\nbob:x:1001:\n", 0o644},
		{"home/alice/Maildir/cur/1717200000.M0Q0X0123456789abcdef.host,S=41,W=45:2,S", msg, 0o600},
		{"home/alice/Maildir/new/1717200060.M0Q1X0123456789abcdef.host,S=41,W=45", msg, 0o600},
		{"home/alice/Maildir/.Sent/cur/1717200120.M0Q0Xfedcba9876543210.host,S=41,W=45:2,S", msg, 0o600},
		{"home/alice/Maildir/dovecot-uidlist", "3 V1717200000 N3 G0123456789abcdef0123456789abcdef\n" +
			"1 :1717200000.M0Q0X0123456789abcdef.host,S=41,W=45\n2 :1717200060.M0Q1X0123456789abcdef.host,S=41,W=45\n", 0o600},
		{"var/mail/alice", "From bob@example.org Sat Jun  1 00:00:00 2024\n" + msg, 0o600},
	}
	old := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		p := filepath.Join(root, f.path)
		check(os.WriteFile(p, []byte(f.content), f.mode))
		check(os.Chmod(p, f.mode))
		check(os.Chtimes(p, old, old))
	}
	// Directories too: a Maildir that changed now would hide a spool touched now.
	check(filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
	if os.Geteuid() != 0 || err != nil {
		return err
	}
	// check looks at each home as its user, who must be able to pass through every directory
	// above it, as through /home; testscript's work directory is 0700.
	for d := root; d != "/"; d = filepath.Dir(d) {
		fi, e := os.Stat(d)
		if e != nil {
			return e
		}
		if fi.Mode().Perm()&0o001 == 0 {
			check(os.Chmod(d, fi.Mode().Perm()|0o001))
		}
	}
	for _, d := range []string{"home/alice", "var/mail/alice"} {
		check(filepath.Walk(filepath.Join(root, d), func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, aliceUID, aliceUID)
		}))
	}
	check(os.Chown(filepath.Join(root, "home/bob"), bobUID, bobUID))
	return err
}
