package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildirmig/maildirmig/internal/ui"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
	"github.com/maildirmig/maildirmig/migrate"
	"github.com/urfave/cli/v2"
)

// TestNamesReachTerminalEscaped: a file name chosen by someone else reaches the output with
// its escape sequences neutralised, in results and in diagnostics alike.
func TestNamesReachTerminalEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	evil := filepath.Join(dir, "inbox\x1b]0;pwned\a")
	if err := os.WriteFile(evil, []byte("From a@example.org Mon Jan  6 10:00:00 2025\nSubject: x\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "convert", "--from", evil, filepath.Join(dir, "Maildir")}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if strings.ContainsAny(out.String(), "\x1b\a") || !strings.Contains(out.String(), `inbox\x1b]0;pwned\x07: 1 messages`) {
		t.Errorf("stdout %q carries the raw escape sequence", out.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"maildirmig", "convert", "--from", evil + "\x1b[2J", filepath.Join(dir, "Maildir")}, strings.NewReader(""), &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if strings.ContainsAny(errb.String(), "\x1b\a") || !strings.Contains(errb.String(), `\x1b[2J`) {
		t.Errorf("stderr %q carries the raw escape sequence", errb.String())
	}
	// A newline in a name cannot start a line of its own on stderr.
	errb.Reset()
	if code := run(context.Background(), []string{"maildirmig", "convert", "--from", evil + "\nalice: 0 messages FAKE", filepath.Join(dir, "Maildir")}, strings.NewReader(""), &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, line := range strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "maildirmig: ") {
			t.Errorf("stderr line %q: a name started a line of its own", line)
		}
	}
	if !strings.Contains(errb.String(), `\nalice: 0 messages FAKE`) {
		t.Errorf("stderr %q does not show the newline escaped", errb.String())
	}
}

// TestFlagsPerApp: urfave/cli v2 flags keep what a run parsed, so two Apps (tests run them in
// parallel) must share no flag object, and each App's enumerated flags are checked against
// their own lists.
func TestFlagsPerApp(t *testing.T) {
	t.Parallel()
	seen := map[any]string{}
	for i, app := range []*cli.App{newApp(newUI(nil, io.Discard, io.Discard)), newApp(newUI(nil, io.Discard, io.Discard))} {
		for _, cmd := range app.Commands {
			for _, f := range cmd.Flags {
				if prev, ok := seen[f]; ok && !strings.HasPrefix(prev, fmt.Sprint(i)) {
					t.Errorf("app %d %s --%s: flag object shared with app %s", i, cmd.Name, f.Names()[0], prev)
				}
				seen[f] = fmt.Sprintf("%d %s", i, cmd.Name)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no flags found")
	}
	for _, args := range [][]string{
		{"maildirmig", "convert", "--unescape", "mboxcl", "Maildir"},
		{"maildirmig", "mbox", "--after", "delete"},
		{"maildirmig", "check", "--progress", "sometimes"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, nil, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "want ") {
			t.Errorf("%v: exit %d, stderr %q: want the value refused", args[1:], code, stderr.String())
		}
	}
}

// TestEnumDefaults: each enumerated flag's default is the default of the package that owns its
// values (the first of its list), so that --help, the man page and a library caller that leaves
// the value empty agree.
func TestEnumDefaults(t *testing.T) {
	t.Parallel()
	f := newFlags()
	for _, c := range []struct {
		flag *enumFlag
		want string
	}{
		{f.fsync, maildir.DefaultFsync.String()},
		{f.unescape, mbox.Unescape(0).String()},
		{f.after, migrate.AfterKeep},
		{f.progress, ui.ProgressAuto},
		{f.checkFormat, formatText},
	} {
		if c.flag.Value != c.want || c.flag.choices[0] != c.want {
			t.Errorf("--%s: default %q, first choice %q, want %q", c.flag.Name, c.flag.Value, c.flag.choices[0], c.want)
		}
	}
	page := manPage(newApp(newUI(nil, io.Discard, io.Discard)))
	if !strings.Contains(page, `\fB\-\-fsync\fR \fIsyncfs|batch|always|none\fR`) || !strings.Contains(page, "(default: "+maildir.DefaultFsync.String()+")") {
		t.Errorf("the man page does not show --fsync's values and default")
	}
}
