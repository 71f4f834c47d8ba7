//go:build redteam

package migrate

// Findings against rollback (rollback.go, serverollback.go), left to their owner: each test
// performs the attack and fails on what rollback does today. Run them with
//
//	go test -tags redteam ./migrate -run TestRedteamRollback

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A user plants among their messages a sparse file of 64 MiB, its size in its name (S= and
// W=, which Dovecot and List trust), costing them nothing. A rollback writes their Maildir into
// a new mbox beside the spool, in root's spool directory: it must not write there more than
// that filesystem has free (on a server, /var: Postfix's queue and every user's spool), but
// refuse the user before writing, saying so. The spool directory here is an 8 MiB tmpfs.
func TestRedteamRollbackSparseMessageFillsSpoolFS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs as the spool directory")
	}
	tr := newTree(t, "rbs")
	spoolDir := tr.path("var/mail")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", spoolDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", spoolDir).Run() })
	tr.write("var/mail/rbs", msgA, "rbs")
	if _, res := run(t, tr.config()); res["rbs"].Err != nil {
		t.Fatalf("migration: %+v", res["rbs"])
	}
	const huge = 64 << 20
	name := fmt.Sprintf("1704300000.M1P99.mx,S=%d,W=%d:2,", huge, huge)
	tr.write("home/rbs/Maildir/cur/"+name, "Subject: x\n\n", "rbs")
	must(t, os.Truncate(tr.path("home/rbs/Maildir/cur/"+name), huge))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	if _, err := Rollback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("rollback: %v", rerr)
	if rerr == nil || !strings.Contains(rerr.Error(), "bytes free") || strings.Contains(rerr.Error(), "no space left") {
		t.Errorf("rollback of a Maildir holding a %d-byte sparse message into an 8 MiB spool filesystem: %v; want it refused before writing, for want of space", huge, rerr)
	}
	if b, err := os.ReadFile(tr.path("var/mail/rbs")); err != nil || string(b) != msgA {
		t.Errorf("the spool: %q, %v", b, err)
	}
}

// A Maildir file Dovecot would serve, whose name holds a space (its user renamed it, or a
// delivery agent's host name has one): a rollback writes the name and its identity as one
// line of root's records, "<seq> <uid> <name> <head> <sum> <size>", which the space turns
// into seven fields. Every pass after a change to the mbox then fails for good ("records: bad
// line"). Rollback must record it so that the passes after it can read it, or refuse it.
func TestRedteamRollbackNameWithSpaceBreaksRecords(t *testing.T) {
	tr := newTree(t, "rbn")
	tr.write("var/mail/rbn", msgA+msgB, "rbn")
	if _, res := run(t, tr.config()); res["rbn"].Err != nil {
		t.Fatalf("migration: %+v", res["rbn"])
	}
	name := "1704300000.M1P99.mx box,S=38,W=42:2,"
	tr.write("home/rbn/Maildir/cur/"+name, "From: c@example.org\nSubject: three\n\nx\n", "rbn")
	must(t, os.Chtimes(tr.path("home/rbn/Maildir/cur/"+name), time.Unix(1704300000, 0), time.Unix(1704300000, 0)))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	if _, err := Rollback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if rerr != nil {
		// Refused: the passes after it are safe.
		t.Logf("rollback refused the name: %v", rerr)
		return
	}
	spool, err := os.ReadFile(tr.path("var/mail/rbn"))
	must(t, err)
	b := strings.Replace(string(spool), "Subject: three\n", "Subject: three\nStatus: RO\n", 1)
	tr.write("var/mail/rbn", b, "rbn")
	if _, res := run(t, tr.config()); res["rbn"].Err != nil {
		t.Errorf("the pass after the rollback: %v", res["rbn"].Err)
	}
}
