package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSampleSeesAHog proves that sample calls the machine busy when a process keeps a CPU
// busy beside it, and names it: this test spins one core for the whole sample.
func TestSampleSeesAHog(t *testing.T) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; !stop.Load(); n++ {
		}
	}()
	var out bytes.Buffer
	err := sampleTo(&out, []string{"-seconds", "1", "-path", os.TempDir(), "-max-cpu", "0.5", "-max-load", "100", "-max-disk", "1.01"})
	stop.Store(true)
	<-done
	t.Logf("%s", out.String())
	if !errors.Is(err, errBusy) {
		t.Fatalf("sample beside a spinning core: %v, want it busy", err)
	}
	if !strings.Contains(out.String(), "busy: other processes used") {
		t.Errorf("the report does not say why it is busy:\n%s", out.String())
	}
	if me := fmt.Sprintf("pid %d ", os.Getpid()); !strings.Contains(out.String(), me) {
		t.Errorf("the report does not name the spinning process (%s):\n%s", me, out.String())
	}
}

func TestParseStat(t *testing.T) {
	// A comm with a space and a parenthesis, a kernel thread's flags.
	line := "42 (tmux: server) (x)) S 1 42 42 0 -1 2129984 0 0 0 0 120 30 7 3 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	p, ok := parseStat(42, []byte(line))
	if !ok {
		t.Fatal("not parsed")
	}
	if p.comm != "tmux: server) (x)" || !p.kthread || p.ownTicks != 150 || p.allTicks != 160 {
		t.Errorf("got %+v, want comm %q, a kernel thread, 150 ticks of its own, 160 with its children", p, "tmux: server) (x)")
	}
	if _, ok := parseStat(1, []byte("1 (init S 0")); ok {
		t.Error("a cut line parsed")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, err := snap()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseSnapshot(s.String())
	if err != nil || back != s {
		t.Errorf("parseSnapshot(%q) = %v, %v", s, back, err)
	}
	for _, bad := range []string{"", "1", "a:b", "1:"} {
		if _, err := parseSnapshot(bad); err == nil {
			t.Errorf("parseSnapshot(%q) gave no error", bad)
		}
	}
}

func TestIOTicksFindsTheDisk(t *testing.T) {
	name, _, err := ioTicks(os.TempDir())
	if err != nil {
		// A file system on no block device (tmpfs, overlay) has no line in diskstats.
		t.Skipf("%s: %v", os.TempDir(), err)
	}
	if name == "" {
		t.Error("no device name")
	}
}
