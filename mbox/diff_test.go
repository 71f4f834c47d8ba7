package mbox_test

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gombox "github.com/emersion/go-mbox"

	"github.com/maildirmig/maildirmig/mbox"
)

// agreeable reports whether go-mbox's rules and ours must split data the same way: LF line
// ends only, no Content-Length, no leading blank lines, and every line that begins "From " a
// valid From_ line (go-mbox splits at each of them, blank line or not).
func agreeable(data []byte) bool {
	if len(data) == 0 || bytes.IndexByte(data, '\r') >= 0 || !bytes.HasPrefix(data, []byte("From ")) {
		return false
	}
	if bytes.Contains(bytes.ToLower(data), []byte("\ncontent-length:")) {
		return false
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("From ")) {
			if _, _, ok := mbox.ParseFromLine(line, time.UTC); !ok {
				return false
			}
		}
	}
	return true
}

// goMboxMessages reads data with go-mbox, turning its CRLF line ends back into LF.
func goMboxMessages(t *testing.T, data []byte) [][]byte {
	t.Helper()
	r := gombox.NewReader(bytes.NewReader(data))
	var out [][]byte
	for {
		m, err := r.NextMessage()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("go-mbox: %v", err)
		}
		b, err := io.ReadAll(m)
		if err != nil {
			t.Fatalf("go-mbox: %v", err)
		}
		out = append(out, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	}
}

// compareWithGoMbox checks that our messages, unescaped as go-mbox does (mboxo), equal
// go-mbox's. go-mbox drops or keeps trailing empty lines differently, so those are trimmed.
func compareWithGoMbox(t *testing.T, data []byte) {
	t.Helper()
	ours, _, err := readAll(data, mbox.Options{Unescape: mbox.UnescapeMboxo})
	if err != nil {
		t.Fatal(err)
	}
	theirs := goMboxMessages(t, data)
	if len(ours) != len(theirs) {
		t.Fatalf("%d messages, go-mbox %d", len(ours), len(theirs))
	}
	for i := range ours {
		a := bytes.TrimRight(append(bytes.Clone(ours[i].Header), ours[i].body...), "\n")
		b := bytes.TrimRight(theirs[i], "\n")
		if !bytes.Equal(a, b) {
			t.Fatalf("message %d differs:\nours    %q\ngo-mbox %q", i, clip(a), clip(b))
		}
	}
}

func TestDifferentialGoMbox(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{}
	for name, data := range fixtures(t) {
		inputs["testdata/"+name] = data
	}
	if dir, ok := optionalCorpora(t); ok {
		for _, rel := range corpusFiles(t, dir) {
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			inputs[rel] = data
		}
		if data := notmuchMbox(t, filepath.Join(dir, "notmuch-corpora")); data != nil {
			inputs["notmuch-corpora as one mbox"] = data
		}
	}
	compared := 0
	for name, data := range inputs {
		if !agreeable(data) {
			continue
		}
		compared++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			compareWithGoMbox(t, data)
		})
	}
	t.Logf("compared %d of %d inputs with go-mbox", compared, len(inputs))
	if compared < 3 {
		t.Errorf("only %d inputs fit both readers' rules", compared)
	}
}

// optionalCorpora is corporaDir without the skip.
func optionalCorpora(t *testing.T) (string, bool) {
	var dir string
	ok := t.Run("corpora", func(t *testing.T) { dir = corporaDir(t) })
	return dir, ok && dir != ""
}

// notmuchMbox builds an mbox from notmuch's single messages, quoting their From lines the mboxo
// way.
func notmuchMbox(t *testing.T, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == "README" {
			return err
		}
		msg, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(msg) == 0 || bytes.IndexByte(msg, '\r') >= 0 || !bytes.Contains(msg, []byte(":")) {
			return nil
		}
		if bytes.HasPrefix(msg, []byte("From ")) {
			// Some are stored with their own From_ line, which ours replaces.
			msg = msg[bytes.IndexByte(msg, '\n')+1:]
		}
		if !bytes.HasSuffix(msg, []byte("\n")) {
			msg = append(msg, '\n')
		}
		out.WriteString("From notmuch@example.org Mon Sep 17 00:00:00 2001\n")
		for _, line := range strings.SplitAfter(string(msg), "\n") {
			if strings.HasPrefix(line, "From ") {
				out.WriteByte('>')
			}
			out.WriteString(line)
		}
		out.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 {
		return nil
	}
	return out.Bytes()
}
