package mbox_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/maildirmig/maildirmig/mbox"
)

// readMsg is a message read to the end, with its body as handed out.
type readMsg struct {
	*mbox.Message
	body []byte
}

// readAll reads every message of data and returns them with the notices seen and the error
// that ended the reading (nil at io.EOF).
func readAll(data []byte, opts mbox.Options) ([]readMsg, []mbox.Notice, error) {
	var notices []mbox.Notice
	opts.Notice = func(n mbox.Notice) { notices = append(notices, n) }
	r := mbox.NewReader(bytes.NewReader(data), int64(len(data)), opts)
	var msgs []readMsg
	for {
		m, err := r.Next()
		if err == io.EOF {
			return msgs, notices, nil
		}
		if err != nil {
			return msgs, notices, err
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return msgs, notices, err
		}
		msgs = append(msgs, readMsg{Message: m, body: b})
	}
}

// reassemble concatenates what the reader returned, which must give back its input when the
// body was not unescaped.
func reassemble(msgs []readMsg) []byte {
	var out []byte
	for _, m := range msgs {
		out = append(out, m.Lead...)
		out = append(out, m.FromLine...)
		out = append(out, m.Header...)
		out = append(out, m.body...)
		out = append(out, m.Separator()...)
	}
	return out
}

// checkRoundTrip reads data without unescaping and fails unless the messages give it back.
func checkRoundTrip(t testing.TB, data []byte) []readMsg {
	t.Helper()
	msgs, _, err := readAll(data, mbox.Options{})
	if err != nil {
		return msgs
	}
	if len(msgs) == 0 && isBlank(data) {
		return msgs
	}
	if got := reassemble(msgs); !bytes.Equal(got, data) {
		t.Fatalf("round trip differs: got %d bytes, want %d\ngot:  %q\nwant: %q", len(got), len(data), clip(got), clip(data))
	}
	for i, m := range msgs {
		if want := int64(len(m.Header) + len(m.body)); m.Size() != want {
			t.Fatalf("message %d: Size() = %d, want %d", i, m.Size(), want)
		}
		if m.Index != i {
			t.Fatalf("message %d: Index = %d", i, m.Index)
		}
	}
	return msgs
}

func clip(b []byte) []byte {
	if len(b) > 600 {
		return b[:600]
	}
	return b
}

// corporaDir returns ../shared/corpora relative to the module root, skipping the test when it
// is absent.
func corporaDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("go.mod not found above the test directory")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "corpora")
	if _, err := os.Stat(c); err != nil {
		t.Skipf("corpora folder %s absent: %v", c, err)
	}
	return c
}
