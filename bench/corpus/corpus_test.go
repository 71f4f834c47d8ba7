package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMboxSeeded proves that a seed gives the same bytes every time, another seed other
// bytes, and that the mbox holds the messages asked for.
func TestMboxSeeded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, seed uint64) []byte {
		p := filepath.Join(dir, name)
		if err := writeMbox(p, 500, seed); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := write("a", 1), write("b", 1), write("c", 2)
	if !bytes.Equal(a, b) {
		t.Error("two mboxes of seed 1 differ")
	}
	if bytes.Equal(a, c) {
		t.Error("the mboxes of seeds 1 and 2 are the same")
	}
	msgs, err := splitMbox(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 500 {
		t.Errorf("%d messages, want 500", len(msgs))
	}
	if n := bytes.Count(a, []byte("\nFrom ")) + 1; n != 500 {
		t.Errorf("%d lines start with From , want one for each of 500 messages", n)
	}
}

func TestUsersMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := writeUsers(dir, 3, 40, 1); err != nil {
		t.Fatal(err)
	}
	var first []byte
	for _, u := range []string{"u0000", "u0001", "u0002"} {
		b, err := os.ReadFile(filepath.Join(dir, u))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := splitMbox(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 40 {
			t.Errorf("%s: %d messages, want 40", u, len(msgs))
		}
		if first != nil && bytes.Equal(first, b) {
			t.Errorf("%s is the same as u0000", u)
		}
		first = b
	}
}

// TestMutate proves what -mutate promises: the counts it reports are what it did, the
// expunged messages are gone and the others kept in order, a reflagged message differs
// from its original only in Status and X-Status and has Seen toggled, every other message
// is byte for byte the same, the file keeps its inode, and the same seed on the same file
// makes the same change.
func TestMutate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig")
	if err := writeMbox(orig, 3000, 7); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "alice")
	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, path)
	m, err := mutate(path, 0.01, 0.05, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", m)
	if m.messages != 3000 || m.expunged == 0 || m.reflagged == 0 {
		t.Fatalf("%s: want 3000 messages, some expunged and some reflagged", m)
	}
	// 1% and 5% of 3,000: 30 and 150 expected; far outside means the shares are wrong.
	if m.expunged < 10 || m.expunged > 60 || m.reflagged < 100 || m.reflagged > 210 {
		t.Errorf("%s: far from 1%% expunged and 5%% reflagged", m)
	}
	if got := inode(t, path); got != ino {
		t.Errorf("the file was replaced (inode %d, was %d), not rewritten in place", got, ino)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := splitMbox(before)
	cur, err := splitMbox(after)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != m.messages-m.expunged {
		t.Fatalf("%d messages left, want %d", len(cur), m.messages-m.expunged)
	}
	// Walk both in order: each message left is the next original with the same From_
	// line and body.
	expunged, same, changed := 0, 0, 0
	j := 0
	for _, o := range old {
		if j < len(cur) && fromLine(o) == fromLine(cur[j]) {
			c := cur[j]
			j++
			if bytes.Equal(o, c) {
				same++
				continue
			}
			changed++
			if !bytes.Equal(body(o), body(c)) {
				t.Errorf("message %q: body changed", fromLine(o))
			}
			if strip(o) != strip(c) {
				t.Errorf("message %q: headers other than Status and X-Status changed:\n%s\n---\n%s", fromLine(o), strip(o), strip(c))
			}
			if header(o, "Status") == header(c, "Status") || bytes.ContainsRune([]byte(header(o, "Status")), 'R') == bytes.ContainsRune([]byte(header(c, "Status")), 'R') {
				t.Errorf("message %q: Status %q became %q: Seen not toggled", fromLine(o), header(o, "Status"), header(c, "Status"))
			}
			continue
		}
		expunged++
	}
	if j != len(cur) {
		t.Errorf("%d messages left are not the originals in order", len(cur)-j)
	}
	if expunged != m.expunged || changed != m.reflagged || same != m.messages-m.expunged-m.reflagged {
		t.Errorf("found %d expunged, %d changed, %d the same; mutate said %s", expunged, changed, same, m)
	}

	again := filepath.Join(dir, "copy", "alice")
	os.Mkdir(filepath.Dir(again), 0o755)
	if err := os.WriteFile(again, before, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mutate(again, 0.01, 0.05, 1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(b, after) {
		t.Error("the same seed on the same file made another change")
	}
}

func TestMutateRefusesNonMbox(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("not mail\n"), 0o600)
	if _, err := mutate(p, 0.01, 0.05, 1); err == nil {
		t.Error("mutate of a file that is no mbox gave no error")
	}
	if b, _ := os.ReadFile(p); string(b) != "not mail\n" {
		t.Errorf("the file was changed to %q", b)
	}
}

func inode(t *testing.T, p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func fromLine(msg []byte) string {
	l, _, _ := bytes.Cut(msg, []byte("\n"))
	return string(l)
}

func body(msg []byte) []byte {
	_, b, _ := bytes.Cut(msg, []byte("\n\n"))
	return b
}

// header returns the value of the first header named name, or "".
func header(msg []byte, name string) string {
	h, _, _ := bytes.Cut(msg, []byte("\n\n"))
	for _, l := range bytes.Split(h, []byte("\n"))[1:] {
		if v, ok := bytes.CutPrefix(l, []byte(name+": ")); ok {
			return string(v)
		}
	}
	return ""
}

// strip returns the header without its Status and X-Status lines.
func strip(msg []byte) string {
	h, _, _ := bytes.Cut(msg, []byte("\n\n"))
	var out []byte
	for _, l := range bytes.SplitAfter(h, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("Status: ")) && !bytes.HasPrefix(l, []byte("X-Status: ")) {
			out = append(out, l...)
		}
	}
	return string(bytes.TrimRight(out, "\n"))
}
