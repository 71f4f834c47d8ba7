package mbox_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/maildirmig/maildirmig/mbox"
)

// fixtures returns the mboxes under testdata.
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata")
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	counts := map[string]int{"plain.mbox": 3, "crlf.mbox": 2, "mboxcl2.mbox": 2, "loose.mbox": 3, "uw-pseudo.mbox": 2, "lead.mbox": 1, "postfix.mbox": 2, "status.mbox": 3}
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			msgs := checkRoundTrip(t, data)
			want, ok := counts[name]
			if !ok {
				t.Fatalf("no expected count for %s", name)
			}
			if len(msgs) != want {
				t.Errorf("%d messages, want %d", len(msgs), want)
			}
			for _, size := range []int{16, 17, 31, 64, 100} {
				roundTripSmall(t, data, size)
			}
		})
	}
}

// roundTripSmall reads data through a buffer of size bytes and checks the round trip. Lines
// longer than such a buffer may be split differently than with the real one, but every byte
// must still come back in order.
func roundTripSmall(t testing.TB, data []byte, size int) {
	t.Helper()
	r := mbox.NewReaderSize(bytes.NewReader(data), int64(len(data)), mbox.Options{}, size)
	var out []byte
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, mbox.ErrNotMbox) {
			return
		}
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		body, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		if m.Size() != int64(len(m.Header)+len(body)) {
			t.Fatalf("buffer %d: Size() %d, header+body %d", size, m.Size(), len(m.Header)+len(body))
		}
		out = append(out, m.Lead...)
		out = append(out, m.FromLine...)
		out = append(out, m.Header...)
		out = append(out, body...)
		out = append(out, m.Separator()...)
	}
	if len(out) == 0 && isBlank(data) {
		return
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("buffer %d: round trip differs\n got %q\nwant %q", size, clip(out), clip(data))
	}
	if r.Offset() != int64(len(data)) {
		t.Fatalf("buffer %d: Offset() = %d after the last message, want %d", size, r.Offset(), len(data))
	}
}

// FuzzRoundTrip checks that the reader never panics and that Lead + FromLine + Header + body +
// Separator() of every message gives back the input, with the real buffer and small ones.
func FuzzRoundTrip(f *testing.F) {
	for _, data := range fixtures(f) {
		f.Add(data)
	}
	f.Add([]byte(f1 + "Content-Length: 5\n\nabc\n\n" + f2 + "\n"))
	f.Add([]byte("From - \n\nFrom x\n\n>From y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, _, err := readAll(data, mbox.Options{})
		if err == nil && len(msgs) == 0 {
			if !isBlank(data) {
				t.Fatalf("no message and no error from %q", data)
			}
		} else if err == nil {
			if got := reassemble(msgs); !bytes.Equal(got, data) {
				t.Fatalf("round trip differs\n got %q\nwant %q", got, data)
			}
		} else if !errors.Is(err, mbox.ErrNotMbox) {
			t.Fatalf("unexpected error: %v", err)
		}
		for _, u := range []mbox.Unescape{mbox.UnescapeMboxrd, mbox.UnescapeMboxo} {
			un, _, uerr := readAll(data, mbox.Options{Unescape: u})
			if (uerr == nil) != (err == nil) || len(un) != len(msgs) {
				t.Fatalf("unescape %d: %d messages, err %v; plain read %d, %v", u, len(un), uerr, len(msgs), err)
			}
		}
		roundTripSmall(t, data, 16+len(data)%48)
		if err == nil && len(msgs) > 1 {
			checkResume(t, data, len(msgs)/2)
		}
	})
}

// checkResume reads data whole, then again from the offset of message k with the mode the
// first reading decided, as a resumed migration does, and fails unless both split the rest
// alike.
func checkResume(t testing.TB, data []byte, k int) {
	t.Helper()
	r := mbox.NewReader(bytes.NewReader(data), int64(len(data)), mbox.Options{})
	var whole []readMsg
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		whole = append(whole, readMsg{Message: m, body: b})
	}
	off := whole[k].Offset
	rest, _, err := readAll(data[off:], mbox.Options{Loose: r.Loose(), LooseFrom: r.LooseFrom()})
	if err != nil {
		t.Fatalf("resumed at offset %d: %v", off, err)
	}
	if len(rest) != len(whole)-k {
		t.Fatalf("resumed at message %d (offset %d): %d messages, want %d", k, off, len(rest), len(whole)-k)
	}
	for i, m := range rest {
		w := whole[k+i]
		if m.Offset+off != w.Offset || !bytes.Equal(m.Header, w.Header) || !bytes.Equal(m.body, w.body) {
			t.Fatalf("resumed at message %d: message %d differs (offset %d, want %d)", k, k+i, m.Offset+off, w.Offset)
		}
	}
}

// isBlank reports whether data is only an optional byte-order mark and white space: a file that
// holds no message.
func isBlank(data []byte) bool {
	return len(bytes.Trim(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")) == 0
}
