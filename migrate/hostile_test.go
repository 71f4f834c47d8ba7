package migrate

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// After the switch Dovecot delivers into the Maildir under names of its own; a rollback
// writes those messages into the spool and records their identity beside their names. Passes
// after it must go on knowing them: two mirror passes (the user flags mail through Dovecot on
// the mbox in between) both succeed, and keep the file Dovecot named.
func TestPassesAfterRollbackKeepDovecotNames(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "rob")
	tr.write("var/mail/rob", msgA+msgB, "rob")
	if _, res := run(t, tr.config()); res["rob"].Err != nil {
		t.Fatalf("migration: %+v", res["rob"])
	}
	dovecotName := "1704300000.M1P99.mx,S=38,W=42:2,"
	tr.write("home/rob/Maildir/cur/"+dovecotName, "From: c@example.org\nSubject: three\n\nx\n", "rob")
	must(t, os.Chtimes(tr.path("home/rob/Maildir/cur/"+dovecotName), time.Unix(1704300000, 0), time.Unix(1704300000, 0)))
	cfg := tr.config()
	var rerr error
	cfg.UserDone = func(r UserResult) { rerr = r.Err }
	sum, err := Rollback(context.Background(), cfg)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("rollback: %+v, %v, %v", sum, err, rerr)
	}
	spool, err := os.ReadFile(tr.path("var/mail/rob"))
	must(t, err)
	for pass, status := range []string{"Status: RO\n", "Status: R\n"} {
		// A client of the mbox reads the third message (and the next time marks it old).
		b := strings.Replace(string(spool), "Subject: three\n", "Subject: three\n"+status, 1)
		if b == string(spool) {
			t.Fatalf("no third message in the rolled-back spool:\n%s", spool)
		}
		tr.write("var/mail/rob", b, "rob")
		_, res := run(t, tr.config())
		if r := res["rob"]; r.Err != nil {
			t.Fatalf("pass %d after the rollback: %v", pass+1, r.Err)
		}
	}
	if _, err := os.Stat(tr.path("home/rob/Maildir/cur/" + dovecotName)); err != nil {
		t.Errorf("Dovecot's file: %v", err)
	}
	if v := verifyOne(t, tr, "rob"); v.Result.Messages != 3 || v.Result.Found != 3 {
		t.Errorf("verify after the passes: %+v; want 3 of 3", v.Result)
	}
}
