package mailtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OpenTerminal opens a pseudo-terminal of 24 rows and cols columns for a test, and collects
// what is written on it: the returned function gives it all, once tty (and every copy of it a
// child process holds) is closed. A machine without pseudo-terminals skips the test.
func OpenTerminal(t testing.TB, cols int) (tty *os.File, output func() string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("mailtest: no pseudo-terminal: %v", err)
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
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		// Ends with EIO once the terminal side is closed.
		_, _ = io.Copy(&buf, master)
		close(done)
	}()
	return tty, func() string {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("mailtest: the terminal's output did not end")
		}
		return buf.String()
	}
}
