package ui

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The helper process of TestProgressBackgroundTerminal: it draws a status line and prints a
// line on its controlling terminal, in the foreground or, with UI_TEST_BACKGROUND set, after
// handing the terminal's foreground to another process group, as a shell does for a job
// started with & or resumed with bg.
func TestMain(m *testing.M) {
	if os.Getenv("UI_TEST_HELPER") == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

func helper() int {
	if os.Getenv("UI_TEST_BACKGROUND") == "1" {
		other := exec.Command("sleep", "60")
		other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := other.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer other.Process.Kill()
		if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, other.Process.Pid); err != nil {
			fmt.Fprintln(os.Stderr, "tcsetpgrp:", err)
			return 1
		}
	}
	c := New("maildirmig", os.Stdout, os.Stderr)
	p := c.Progress(true, 100, 1)
	p.UserStart("alice")
	p.Add(50)
	time.Sleep(3 * RedrawEvery)
	c.Printf("alice: done\n")
	p.UserDone("alice")
	p.Close()
	return 0
}

// TestProgressBackgroundTerminal: a process whose controlling terminal has another process
// group in the foreground draws no status line on it, and still prints its lines; in the
// foreground it draws.
func TestProgressBackgroundTerminal(t *testing.T) {
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background=%v", background), func(t *testing.T) {
			tty, output := openTerminal(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "UI_TEST_HELPER=1")
			if background {
				cmd.Env = append(cmd.Env, "UI_TEST_BACKGROUND=1")
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			err := cmd.Run()
			tty.Close()
			out := output()
			if err != nil {
				t.Fatalf("helper: %v: %q", err, out)
			}
			if !strings.Contains(out, "alice: done") {
				t.Errorf("the line was not printed: %q", out)
			}
			drew := strings.Contains(out, "ETA ")
			if background && drew {
				t.Errorf("in the background the status line was drawn: %q", out)
			}
			if !background && !drew {
				t.Errorf("in the foreground no status line was drawn: %q", out)
			}
		})
	}
}

// openTerminal opens a pseudo-terminal, 100 columns wide; the returned function gives what
// was written on it once its side tty is closed.
func openTerminal(t *testing.T) (tty *os.File, output func() string) {
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
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 100}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&buf, master)
		close(done)
	}()
	return tty, func() string {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the terminal's output did not end")
		}
		return buf.String()
	}
}
