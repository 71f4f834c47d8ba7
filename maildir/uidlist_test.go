package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

const testGUID = "0123456789abcdef0123456789abcdef"

// uidlistCases are dovecot-uidlist files naming the messages a, b and c. Where
// ok is true the parser accepts the file and next is the next UID it settles
// on; where ok is false it calls the file broken at line badLine. Each verdict
// is Dovecot 2.3.19's, as TestDovecotJudgesUIDLists shows, except for the
// cases marked stricter.
var uidlistCases = []struct {
	name, in string
	ok       bool
	next     uint32 // when ok
	badLine  int    // when not ok
	stricter bool   // refused only to bound memory; Dovecot reads it
}{
	{name: "v3", in: "3 V1 N3 G" + testGUID + "\n1 :a\n2 W12 S10 :b:2,S\n", ok: true, next: 3},
	{name: "v3 empty", in: "3 V1275660208 N1 G3085f01b7f11094c501100008c4a11c1\n", ok: true, next: 1},
	{name: "v3 without GUID", in: "3 V1 N4\n1 :a\n", ok: true, next: 4},
	{name: "v3 upper-case GUID", in: "3 V1 N4 G" + strings.ToUpper(testGUID) + "\n1 :a\n", ok: true, next: 4},
	// Dovecot appends to the file in place, so an unterminated last line is a
	// write in progress: Dovecot skips it and gives b a new UID.
	{name: "v3 no final newline", in: "3 V1 N2\n1 :a\n2 :b", ok: true, next: 2},
	{name: "v1", in: "1 1275660208 3\n1 a\n2 b\n", ok: true, next: 3},
	{name: "v1 extra header field", in: "1 1275660208 4 x\n1 a\n", ok: true, next: 4},
	{name: "v1 spaces before the name", in: "1 7 4\n1 a\n2  b\n", ok: true, next: 4},
	// In version 3, Dovecot raises the next UID past the last listed one.
	{name: "v3 uid not below next", in: "3 V1 N2\n2 :a\n", ok: true, next: 3},
	{name: "v3 spaces before the name", in: "3 V1 N4\n1  :a\n2 W1  :b\n", ok: true, next: 4},
	{name: "v3 colon in an extension value", in: "3 V1 N4\n1 W1:2 :a\n", ok: true, next: 4},
	// Dovecot logs it, drops the field and rewrites the file; UIDs survive.
	{name: "v3 lower-case extension key", in: "3 V1 N4\n1 w12 :a\n", ok: true, next: 4},

	{name: "empty file", in: "", badLine: 1},
	{name: "header without newline", in: "3 V1 N2", badLine: 1},
	{name: "unknown version", in: "4 V1 N2\n", badLine: 1},
	{name: "tab after version", in: "3\tV1 N2\n", badLine: 1},
	{name: "two spaces after version", in: "3  V1 N2\n", badLine: 1},
	{name: "no uidvalidity", in: "3 N2\n", badLine: 1},
	{name: "no next uid", in: "3 V1\n", badLine: 1},
	{name: "bad number", in: "3 Vx N2\n", badLine: 1},
	{name: "number with junk", in: "3 V1234x N2\n", badLine: 1},
	{name: "bad next uid", in: "3 V1 Nx\n", badLine: 1},
	{name: "short GUID", in: "3 V1 N3 G00\n1 :a\n", badLine: 1},
	{name: "v1 short header", in: "1 5\n", badLine: 1},
	{name: "uids not ascending", in: "3 V1 N9\n2 :a\n2 :b\n", badLine: 3},
	{name: "v1 uid not below next", in: "1 1 2\n1 a\n2 b\n", badLine: 3},
	{name: "no file name field", in: "3 V1 N9\n1 a\n", badLine: 2},
	{name: "extension but no name", in: "3 V1 N9\n1 :a\n2 W12\n", badLine: 3},
	{name: "empty name", in: "3 V1 N9\n1 :a\n2 :\n", badLine: 3},
	{name: "no uid", in: "3 V1 N9\n:a\n", badLine: 2},
	{name: "tab after uid", in: "3 V1 N9\n1 :a\n2\t:b\n", badLine: 3},
	{name: "empty line", in: "3 V1 N9\n1 :a\n\n2 :b\n", badLine: 3},
	{name: "empty last line", in: "3 V1 N9\n1 :a\n2 :b\n\n", badLine: 4},
	{name: "slash in name", in: "3 V1 N9\n1 :a/x\n2 :b\n", badLine: 2},
	{name: "uid 2^32-1", in: "3 V1 N9\n1 :a\n4294967295 :b\n", badLine: 3},
	{name: "line too long", in: "3 V1 N9\n1 :a\n2 :b" + strings.Repeat("x", 70000) + "\n", badLine: 3, stricter: true},
}

func TestParseUIDList(t *testing.T) {
	t.Parallel()
	for _, tt := range uidlistCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := parseUIDList(strings.NewReader(tt.in))
			if !tt.ok {
				ue, isUE := errors.AsType[*UIDListError](err)
				if !isUE || ue.Line != tt.badLine {
					t.Fatalf("parseUIDList: %v, want a *UIDListError at line %d", err, tt.badLine)
				}
				if err := CheckUIDList(strings.NewReader(tt.in)); err == nil || err.Error() != ue.Error() {
					t.Errorf("CheckUIDList: %v, want %v", err, ue)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseUIDList: %v", err)
			}
			if u.next != tt.next {
				t.Errorf("next UID %d, want %d", u.next, tt.next)
			}
			if err := CheckUIDList(strings.NewReader(tt.in)); err != nil {
				t.Errorf("CheckUIDList: %v", err)
			}
		})
	}
}

// TestParseUIDListLines: version 1 lines are kept in version 3 form, version 3
// lines as written, and the base name of every listed file maps to its UID.
func TestParseUIDListLines(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"v1", "1 9 7\n3 a:2,S\n6 b\n", []string{"3 :a:2,S", "6 :b"}},
		{"v3", "3 V9 N7 G" + testGUID + " Zx\n3 W5 :a:2,S\n6  :b\n", []string{"3 W5 :a:2,S", "6  :b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := parseUIDList(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range u.lines {
				got = append(got, l.text)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			if u.validity != 9 || u.byBase["a"] != 3 || u.byBase["b"] != 6 || len(u.byBase) != 2 {
				t.Errorf("validity %d, byBase %v", u.validity, u.byBase)
			}
		})
	}
}

// TestWriterRefusesBrokenUIDList: the Writer carries a uidlist forward, so it
// must not carry forward one that Dovecot would throw away.
func TestWriterRefusesBrokenUIDList(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	mkdirs(t, md, md+"/cur", md+"/new", md+"/tmp")
	must(t, os.WriteFile(filepath.Join(md, uidlistName), []byte("3 V1 N9 G00\n"), 0o600))
	d, err := Open(md, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = NewWriter(d, Options{Fsync: FsyncNone})
	ue, ok := errors.AsType[*UIDListError](err)
	if !ok || ue.Line != 1 || ue.Path != md+"/"+uidlistName || !strings.HasPrefix(err.Error(), "maildir: "+md+"/dovecot-uidlist: line 1: ") {
		t.Errorf("NewWriter: %v, want a *UIDListError naming the file", err)
	}
}

// FuzzParseUIDList: whatever a user puts in dovecot-uidlist, the parser answers
// without panicking, never accepts a file without a valid header, and keeps
// the UIDs it accepts ascending and below the next UID.
func FuzzParseUIDList(f *testing.F) {
	for _, c := range uidlistCases {
		if len(c.in) < 1000 {
			f.Add(c.in)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		u, err := parseUIDList(strings.NewReader(in))
		if err != nil {
			if _, ok := errors.AsType[*UIDListError](err); !ok {
				t.Fatalf("%q: error %v is not a *UIDListError", in, err)
			}
			return
		}
		if !strings.HasPrefix(in, "3 ") && !strings.HasPrefix(in, "1 ") || u.validity == 0 {
			t.Errorf("accepted %q", in)
		}
		var last uint32
		for _, l := range u.lines {
			if l.uid <= last || l.uid >= u.next {
				t.Errorf("%q: UID %d after %d, next %d", in, l.uid, last, u.next)
			}
			last = l.uid
		}
	})
}

// uidlistGen produces a valid version 3 dovecot-uidlist of n lines without
// holding it in memory, and calls atEnd once, when the reader asks past its
// last byte: the parser's live data is what it keeps then.
type uidlistGen struct {
	n, i  int
	buf   []byte
	atEnd func()
}

func (g *uidlistGen) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.i == 0:
			g.buf = []byte("3 V1700000000 N" + strconv.Itoa(g.n+1) + " G" + testGUID + "\n")
		case g.i <= g.n:
			g.buf = fmt.Appendf(nil, "%d :17%08d.M%dQ%dX0123456789abcdef.host,S=1234,W=1260:2,S\n", g.i, g.i, g.i%1000000, g.i)
		default:
			if g.atEnd != nil {
				g.atEnd()
				g.atEnd = nil
			}
			return 0, io.EOF
		}
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestCheckUIDListMemory: check reads every user's dovecot-uidlist, whose size the user
// decides, several users at once. What the parser holds once it has read a 400,000-line file
// (about 30 MB) must not grow with the file: the live heap at the end of the file, measured
// after a garbage collection, stays under 4 MiB above what it was before.
func TestCheckUIDListMemory(t *testing.T) {
	const lines = 400000
	var before, atEnd runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := &uidlistGen{n: lines, atEnd: func() {
		runtime.GC()
		runtime.ReadMemStats(&atEnd)
	}}
	if err := CheckUIDList(g); err != nil {
		t.Fatal(err)
	}
	if g.i != lines+1 || g.atEnd != nil {
		t.Fatalf("the parser stopped after %d of %d lines", g.i, lines+1)
	}
	grew := int64(atEnd.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("live heap at the end of a %d-line dovecot-uidlist: %d bytes above the start", lines, grew)
	if grew > 4<<20 {
		t.Errorf("CheckUIDList holds %d bytes at the end of a %d-line file: it keeps what it read", grew, lines)
	}
}
