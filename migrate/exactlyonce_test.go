package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// undatedMailbox is a loose-mode spool of n big messages with neither a From_ date nor a
// Date: header (a bounce spool of "From MAILER-DAEMON" lines): every message is dated by the
// spool's mtime.
func undatedMailbox(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "From MAILER-DAEMON\nSubject: bounce %d\n\n%s\n", i, bigBody)
	}
	return b.String()
}

// verifyOne runs Verify for user alone and returns its outcome.
func verifyOne(t *testing.T, tr *tree, user string) UserVerify {
	t.Helper()
	var got []UserVerify
	cfg := tr.config()
	cfg.Users = []string{user}
	if err := Verify(context.Background(), cfg, func(v UserVerify) { got = append(got, v) }); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("verify %s: %+v", user, got)
	}
	return got[0]
}

// A run interrupted before its first resume point leaves files but no state. When the spool's
// mtime then changes (a delivery, a touch), the next run starts again from the first message
// and must find each file already written, not write it again under another name: every
// message ends up in the Maildir exactly once, and verify agrees.
func TestRunUndatedInterruptedThenTouched(t *testing.T) {
	t.Parallel()
	const n = 12
	tr := newTree(t, "una")
	tr.write("var/mail/una", undatedMailbox(n), "una")
	spool := tr.path("var/mail/una")
	first := time.Date(2024, 4, 5, 6, 7, 8, 0, time.UTC)
	must(t, os.Chtimes(spool, first, first))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := tr.config()
	// Interrupt once the first message is in the Maildir, however fast the machine: a cancel at
	// the first progress report could come before any file, or be seen after all of them.
	cfg.Progress = func(int64) {
		if len(tr.files("una")) > 0 {
			cancel()
		}
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run: %v", err)
	}
	if st, err := (StateStore{Dir: tr.path("var/lib/maildirmig")}).Load("una", KindSpool, spool); err != nil || st != nil && st.Offset != 0 {
		t.Fatalf("state after the interruption: %+v, %v; want none past the start", st, err)
	}
	before := len(tr.files("una"))
	if before == 0 || before >= n {
		t.Fatalf("%d files after the interruption; want some of the %d", before, n)
	}

	later := first.Add(48 * time.Hour)
	must(t, os.Chtimes(spool, later, later))
	_, res := run(t, tr.config())
	r := res["una"]
	if r.Err != nil || r.Stats.Messages != n || r.Stats.Existed != int64(before) || r.Stats.Written != int64(n-before) {
		t.Fatalf("re-run after the spool's mtime changed: %+v; want %d found, %d written", r, before, n-before)
	}
	if got := tr.files("una"); len(got) != n {
		t.Fatalf("%d files after the re-run, want each of the %d messages once: %v", len(got), n, got)
	}
	v := verifyOne(t, tr, "una")
	if v.Result.Messages != n || v.Result.Found != n || len(v.Result.Duplicate) != 0 || len(v.Result.Missing) != 0 {
		t.Fatalf("verify: %+v; want %d of %d, no duplicate", v.Result, n, n)
	}
}

// verify proves each message is there exactly once: a message stored under two names (as an
// earlier version's re-run wrote it, with its mtime in the name) is a failure naming both
// files, while identical messages at two places of the source are two messages, each with its
// own file.
func TestVerifyDuplicate(t *testing.T) {
	t.Parallel()
	tr := newTree(t, "vic")
	undated := "From MAILER-DAEMON\nSubject: bounce\n\nundeliverable\n\n"
	tr.write("var/mail/vic", undated+undated+msgA+msgA, "vic")
	if _, res := run(t, tr.config()); res["vic"].Err != nil || res["vic"].Stats.Written != 4 {
		t.Fatalf("migration: %+v", res["vic"])
	}
	v := verifyOne(t, tr, "vic")
	if v.Result.Found != 4 || len(v.Result.Duplicate) != 0 {
		t.Fatalf("verify with identical messages in the source: %+v; want 4 found, no duplicate", v.Result)
	}

	for _, name := range tr.files("vic") {
		if !strings.Contains(name, "/0.M0Q1X") {
			continue
		}
		// What a re-run by an earlier version wrote again: the second undated message under
		// the spool's mtime.
		b, err := os.ReadFile(tr.path("home/vic/Maildir/" + name))
		must(t, err)
		again := strings.Replace(filepath.Base(name), "0.", "1700000000.", 1)
		tr.write("home/vic/Maildir/new/"+again, string(b), "vic")
		v = verifyOne(t, tr, "vic")
		r := v.Result
		if len(r.Duplicate) != 1 || !strings.Contains(r.Duplicate[0], "message 2 ") ||
			!strings.Contains(r.Duplicate[0], name) || !strings.Contains(r.Duplicate[0], "new/"+again) {
			t.Fatalf("verify with %s stored twice: %+v; want one duplicate naming both files", name, r)
		}
		if r.Found != 4 || len(r.Missing) != 0 || len(r.Bad) != 0 {
			t.Errorf("verify with a duplicate: %+v; want the 4 messages found", r)
		}
		if !strings.Contains(r.describe(), "1 stored more than once") {
			t.Errorf("describe: %q", r.describe())
		}
		return
	}
	t.Fatalf("no file of the second message among %v", tr.files("vic"))
}
