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
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair, 120 columns wide, and a reader that collects all that
// is written to the terminal side; call the returned function after closing slave to get it.
func openPTY(t *testing.T) (slave *os.File, output func() string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 120}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		// Ends with EIO once the terminal side is closed.
		_, _ = io.Copy(&buf, master)
		close(done)
	}()
	return slave, func() string {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the terminal's output did not end")
		}
		return buf.String()
	}
}

// screen plays terminal output as a terminal shows it, for the line feed, carriage return and
// erase-to-end-of-line the meter uses, and returns the lines left on the screen.
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
		case strings.HasPrefix(out[i:], "\x1b[K"):
			*cur = (*cur)[:col]
			i += len("\x1b[K") - 1
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
	root := filepath.Join(t.TempDir(), "root")
	if err := makeCheckTree(root); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(root, "var/mail/bob")
	mail := "From carol@example.org Sat Jun  1 00:00:00 2024\nSubject: one\n\n1\n\n" +
		"From carol@example.org Sat Jun  1 00:01:00 2024\nSubject: two\n\n2\n"
	if err := os.WriteFile(spool, []byte(mail), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(spool, bobUID, bobUID); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// userLines are the lines the run of progressTree prints: one per user with mail, and the
// summary's two.
var userLines = []string{"alice: 1 messages, 1 written, ", "bob: 2 messages, 2 written, ", "3 users: 2 migrated, 0 up to date, 1 without a mailbox, 0 failed", "3 messages written, 0 already there, "}

// TestProgressStdoutRedirected: stdout to a file, stderr on a terminal. Every per-user line
// and the summary reach stdout; the terminal gets the progress line (bytes done of total,
// messages, users, ETA), removed at the end, and nothing else.
func TestProgressStdoutRedirected(t *testing.T) {
	root := progressTree(t)
	tty, output := openPTY(t)
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
	tty, output := openPTY(t)
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

// TestMeterStatus: the progress line says bytes done of total, messages, users, who is being
// migrated and the time left, fits the terminal, and gives up the bar, then names, first.
func TestMeterStatus(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &meter{now: func() time.Time { return clock }, start: clock, total: 3 << 30, users: 40}
	m.done = 1 << 30
	m.messages = 12034
	m.usersDone = 3
	m.current = []string{"alice", "bob"}
	clock = clock.Add(60 * time.Second)

	wide := m.status(119)
	for _, want := range []string{"[=====>              ]", " 33% 1.0 GiB of 3.0 GiB, 12034 messages, users 3/40: alice, bob, ETA 2m0s"} {
		if !strings.Contains(wide, want) {
			t.Errorf("status(119) = %q, want it to contain %q", wide, want)
		}
	}
	narrow := m.status(70)
	if len(narrow) > 70 || strings.Contains(narrow, "[") || !strings.Contains(narrow, "ETA 2m0s") || !strings.Contains(narrow, "12034 messages") {
		t.Errorf("status(70) = %q (%d columns): want no bar, the counts and the ETA", narrow, len(narrow))
	}
	if tiny := m.status(30); len(tiny) > 30 {
		t.Errorf("status(30) = %q, %d columns", tiny, len(tiny))
	}

	m.done, m.start = 0, clock
	if s := m.status(119); !strings.Contains(s, "ETA --") || !strings.Contains(s, "0 B of 3.0 GiB") {
		t.Errorf("status before any byte = %q, want an unknown ETA", s)
	}
}

// TestMeterUsers: record counts users, not bytes: the line says how many users are done, who
// is being recorded and the time left by users.
func TestMeterUsers(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &meter{now: func() time.Time { return clock }, start: clock, users: 40}
	m.usersDone = 10
	m.current = []string{"alice"}
	clock = clock.Add(60 * time.Second)
	want := "[====>               ]  25% users 10/40: alice, ETA 3m0s"
	if got := m.status(119); got != want {
		t.Errorf("status(119) = %q, want %q", got, want)
	}
}

// TestMeterPrint: a line printed while the progress line is shown clears it, and the progress
// line comes back below; a meter that is not shown writes the line alone.
func TestMeterPrint(t *testing.T) {
	t.Parallel()
	var term, out bytes.Buffer
	m := &meter{w: &term, now: time.Now, start: time.Now(), width: func() int { return 100 }, total: 100, users: 2}
	m.UserStart("alice")
	m.Print(&out, "alice: done\n")
	if out.String() != "alice: done\n" {
		t.Errorf("printed %q", out.String())
	}
	want := "\r" + m.status(99) + "\x1b[K" + "\r\x1b[K" + "\r" + m.status(99) + "\x1b[K"
	if term.String() != want {
		t.Errorf("terminal got %q, want %q", term.String(), want)
	}
	m.Close()
	if !strings.HasSuffix(term.String(), "\r\x1b[K") {
		t.Errorf("Close left %q", term.String())
	}

	var quiet, out2 bytes.Buffer
	off := &meter{now: time.Now, start: time.Now(), width: func() int { return 100 }}
	off.UserStart("alice")
	off.Print(&out2, "alice: done\n")
	if quiet.Len() != 0 || out2.String() != "alice: done\n" {
		t.Errorf("a meter off the terminal drew %q, printed %q", quiet.String(), out2.String())
	}
}
