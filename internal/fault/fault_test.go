package fault

import (
	"errors"
	"io"
	"os"
	"testing"
)

// TestPassThrough shows that a hook hands back the call's own results, whatever the build:
// in a normal one nothing else can come out, and with faultinject nothing is armed here.
func TestPassThrough(t *testing.T) {
	f := os.Stdout
	if n, err := Write.On(f, "write").N64(42, nil); n != 42 || err != nil {
		t.Errorf("N64(42, nil) = %d, %v", n, err)
	}
	if err := Close.On(f, "close").Err(nil); err != nil {
		t.Errorf("Err(nil) = %v", err)
	}
	if n, err := Audit.On(f, "write").N(7, io.ErrShortWrite); n != 7 || !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("N(7, ErrShortWrite) = %d, %v", n, err)
	}
	if err := Move.Err(io.EOF); err != io.EOF {
		t.Errorf("Err(EOF) = %v", err)
	}
	if err := Fsync.Err(nil); err != nil {
		t.Errorf("Err(nil) = %v", err)
	}
	Read.Hit()
	if env := Environ(); !Enabled && env != nil {
		t.Errorf("Environ() = %q in a normal build", env)
	}
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for p := Point(1); p < numPoints; p++ {
		n := p.String()
		if n == "unknown" || seen[n] {
			t.Errorf("point %d: name %q missing or used twice", p, n)
		}
		seen[n] = true
	}
}

var sink error

// BenchmarkHook measures a hook site as the writer has it; in a normal build it must cost
// what the bare expression costs (the hook is inlined to nothing).
func BenchmarkHook(b *testing.B) {
	var err error
	for b.Loop() {
		err = Write.Err(err)
		_, err = Audit.On(os.Stdout, "write").N(1, err)
		Read.Hit()
	}
	sink = err
}
