//go:build faultinject

package fault

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"write:3:eio", ""},
		{"audit:1:enospc", ""},
		{"state:2:edquot", ""},
		{"read:10:kill", ""},
		{"batch-moved:1:kill-run", ""},
		{"write:3", "want POINT:N:ACTION"},
		{"nowhere:1:eio", `unknown point "nowhere"`},
		{"write:0:eio", `count "0" is not a positive number`},
		{"write:x:eio", `count "x" is not a positive number`},
		{"write:1:explode", `unknown action "explode"`},
		{"read:1:eio", "point read takes no errno, only kill, kill-run and stop"},
		{"read:1:stop", ""},
		{"aside:2:enospc", ""},
		{"subscriptions:1:stop", ""},
	} {
		err := parse(tc.in)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.err {
				t.Errorf("parse(%q) = %q, want %q", tc.in, got, tc.err)
			}
		} else if tc.err != "" {
			t.Errorf("parse(%q) succeeded, want %q", tc.in, tc.err)
		}
	}
	spec.point = 0
}

// TestErrnoFromN shows that an errno comes at the N-th pass and every later one, at that
// point only.
func TestErrnoFromN(t *testing.T) {
	if err := parse("close:3:enospc"); err != nil {
		t.Fatal(err)
	}
	defer func() { spec.point = 0; hits[Close].Store(0) }()
	var got []error
	for range 5 {
		got = append(got, Close.Err(nil))
		if err := Write.Err(nil); err != nil {
			t.Errorf("write: %v, want nothing at another point", err)
		}
	}
	for i, err := range got {
		want := i >= 2
		if (err != nil) != want || err != nil && !errors.Is(err, unix.ENOSPC) {
			t.Errorf("pass %d: %v, want ENOSPC %v", i+1, err, want)
		}
	}
	if err := Close.Err(unix.EBADF); err != unix.EBADF {
		t.Errorf("a call that failed on its own: %v, want its own EBADF", err)
	}
}

// TestPathError shows that an errno injected into a call on a file names the file, as the
// os package's own errors do.
func TestPathError(t *testing.T) {
	if err := parse("audit:1:eio"); err != nil {
		t.Fatal(err)
	}
	defer func() { spec.point = 0; hits[Audit].Store(0) }()
	_, err := Audit.On(os.Stdout, "write").N(3, nil)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "write" || pe.Path != os.Stdout.Name() || pe.Err != unix.EIO {
		t.Errorf("got %#v, want a PathError for write %s: EIO", err, os.Stdout.Name())
	}
}

// stopChildEnv makes the test binary the process TestStop stops.
const stopChildEnv = "FAULT_TEST_STOP_CHILD"

// TestStop shows that the stop action stops the process at the N-th pass, before the
// instruction after the point, and that it carries on when continued.
func TestStop(t *testing.T) {
	if os.Getenv(stopChildEnv) != "" {
		Write.Hit()
		os.Stdout.WriteString("one\n")
		Write.Hit()
		os.Stdout.WriteString("two\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStop$")
	cmd.Env = append(os.Environ(), stopChildEnv+"=1", Env+"=write:2:stop")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if l, err := r.ReadString('\n'); l != "one\n" {
		t.Fatalf("first line %q, %v", l, err)
	}
	stat := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the process did not stop at write:2: %s", b)
		}
	}
	if err := unix.Kill(cmd.Process.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil || string(rest) != "two\n" {
		t.Errorf("after SIGCONT: %q, %v; want it to carry on and say two", rest, err)
	}
}
