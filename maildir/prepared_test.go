package maildir

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestPreparedMatchesStreamed: a message handed to Add prepared (Prepare, on
// another goroutine in a conversion) gets the name, size, hash and bytes it
// gets when Add streams it, whatever its line ends, and wherever the writer's
// 64 KiB buffer cuts the stream: the name is its identity on the next run.
func TestPreparedMatchesStreamed(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("a line of a long message\r\nand a bare one\n"), 5000)
	// A CRLF cut by the buffer: its LF is the first byte of the second 64 KiB.
	cut := append(bytes.Repeat([]byte("a"), 64*1024-1), "\r\n\n"...)
	contents := [][]byte{
		[]byte("Subject: lf\n\nbody\n"),
		[]byte("Subject: crlf\r\n\r\nbody\r\n"),
		[]byte("Subject: mixed\r\n\nbody\n\r\r\n\n"),
		[]byte("\n"),
		[]byte("\r"),
		[]byte("no line end"),
		[]byte{},
		big,
		cut,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		b := make([]byte, rng.IntN(300))
		for j := range b {
			b[j] = "ab\r\n"[rng.IntN(4)]
		}
		contents = append(contents, b)
	}
	_, streamed := newTestWriter(t, filepath.Join(t.TempDir(), "Maildir"), Options{Fsync: FsyncNone})
	pmd := filepath.Join(t.TempDir(), "Maildir")
	_, prepared := newTestWriter(t, pmd, Options{Fsync: FsyncNone})
	for i, c := range contents {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := msg(int64(i), "")
			m.Content = iotest.OneByteReader(bytes.NewReader(c))
			want := add(t, streamed, m)
			p := Prepare(c)
			m = msg(int64(i), "")
			m.Content = iotest.ErrReader(fmt.Errorf("Content read though Prepared was set"))
			m.Prepared = &p
			got := add(t, prepared, m)
			if got.Name != want.Name || got.Size != want.Size || got.SHA256 != want.SHA256 {
				t.Errorf("prepared: %s %d %x, streamed: %s %d %x", got.Name, got.Size, got.SHA256, want.Name, want.Size, want.SHA256)
			}
			if b := readFile(t, filepath.Join(pmd, got.Sub, got.Name)); b != string(c) {
				t.Errorf("prepared file holds %d bytes, want the %d given", len(b), len(c))
			}
		})
	}
}

// TestBareLFs counts as the name's W= needs it: every LF not after a CR,
// also when the CR ended the bytes before.
func TestBareLFs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in      string
		afterCR bool
		want    int64
	}{
		{"", false, 0}, {"\n", false, 1}, {"\n", true, 0}, {"\r\n", false, 0}, {"\r\r\n\n", false, 1},
		{"a\nb\r\nc\n\r", false, 2}, {"\n\n", true, 1}, {"x\n", true, 1},
	} {
		if got := bareLFs([]byte(c.in), c.afterCR); got != c.want {
			t.Errorf("bareLFs(%q, %v) = %d, want %d", c.in, c.afterCR, got, c.want)
		}
	}
}
