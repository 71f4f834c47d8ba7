package ui

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/mailtest"
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
			tty, output := mailtest.OpenTerminal(t, 100)
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
