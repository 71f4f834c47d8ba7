package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// forgedName is a name a user can give a file in ~/mail: a newline that starts a line of the
// user's own (here a fake row of the plan), U+009B (CSI, in UTF-8), ESC, BEL and DEL. It is
// no folder name (not one Dovecot would show), so the plan and the run say it is not migrated,
// quoting it.
const forgedName = "Projects\nbob              42342         999        1  migrate    spool -> Maildir\u009b2J\x1b]0;x\a\x7f"

// forgedFIFO is the name of a FIFO there, with the 8-bit CSI byte 0x9b (which a VT220 obeys)
// raw, not in UTF-8.
const forgedFIFO = "fifo\nbob 42342 1 1 migrate spool -> Maildir\x9b31m"

// forgedEscaped and fifoEscaped are the names as root's output shows them.
const (
	forgedEscaped = `Projects\nbob              42342         999        1  migrate    spool -> Maildir\u009b2J\x1b]0;x\x07\x7f`
	fifoEscaped   = `fifo\nbob 42342 1 1 migrate spool -> Maildir\x9b31m`
)

// controlFree fails the test if out holds a control character other than the newlines that
// end its lines: a C0 control, DEL, a raw C1 byte, or U+0080..U+009F.
func controlFree(t *testing.T, what, out string) {
	t.Helper()
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		c := out[i]
		if c < 0x20 && c != '\n' || c == 0x7f || r == utf8.RuneError && size == 1 && c >= 0x80 && c <= 0x9f || r >= 0x80 && r <= 0x9f {
			t.Errorf("%s: control %q at byte %d: %q", what, out[i:i+size], i, out[max(0, i-40):min(len(out), i+40)])
			return
		}
		i += size
	}
}

// plantForged gives alice of mailTree an mbox named forgedName and a FIFO named forgedFIFO in
// ~/mail.
func plantForged(t *testing.T, root string) {
	t.Helper()
	mail := filepath.Join(root, "home/alice/mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(mail, forgedName)
	if err := os.WriteFile(folder, []byte("From a@example.org Mon Jan  1 10:00:00 2024\nSubject: x\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(mail, forgedFIFO)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{mail, folder, fifo} {
			if err := os.Lchown(p, 42341, 42341); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestForgedNamesStayOneLine: a user who names a folder or a file in ~/mail with a newline and
// terminal controls must not add a line to root's plan (users, mbox --dry-run) nor to a run's
// warnings, nor send a control to root's terminal: each name is one escaped field, and the
// output has exactly the lines it would have for any other name.
func TestForgedNamesStayOneLine(t *testing.T) {
	root := mailTree(t)
	plantForged(t, root)
	for _, args := range [][]string{
		{"users", "--root", root},
		{"mbox", "--dry-run", "--root", root},
	} {
		t.Run(args[0]+strings.Join(args[1:2], ""), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"maildirmig"}, args...), strings.NewReader(""), &out, &errb)
			t.Logf("exit %d\n%s%s", code, out.String(), errb.String())
			controlFree(t, "stdout", out.String())
			controlFree(t, "stderr", errb.String())
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			// The header, alice, her two entries not migrated, bob, carol, why carol is refused,
			// the total, the filesystem's free space.
			if len(lines) != 9 {
				t.Fatalf("%d lines, want 9", len(lines))
			}
			if !strings.HasPrefix(lines[1], "alice ") || !strings.Contains(lines[2], " no folder ") || !strings.Contains(lines[2], forgedEscaped+": ") ||
				!strings.Contains(lines[3], " no folder ") || !strings.Contains(lines[3], fifoEscaped+": ") ||
				!strings.HasPrefix(lines[4], "bob ") || !strings.HasPrefix(lines[5], "carol ") || !strings.Contains(lines[6], "refuse: ") ||
				!strings.HasPrefix(lines[7], "3 users, ") || !strings.HasPrefix(lines[8], "filesystem of ") {
				t.Errorf("the plan's lines are not the header, alice, her two entries, bob, carol and the total")
			}
		})
	}
	t.Run("mbox warnings", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("a run migrates as the users, which needs root")
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"maildirmig", "mbox", "--root", root, "--user", "alice"}, strings.NewReader(""), &out, &errb)
		t.Logf("exit %d\n%s%s", code, out.String(), errb.String())
		controlFree(t, "stdout", out.String())
		controlFree(t, "stderr", errb.String())
		for _, line := range strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n") {
			if !strings.HasPrefix(line, "maildirmig: ") {
				t.Errorf("stderr line %q: a name started a line of its own", line)
			}
		}
		// The worker's answers are JSON, which carries the raw byte 0x9b as U+FFFD.
		if want := strings.Replace(fifoEscaped, `\x9b`, "\ufffd", 1) + " not migrated"; !strings.Contains(errb.String(), want) {
			t.Errorf("stderr does not warn about the FIFO as %q", want)
		}
	})
}

// TestPlanBoundsSkipped: the user decides how many entries of ~/mail cannot be migrated (20,000
// FIFOs, say); the plan names the first few of a user's and counts the rest in one line.
func TestPlanBoundsSkipped(t *testing.T) {
	root := mailTree(t)
	mail := filepath.Join(root, "home/alice/mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	const fifos = 2000
	for i := range fifos {
		if err := unix.Mkfifo(filepath.Join(mail, "fifo"+strings.Repeat("-", i%7)+string(rune('a'+i%26))+strings.Repeat("x", i/26)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "users", "--root", root}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	named, counted := 0, ""
	for _, l := range strings.Split(out.String(), "\n") {
		switch {
		case strings.Contains(l, " no folder ") && strings.HasSuffix(l, " more entries"):
			counted = l
		case strings.Contains(l, " no folder "):
			named++
		}
	}
	if named != maxPlanSkipped || !strings.HasSuffix(counted, " no folder  1995 more entries") {
		t.Errorf("the plan names %d entries and counts %q; want %d named and 1995 counted", named, counted, maxPlanSkipped)
	}
}
