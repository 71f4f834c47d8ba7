package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// screen plays terminal output as a terminal shows it, for the line feed, carriage return and
// the erasures of the status line (erase to the end of the line, erase the line), and returns
// the lines left on the screen.
func screen(out string) []string {
	lines := []string{""}
	col := 0
	for i := 0; i < len(out); i++ {
		cur := &lines[len(lines)-1]
		switch {
		case out[i] == '\n':
			lines = append(lines, "")
			col = 0
		case out[i] == '\r':
			col = 0
		case strings.HasPrefix(out[i:], "\x1b[K"), strings.HasPrefix(out[i:], "\x1b[0K"):
			*cur = (*cur)[:min(col, len(*cur))]
			i += strings.IndexByte(out[i:], 'K')
		case strings.HasPrefix(out[i:], "\x1b[2K"):
			*cur = strings.Repeat(" ", min(col, len(*cur)))
			i += len("\x1b[2K") - 1
		case out[i] == '\x1b':
			panic(fmt.Sprintf("screen: an escape sequence it does not play: %q", out[i:min(i+8, len(out))]))
		default:
			if col < len(*cur) {
				*cur = (*cur)[:col] + string(out[i]) + (*cur)[col+1:]
			} else {
				*cur += string(out[i])
			}
			col++
		}
	}
	return lines
}

// progressTree is check-tree's system with mail for bob too: alice's spool has one message,
// bob's two.
func progressTree(t *testing.T) string {
	t.Helper()
	r := makeCheckTree(t, filepath.Join(t.TempDir(), "root"))
	r.WriteFile("var/mail/bob", "From carol@example.org Sat Jun  1 00:00:00 2024\nSubject: one\n\n1\n\n"+
		"From carol@example.org Sat Jun  1 00:01:00 2024\nSubject: two\n\n2\n", 0o600, "bob")
	return r.Dir
}

// userLines are the lines the run of progressTree prints: one per user with mail, and the
// summary's two.
var userLines = []string{"alice: 1 messages, 1 written, ", "bob: 2 messages, 2 written, ", "3 users: 2 migrated, 0 up to date, 1 without a mailbox, 0 failed", "3 messages written, 0 already there, "}

// TestProgressStdoutRedirected: stdout to a file, stderr on a terminal. Every per-user line
// and the summary reach stdout; the terminal gets the progress line (bytes done of total,
// messages, users, ETA), removed at the end, and nothing else.
func TestProgressStdoutRedirected(t *testing.T) {
	root := progressTree(t)
	tty, output := mailtest.OpenTerminal(t, 120)
	var out bytes.Buffer
	code := run(context.Background(), []string{"maildirmig", "mbox", "--root", root, "-j", "1"}, strings.NewReader(""), &out, tty)
	tty.Close()
	term := output()
	if code != 0 {
		t.Fatalf("exit %d; stdout %q; terminal %q", code, out.String(), term)
	}
	for _, l := range userLines {
		if !strings.Contains(out.String(), "\n"+l) && !strings.HasPrefix(out.String(), l) {
			t.Errorf("stdout lacks the line %q:\n%s", l, out.String())
		}
	}
	if strings.ContainsAny(out.String(), "\r\x1b") {
		t.Errorf("stdout, a file, got terminal controls: %q", out.String())
	}
	if !strings.Contains(term, " of ") || !strings.Contains(term, "messages") || !strings.Contains(term, "users ") || !strings.Contains(term, "ETA ") {
		t.Errorf("the terminal never showed a whole progress line: %q", term)
	}
	if !strings.Contains(term, ": alice") && !strings.Contains(term, ": bob") {
		t.Errorf("the progress line never named the user being migrated: %q", term)
	}
	if s := strings.Join(screen(term), ""); strings.TrimSpace(s) != "" {
		t.Errorf("the terminal is left showing %q, want the progress line gone", s)
	}
}

// TestProgressSameTerminal: stdout and stderr on one terminal. Each per-user line is printed
// whole above the progress line, which is redrawn below it and gone at the end.
func TestProgressSameTerminal(t *testing.T) {
	root := progressTree(t)
	tty, output := mailtest.OpenTerminal(t, 120)
	code := run(context.Background(), []string{"maildirmig", "mbox", "--root", root, "-j", "2"}, strings.NewReader(""), tty, tty)
	tty.Close()
	term := output()
	if code != 0 {
		t.Fatalf("exit %d; terminal %q", code, term)
	}
	lines := screen(term)
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	for _, want := range userLines {
		found := false
		for _, l := range kept {
			if strings.HasPrefix(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("the screen lacks the line %q; it shows:\n%s", want, strings.Join(kept, "\n"))
		}
	}
	if len(kept) != len(userLines) {
		t.Errorf("the screen shows %d lines, want %d (no progress line left, none overdrawn):\n%s", len(kept), len(userLines), strings.Join(kept, "\n"))
	}
	if !strings.Contains(term, "ETA ") {
		t.Errorf("no progress line was drawn: %q", term)
	}
}

// TestProgressPipe: in cron or a pipe, one line per user and the summary, no control
// characters and nothing on stderr.
func TestProgressPipe(t *testing.T) {
	root := progressTree(t)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "mbox", "--root", root}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errb.String())
	}
	if errb.Len() != 0 {
		t.Errorf("stderr %q, want nothing", errb.String())
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != len(userLines) || strings.ContainsAny(out.String(), "\r\x1b") {
		t.Fatalf("stdout %q: want one line per user with mail and the summary's two", out.String())
	}
}
