package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLinesFit80Columns runs the commands of the night on a tree whose paths are a real
// server's once the tree's root is taken off (/home/alice/Maildir, /var/mail/alice), and
// checks every line they print on stdout fits in 80 columns, so that nothing wraps on a
// terminal of that width. Two kinds of line may be longer because of what they quote: a row of
// the plan (users, mbox --dry-run), which carries a source and a Maildir path, and a
// diagnostic on stderr (maildirmig: error: ...), which carries a reason with paths in it.
func TestLinesFit80Columns(t *testing.T) {
	root := mailTree(t)
	// A folder makes the user line its longest: "(1 folder)".
	if os.Geteuid() == 0 {
		mail := filepath.Join(root, "home", "alice", "mail")
		if err := os.Mkdir(mail, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mail, "Archive"), []byte("From a@example.org Mon Jan  1 10:00:00 2024\nSubject: old\n\nbody\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{mail, filepath.Join(mail, "Archive")} {
			if err := os.Chown(p, 42341, 42341); err != nil {
				t.Fatal(err)
			}
		}
	}
	mbox := filepath.Join(root, "inbox.mbox")
	if err := os.WriteFile(mbox, []byte("From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	longest := 0
	for _, args := range [][]string{
		{"users", "--root", root},
		{"mbox", "--root", root, "--progress", "never", "--dry-run"},
		{"mbox", "--root", root, "--progress", "never", "--audit-messages"},
		{"mbox", "--root", root, "--progress", "never"},
		{"verify", "--root", root},
		{"skel", "--root", root, "--existing", "--dry-run"},
		{"check", "--root", root},
		{"convert", "--from", mbox, filepath.Join(t.TempDir(), "Maildir")},
	} {
		var stdout, stderr bytes.Buffer
		run(context.Background(), append([]string{"maildirmig"}, args...), strings.NewReader(""), &stdout, &stderr)
		if stdout.Len() == 0 {
			t.Errorf("maildirmig %s printed nothing on stdout:\n%s", strings.Join(args, " "), stderr.String())
		}
		for _, line := range strings.Split(strings.ReplaceAll(stdout.String(), root, ""), "\n") {
			if strings.Contains(line, " -> ") {
				continue
			}
			n := utf8.RuneCountInString(line)
			longest = max(longest, n)
			if n > 80 {
				t.Errorf("maildirmig %s: a line of %d columns:\n%s", args[0], n, line)
			}
		}
	}
	t.Logf("longest line: %d columns", longest)
}
