package maildir

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"
)

const testHost = "mx.example.org"

func newTestWriter(t *testing.T, md string, opts Options) (*Dir, *Writer) {
	t.Helper()
	if opts.Host == "" {
		opts.Host = testHost
	}
	d, err := Open(md, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w, err := NewWriter(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d, w
}

var testDate = time.Date(2021, 3, 4, 5, 6, 7, 890123000, time.UTC)

func msg(pos int64, body string) *Message {
	return &Message{Date: testDate, Position: pos, New: true, Content: strings.NewReader(body)}
}

func add(t *testing.T, w *Writer, m *Message) Result {
	t.Helper()
	r, err := w.Add(m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAddNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body  string
		size, vsize int64
	}{
		{"LF", "Subject: x\n\nhello\n", 18, 21},
		{"CRLF", "Subject: x\r\n\r\nhello\r\n", 21, 21},
		{"mixed", "a\r\nb\nc\r\r\n\n", 10, 12},
		{"no final newline", "a\nb", 3, 4},
		{"empty", "", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			// One byte at a time puts every CR and LF on a read boundary.
			m := msg(7, "")
			m.Content = iotest.OneByteReader(strings.NewReader(c.body))
			r := add(t, w, m)
			sum := sha256.Sum256([]byte(c.body))
			want := fmt.Sprintf("1614834367.M890123Q7X%x.%s,S=%d,W=%d", sum[:8], testHost, c.size, c.vsize)
			if r.Name != want || r.Sub != "new" || r.Size != c.size || r.SHA256 != sum || r.Existed {
				t.Errorf("got %+v\nwant name %s", r, want)
			}
			n, err := ParseName(r.Name)
			if err != nil {
				t.Fatal(err)
			}
			if n.Size != c.size || n.VSize != c.vsize || n.Time != testDate.Unix() {
				t.Errorf("ParseName gives %+v", n)
			}
			if got := readFile(t, filepath.Join(md, "new", r.Name)); got != c.body {
				t.Errorf("content %q, want %q", got, c.body)
			}
		})
	}
}

func TestAddDeterministic(t *testing.T) {
	t.Parallel()
	var names [2][]string
	for i := range names {
		md := filepath.Join(t.TempDir(), "Maildir")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		for j, body := range []string{"one\n", "two\n", "one\n"} {
			names[i] = append(names[i], add(t, w, msg(int64(j), body)).Name)
		}
	}
	if !reflect.DeepEqual(names[0], names[1]) {
		t.Errorf("names differ between runs:\n%v\n%v", names[0], names[1])
	}
	if names[0][0] == names[0][2] {
		t.Errorf("same content at two positions gave one name %s", names[0][0])
	}
}

func TestAddHostEscaped(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Host: "a/b:c", Fsync: FsyncNone})
	r := add(t, w, msg(0, "x\n"))
	if !strings.Contains(r.Name, `.a\057b\072c,S=2,W=3`) {
		t.Errorf("name %q does not carry the escaped host", r.Name)
	}
	if strings.Count(r.Name, ":") != 0 || strings.Contains(r.Name, "/") {
		t.Errorf("name %q has a raw ':' or '/'", r.Name)
	}
}

func TestAddFlagsAndSubdir(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		flags    string
		keywords []string
		new      bool
		sub      string
		info     string
	}{
		{"new", "", nil, true, "new", ""},
		{"unread seen by a client", "", nil, false, "cur", ":2,"},
		{"flags sorted", "TSFR", nil, true, "cur", ":2,FRST"},
		{"all system flags", "DFPRST", nil, false, "cur", ":2,DFPRST"},
		{"keywords go to cur", "", []string{"$Forwarded"}, true, "cur", ":2,a"},
		{"flags then keywords", "S", []string{"Junk", "$Forwarded"}, false, "cur", ":2,Sab"},
		{"repeated flags once", "SS", []string{"Junk", "Junk"}, false, "cur", ":2,Sa"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			m := msg(0, "x\n")
			m.Flags, m.Keywords, m.New = c.flags, c.keywords, c.new
			r := add(t, w, m)
			if r.Sub != c.sub || !strings.HasSuffix(r.Name, ",W=3"+c.info) {
				t.Errorf("got %s/%s, want %s/...%s", r.Sub, r.Name, c.sub, c.info)
			}
			if _, err := os.Stat(filepath.Join(md, r.Sub, r.Name)); err != nil {
				t.Error(err)
			}
			if _, err := ParseName(r.Name); err != nil {
				t.Error(err)
			}
		})
	}
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	m := msg(0, "x\n")
	m.Flags = "SX"
	if _, err := w.Add(m); err == nil {
		t.Error("flag X accepted")
	}
}

func TestAddModesAndMtime(t *testing.T) {
	root := t.TempDir()
	md := filepath.Join(root, "Maildir")
	_, w := newTestWriter(t, md, Options{})
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := add(t, w, msg(0, "a\n"))
	m := msg(1, "b\n")
	m.Date = old
	r2 := add(t, w, m)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r2.Name, "0.M0Q1X") {
		t.Errorf("pre-1970 name %s", r2.Name)
	}
	for _, c := range []struct {
		r    Result
		want time.Time
	}{{r1, testDate}, {r2, old}} {
		fi, err := os.Lstat(filepath.Join(md, c.r.Sub, c.r.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v", c.r.Name, fi.Mode())
		}
		if !fi.ModTime().Equal(c.want) {
			t.Errorf("%s: mtime %v, want %v", c.r.Name, fi.ModTime(), c.want)
		}
	}
	for _, f := range []string{"dovecot-uidlist"} {
		fi, err := os.Lstat(filepath.Join(md, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v", f, fi.Mode())
		}
	}
}

func TestAddNeverOverwrites(t *testing.T) {
	t.Parallel()
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			// Learn the name in a scratch Maildir, then plant a different
			// file under that name in the real one after NewWriter listed it.
			_, scratch := newTestWriter(t, filepath.Join(t.TempDir(), "Maildir"), Options{Fsync: FsyncNone})
			name := add(t, scratch, msg(0, "real\n")).Name

			md := filepath.Join(t.TempDir(), "Maildir")
			var durable []Result
			_, w := newTestWriter(t, md, Options{Fsync: mode, Durable: func(r Result) { durable = append(durable, r) }})
			planted := filepath.Join(md, "new", name)
			must(t, os.WriteFile(planted, []byte("planted"), 0o600))
			r := add(t, w, msg(0, "real\n"))
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, planted); got != "planted" {
				t.Errorf("planted file overwritten: %q", got)
			}
			if mode != FsyncBatch && !r.Existed {
				t.Errorf("Existed = false for a planted name")
			}
			if len(durable) != 1 || !durable[0].Existed || durable[0].Name != r.Name {
				t.Errorf("Durable saw %+v, want the planted name as Existed", durable)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(filepath.Join(md, "tmp")); len(left) != 0 {
				t.Errorf("tmp/ not empty after Close: %v", left)
			}
		})
	}
}

func TestReAddIsIdempotent(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	md := filepath.Join(root, "Maildir")
	bodies := []string{"a\n", "b\r\n", "c"}
	run := func() []Result {
		d, w := newTestWriter(t, md, Options{})
		defer d.Close()
		defer w.Close()
		w.SetUIDBase(1234, 10)
		var rs []Result
		for i, b := range bodies {
			m := msg(int64(i), b)
			m.Flags = "S"
			m.UID = uint32(5 + i)
			rs = append(rs, add(t, w, m))
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	first := run()
	before := snapshot(t, root)
	uidlist := readFile(t, filepath.Join(md, "dovecot-uidlist"))
	second := run()
	for i := range first {
		if !second[i].Existed || second[i].Name != first[i].Name || second[i].UID != first[i].UID || second[i].Sub != first[i].Sub {
			t.Errorf("message %d: first %+v, second %+v", i, first[i], second[i])
		}
	}
	after := snapshot(t, root)
	// tmp/ held the second copies until they were found to exist.
	delete(before, "Maildir/tmp")
	delete(after, "Maildir/tmp")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("second run changed the Maildir:\n%v\n%v", before, after)
	}
	if got := readFile(t, filepath.Join(md, "dovecot-uidlist")); got != uidlist {
		t.Errorf("uidlist changed:\n%s\n%s", uidlist, got)
	}
}

func TestExistedButUnlisted(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	add(t, w, msg(0, "a\n"))
	add(t, w, msg(1, "b\n"))
	// No Commit: as after a crash, the files are there but not listed.
	d.Close()
	_, w = newTestWriter(t, md, Options{Fsync: FsyncNone})
	r0 := add(t, w, msg(0, "a\n"))
	r1 := add(t, w, msg(1, "b\n"))
	r2 := add(t, w, msg(2, "c\n"))
	if !r0.Existed || !r1.Existed || r2.Existed {
		t.Errorf("Existed %v %v %v", r0.Existed, r1.Existed, r2.Existed)
	}
	if r0.UID != 1 || r1.UID != 2 || r2.UID != 3 {
		t.Errorf("UIDs %d %d %d, want 1 2 3", r0.UID, r1.UID, r2.UID)
	}
	must(t, w.Commit())
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(md, "dovecot-uidlist"))), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "1 :"+r0.Name) || !strings.HasPrefix(lines[3], "3 :"+r2.Name) {
		t.Errorf("uidlist:\n%s", strings.Join(lines, "\n"))
	}
}

func TestUIDRules(t *testing.T) {
	t.Parallel()
	const guid = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name         string
		existing     string // dovecot-uidlist before the run
		validity     uint32 // SetUIDBase, 0 = not called
		last         uint32
		xuids        []uint32
		want         []uint32
		wantV, wantN uint32
		renumbered   bool
	}{
		{name: "no base: X-UIDs ignored", xuids: []uint32{5, 0, 7}, want: []uint32{1, 2, 3}, wantN: 4},
		{name: "base keeps ascending X-UIDs", validity: 1000, last: 10, xuids: []uint32{5, 6, 12},
			want: []uint32{5, 6, 12}, wantV: 1000, wantN: 13},
		{name: "last UID is used, not next", validity: 1000, last: 10, xuids: []uint32{0, 0},
			want: []uint32{11, 12}, wantV: 1000, wantN: 13},
		{name: "X-UID below previous renumbered", validity: 1000, last: 10, xuids: []uint32{0, 3},
			want: []uint32{11, 12}, wantV: 1000, wantN: 13, renumbered: true},
		{name: "repeated X-UID renumbered", validity: 1000, last: 10, xuids: []uint32{5, 5, 6},
			want: []uint32{5, 11, 12}, wantV: 1000, wantN: 13, renumbered: true},
		{name: "X-UID above last raises next", validity: 1000, last: 2, xuids: []uint32{1, 40, 0},
			want: []uint32{1, 40, 41}, wantV: 1000, wantN: 42},
		{name: "existing uidlist same validity", existing: "3 V1000 N20 G" + guid + "\n3 :3.a.h\n19 :19.b.h\n",
			validity: 1000, last: 10, xuids: []uint32{25, 21, 0},
			want: []uint32{25, 26, 27}, wantV: 1000, wantN: 28, renumbered: true},
		{name: "existing uidlist: expunged UIDs never reused", existing: "3 V1000 N20 G" + guid + "\n5 :5.a.h\n",
			validity: 1000, last: 10, xuids: []uint32{10, 19, 20},
			want: []uint32{20, 21, 22}, wantV: 1000, wantN: 23, renumbered: true},
		{name: "existing uidlist other validity", existing: "3 V999 N20 G" + guid + "\n",
			validity: 1000, last: 30, xuids: []uint32{25},
			want: []uint32{20}, wantV: 999, wantN: 21, renumbered: true},
		{name: "existing uidlist without base", existing: "3 V999 N20 G" + guid + "\n",
			xuids: []uint32{25, 0}, want: []uint32{20, 21}, wantV: 999, wantN: 22},
		{name: "version 1 uidlist", existing: "1 999 7\n6 6.a.h:2,S\n",
			xuids: []uint32{0}, want: []uint32{7}, wantV: 999, wantN: 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			mkdirs(t, md)
			if c.existing != "" {
				must(t, os.WriteFile(filepath.Join(md, "dovecot-uidlist"), []byte(c.existing), 0o600))
			}
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			if c.validity != 0 {
				w.SetUIDBase(c.validity, c.last)
			}
			var got []uint32
			var names []string
			for i, u := range c.xuids {
				m := msg(int64(i), fmt.Sprintf("message %d\n", i))
				m.UID = u
				r := add(t, w, m)
				got = append(got, r.UID)
				names = append(names, strings.TrimSuffix(r.Name, ":2,"))
			}
			must(t, w.Commit())
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("UIDs %v, want %v", got, c.want)
			}
			if w.Renumbered() != c.renumbered {
				t.Errorf("Renumbered() = %v", w.Renumbered())
			}
			if w.NextUID() != c.wantN {
				t.Errorf("NextUID() = %d, want %d", w.NextUID(), c.wantN)
			}
			if c.wantV != 0 && w.UIDValidity() != c.wantV {
				t.Errorf("UIDValidity() = %d, want %d", w.UIDValidity(), c.wantV)
			}
			if c.wantV == 0 && (w.UIDValidity() < uint32(time.Now().Unix()-60) || w.UIDValidity() > uint32(time.Now().Unix())) {
				t.Errorf("fresh UIDValidity() = %d, not now", w.UIDValidity())
			}
			lines := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(md, "dovecot-uidlist")), "\n"), "\n")
			head := strings.Fields(lines[0])
			if len(head) != 4 || head[0] != "3" || head[1] != fmt.Sprintf("V%d", w.UIDValidity()) ||
				head[2] != fmt.Sprintf("N%d", c.wantN) || len(head[3]) != 33 || head[3][0] != 'G' {
				t.Errorf("header %q", lines[0])
			}
			if c.existing != "" && strings.HasPrefix(c.existing, "3 ") && head[3] != "G"+guid {
				t.Errorf("guid not kept: %q", head[3])
			}
			var wantLines []string
			if c.existing != "" {
				for _, l := range strings.Split(strings.TrimSuffix(c.existing, "\n"), "\n")[1:] {
					if strings.HasPrefix(c.existing, "1 ") {
						l = strings.Replace(l, " ", " :", 1)
					}
					wantLines = append(wantLines, l)
				}
			}
			for i, u := range c.want {
				wantLines = append(wantLines, fmt.Sprintf("%d :%s", u, names[i]))
			}
			if !reflect.DeepEqual(lines[1:], wantLines) {
				t.Errorf("lines\n%s\nwant\n%s", strings.Join(lines[1:], "\n"), strings.Join(wantLines, "\n"))
			}
		})
	}
}

func TestKeywordsFile(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	mkdirs(t, md)
	must(t, os.WriteFile(filepath.Join(md, "dovecot-keywords"), []byte("0 $Forwarded\n2 Old\n"), 0o600))
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	m := msg(0, "x\n")
	m.Keywords = []string{"Old", "New", "$Forwarded"}
	r := add(t, w, m)
	if !strings.HasSuffix(r.Name, ":2,abc") {
		t.Errorf("name %s, want letters abc", r.Name)
	}
	var many []string
	for i := 0; i < 30; i++ {
		many = append(many, fmt.Sprintf("k%02d", i))
	}
	m = msg(1, "y\n")
	m.Keywords = append(many, "bad name", "")
	r = add(t, w, m)
	must(t, w.Commit())
	n, _ := ParseName(r.Name)
	if n.Flags != "defghijklmnopqrstuvwxyz" {
		t.Errorf("flags %q, want the 23 free letters", n.Flags)
	}
	wantDropped := []string{"k23", "k24", "k25", "k26", "k27", "k28", "k29", "bad name", ""}
	if got := w.DroppedKeywords(); !reflect.DeepEqual(got, wantDropped) {
		t.Errorf("DroppedKeywords() = %q, want %q", got, wantDropped)
	}
	got := readFile(t, filepath.Join(md, "dovecot-keywords"))
	if !strings.HasPrefix(got, "0 $Forwarded\n1 New\n2 Old\n3 k00\n") || !strings.HasSuffix(got, "25 k22\n") {
		t.Errorf("dovecot-keywords:\n%s", got)
	}
	if fi, err := os.Lstat(filepath.Join(md, "dovecot-keywords")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("dovecot-keywords mode: %v %v", fi, err)
	}
}

func TestFsyncModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone, FsyncSyncfs} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: mode, BatchFiles: 3})
			var rs []Result
			for i := 0; i < 8; i++ {
				rs = append(rs, add(t, w, msg(int64(i), strings.Repeat("x", i)+"\n")))
				visible := countFiles(t, md, "new")
				want := i + 1
				if mode.batched() {
					// Only whole batches are visible, each once the
					// next one is written: its sync ran meanwhile.
					want = max(0, (i+1)/3-1) * 3
				}
				if visible != want {
					t.Errorf("after %d adds, %d files visible, want %d", i+1, visible, want)
				}
			}
			must(t, w.Commit())
			if n := countFiles(t, md, "new"); n != 8 {
				t.Errorf("%d files in new/ after Commit", n)
			}
			if n := countFiles(t, md, "tmp"); n != 0 {
				t.Errorf("%d files left in tmp/", n)
			}
			for i, r := range rs {
				if got := readFile(t, filepath.Join(md, r.Sub, r.Name)); got != strings.Repeat("x", i)+"\n" {
					t.Errorf("message %d content %q", i, got)
				}
			}
		})
	}
	if f, err := ParseFsync("sometimes"); err == nil {
		t.Errorf("ParseFsync accepted %v", f)
	}
	for _, f := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone, FsyncSyncfs} {
		if g, err := ParseFsync(f.String()); err != nil || g != f {
			t.Errorf("ParseFsync(%s) = %v, %v", f, g, err)
		}
	}
}

func TestDurableOrder(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	var seen []string
	_, w := newTestWriter(t, md, Options{BatchFiles: 3, Durable: func(r Result) {
		// Reported means on disk in new/ or cur/.
		if _, err := os.Stat(filepath.Join(md, r.Sub, r.Name)); err != nil {
			t.Errorf("reported before visible: %v", err)
		}
		seen = append(seen, fmt.Sprintf("%d:%v", r.UID, r.Existed))
	}})
	add(t, w, msg(0, "a\n"))
	add(t, w, msg(0, "a\n")) // the same message again: Existed, but reported after the first
	add(t, w, msg(1, "b\n"))
	add(t, w, msg(2, "c\n")) // third file: the batch completes, and is synced meanwhile
	if len(seen) != 0 {
		t.Errorf("reported before the batch was durable: %v", seen)
	}
	for i := range 3 { // the next batch completes: the first is moved in
		add(t, w, msg(int64(3+i), fmt.Sprintf("%d\n", i)))
	}
	if want := []string{"1:false", "1:true", "2:false", "3:false"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("reported %v, want %v", seen, want)
	}
	add(t, w, msg(6, "d\n"))
	must(t, w.Abort())
	must(t, w.Commit())
	if len(seen) != 4 {
		t.Errorf("aborted message reported: %v", seen)
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{BatchFiles: 2})
	add(t, w, msg(0, "a\n"))
	add(t, w, msg(1, "b\n"))
	must(t, w.Flush()) // durable and visible
	var gone []Result
	for i := range 3 { // a batch whose sync is in flight, and one pending file
		gone = append(gone, add(t, w, msg(int64(2+i), fmt.Sprintf("%d\n", i))))
	}
	if n := countFiles(t, md, "tmp"); n != 3 {
		t.Fatalf("%d files in tmp/ before Abort, want 3", n)
	}
	must(t, w.Abort())
	if n := countFiles(t, md, "tmp"); n != 0 {
		t.Errorf("%d files left in tmp/ after Abort", n)
	}
	if n := countFiles(t, md, "new"); n != 2 {
		t.Errorf("%d files in new/ after Abort, want the 2 of the flushed batch", n)
	}
	must(t, w.Commit())
	ul := readFile(t, filepath.Join(md, "dovecot-uidlist"))
	for _, r := range gone {
		if strings.Contains(ul, r.Name) {
			t.Errorf("uidlist lists %s, aborted", r.Name)
		}
	}
	if strings.Count(ul, "\n") != 3 {
		t.Errorf("uidlist after Abort:\n%s", ul)
	}
}

func TestWriterRefusesSymlinkedControlFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	md := filepath.Join(root, "Maildir")
	mkdirs(t, md)
	target := filepath.Join(root, "target")
	must(t, os.WriteFile(target, []byte("1 2 3\n"), 0o600))
	must(t, os.Symlink(target, filepath.Join(md, "dovecot-uidlist")))
	d, err := Open(md, true)
	must(t, err)
	defer d.Close()
	if _, err := NewWriter(d, Options{Host: testHost}); err == nil {
		t.Fatal("NewWriter read a symlinked dovecot-uidlist")
	}
	if got := readFile(t, target); got != "1 2 3\n" {
		t.Errorf("target changed: %q", got)
	}
}

// countFiles counts the files of md/sub but the run markers of live Writers.
func countFiles(t *testing.T, md, sub string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(md, sub))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), markerPrefix) {
			n++
		}
	}
	return n
}

func sortedNames(t *testing.T, md string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new"} {
		es, err := os.ReadDir(filepath.Join(md, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, sub+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// traceLog records the writer's sync and rename calls, and Durable reports,
// in the order they happened.
type traceLog struct {
	mu     sync.Mutex
	events []string
	fail   func(event string) error
}

func (l *traceLog) record(event string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		if err := l.fail(event); err != nil {
			return err
		}
	}
	l.events = append(l.events, event)
	return nil
}

func (l *traceLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func TestSyncBeforeRename(t *testing.T) {
	t.Parallel()
	for _, mode := range []Fsync{FsyncBatch, FsyncAlways, FsyncNone, FsyncSyncfs} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			log := &traceLog{}
			_, w := newTestWriter(t, md, Options{Fsync: mode, BatchFiles: 3, Durable: func(r Result) {
				log.record("durable " + r.Sub + "/" + r.Name)
			}})
			w.trace = log.record
			const n = 7
			for i := 0; i < n; i++ {
				m := msg(int64(i), fmt.Sprintf("message %d\n", i))
				if i%2 == 1 {
					m.Flags = "S"
				}
				add(t, w, m)
			}
			must(t, w.Commit())

			synced := map[string]bool{}       // files fsynced (tmp/ names and control file locks)
			unsynced := map[string][]string{} // directory → entries renamed into it since its last fsync
			onDisk := map[string]bool{}       // sub/name renamed and its directory fsynced since
			var written []string              // tmp/ files written since the last syncfs
			renames, durable, syncs := 0, 0, 0
			for i, e := range log.list() {
				f := strings.Fields(e)
				switch f[0] {
				case "write":
					written = append(written, f[1])
				case "syncfs":
					// The whole file system: every file written and every
					// directory entry made so far.
					syncs++
					for _, p := range written {
						synced[p] = true
					}
					written = nil
					for dir, ps := range unsynced {
						for _, p := range ps {
							onDisk[p] = true
						}
						delete(unsynced, dir)
					}
				case "fsync":
					syncs++
					switch f[1] {
					case "cur", "new", ".":
						for _, p := range unsynced[f[1]] {
							onDisk[p] = true
						}
						delete(unsynced, f[1])
					default:
						synced[f[1]] = true
					}
				case "rename":
					if mode != FsyncNone && !synced[f[1]] {
						t.Errorf("event %d: %s before its fsync", i, e)
					}
					dir, _, ok := strings.Cut(f[2], "/")
					if !ok {
						dir = "."
					} else {
						renames++
					}
					unsynced[dir] = append(unsynced[dir], f[2])
				case "durable":
					durable++
					if mode != FsyncNone && !onDisk[f[1]] {
						t.Errorf("event %d: %s reported before %s was fsynced after its rename", i, e, path.Dir(f[1]))
					}
				}
			}
			if renames != n || durable != n {
				t.Errorf("%d renames and %d Durable reports, want %d each", renames, durable, n)
			}
			if mode == FsyncNone && syncs != 0 {
				t.Errorf("FsyncNone made %d syncs", syncs)
			}
			if mode != FsyncNone && (len(unsynced) != 0 || !onDisk["dovecot-uidlist"]) {
				t.Errorf("after Commit: not fsynced since renamed into %v, uidlist durable %v; events:\n%s",
					unsynced, onDisk["dovecot-uidlist"], strings.Join(log.list(), "\n"))
			}
		})
	}
}

// A batch whose fsync failed never becomes visible, even when Commit is
// tried again: a second fsync can succeed while the data is lost.
func TestSyncFailureKeepsBatchOut(t *testing.T) {
	t.Parallel()
	for _, mode := range []Fsync{FsyncBatch, FsyncSyncfs} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			testSyncFailureKeepsBatchOut(t, mode)
		})
	}
}

func testSyncFailureKeepsBatchOut(t *testing.T, mode Fsync) {
	md := filepath.Join(t.TempDir(), "Maildir")
	var reported []Result
	_, w := newTestWriter(t, md, Options{Fsync: mode, BatchFiles: 3, Durable: func(r Result) { reported = append(reported, r) }})
	var failed atomic.Bool
	log := &traceLog{fail: func(event string) error {
		if (strings.HasPrefix(event, "fsync tmp/") || event == "syncfs") && failed.CompareAndSwap(false, true) {
			return syscall.EIO
		}
		return nil
	}}
	w.trace = log.record
	add(t, w, msg(0, "a\n"))
	add(t, w, msg(1, "b\n"))
	add(t, w, msg(2, "c\n")) // completes the batch, whose sync fails in the background
	if err := w.Commit(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Commit after a failed sync: %v, want EIO", err)
	}
	if err := w.Commit(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Commit after a failed sync: %v, want EIO again", err)
	}
	if n := countFiles(t, md, "new"); n != 0 || len(reported) != 0 {
		t.Errorf("%d files visible and %d reported after a failed sync", n, len(reported))
	}
	must(t, w.Abort())
	if n := countFiles(t, md, "tmp"); n != 0 {
		t.Errorf("%d files left in tmp/ after Abort", n)
	}
	r := add(t, w, msg(3, "d\n"))
	must(t, w.Commit())
	if got := sortedNames(t, md); !reflect.DeepEqual(got, []string{"new/" + r.Name}) || len(reported) != 1 {
		t.Errorf("after Abort and a new message: %v, reported %v", got, reported)
	}
}

// Flush lists what it made durable in dovecot-uidlist, with the header the
// file is created with; a run that stops after it leaves every file listed,
// and the next run adds them as existing, with their UIDs.
func TestFlushListsInUIDList(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	var durable []Result
	d, w := newTestWriter(t, md, Options{BatchFiles: 2, Durable: func(r Result) { durable = append(durable, r) }})
	w.SetUIDBase(1000, 20)
	ul := filepath.Join(md, "dovecot-uidlist")
	var first, lines []string
	for i, uid := range []uint32{7, 9, 15} {
		m := msg(int64(i), fmt.Sprintf("message %d\n", i))
		m.UID = uid
		r := add(t, w, m)
		first = append(first, r.Name)
		lines = append(lines, fmt.Sprintf("%d :%s", r.UID, r.Name))
		if i == 1 {
			// The batch of two filled up, and is synced while the next
			// is written; Flush moves it in and lists it.
			must(t, w.Flush())
			got := strings.Split(strings.TrimSuffix(readFile(t, ul), "\n"), "\n")
			if !strings.HasPrefix(got[0], "3 V1000 N21 G") || !reflect.DeepEqual(got[1:], lines) {
				t.Fatalf("uidlist after a full batch:\n%s\nwant the lines\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
			}
		}
	}
	must(t, w.Flush())
	if len(durable) != 3 || countFiles(t, md, "new") != 3 || countFiles(t, md, "tmp") != 0 {
		t.Fatalf("after Flush: %d reported durable, %d in new/, %d in tmp/", len(durable), countFiles(t, md, "new"), countFiles(t, md, "tmp"))
	}
	got := strings.Split(strings.TrimSuffix(readFile(t, ul), "\n"), "\n")
	if !reflect.DeepEqual(got[1:], lines) {
		t.Fatalf("uidlist after Flush:\n%s\nwant the lines\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
	must(t, CheckUIDList(strings.NewReader(readFile(t, ul))))
	// No Commit: the run stops here. The next one adds the same messages
	// again, then one more, and lists only that one.
	d.Close()
	_, w = newTestWriter(t, md, Options{})
	for i, uid := range []uint32{7, 9, 15, 0} {
		m := msg(int64(i), fmt.Sprintf("message %d\n", i))
		m.UID = uid
		r := add(t, w, m)
		if i < 3 && (!r.Existed || r.Name != first[i] || r.UID != uid) {
			t.Errorf("message %d again: %+v, want the existing %s with UID %d", i, r, first[i], uid)
		}
		if i == 3 {
			lines = append(lines, fmt.Sprintf("%d :%s", r.UID, r.Name))
		}
	}
	must(t, w.Commit())
	got = strings.Split(strings.TrimSuffix(readFile(t, ul), "\n"), "\n")
	if !strings.HasPrefix(lines[3], "21 :") || !strings.HasPrefix(got[0], "3 V1000 N22 G") || !reflect.DeepEqual(got[1:], lines) {
		t.Errorf("uidlist:\n%s\nwant the lines\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
}

// Abort lists the files that were already durable.
func TestAbortListsDurableFiles(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	r := add(t, w, msg(0, "kept\n"))
	must(t, w.Abort())
	got := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(md, "dovecot-uidlist")), "\n"), "\n")
	if len(got) != 2 || got[1] != "1 :"+r.Name {
		t.Errorf("uidlist after Abort: %q, want the durable message listed", got)
	}
}

// TestCommitKeepsLongUIDLists adds more messages than a Writer keeps uidlist
// lines in memory, over several Commits and two runs, and checks that the file
// holds every line once, in order.
func TestCommitKeepsLongUIDLists(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	mkdirs(t, md)
	// A Courier (version 1) file, as an older migration left it.
	must(t, os.WriteFile(filepath.Join(md, "dovecot-uidlist"), []byte("1 4242 3\n1 old.one:2,S\n2 old.two\n"), 0o600))
	want := []string{"1 :old.one:2,S", "2 :old.two"}
	for run, n := range []int{2*spillEvery + 100, spillEvery + 7} {
		d, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		for i := range n {
			r := add(t, w, msg(int64(run*10000+i), fmt.Sprintf("run %d message %d\n", run, i)))
			want = append(want, fmt.Sprintf("%d :%s", r.UID, r.Name))
			if i == spillEvery+1 {
				must(t, w.Commit())
			}
		}
		if c := countFiles(t, md, "tmp"); c != 0 {
			t.Errorf("run %d: %d files in tmp/ before Commit, want none", run, c)
		}
		must(t, w.Commit())
		must(t, w.Commit())
		d.Close()
		got := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(md, "dovecot-uidlist")), "\n"), "\n")
		if head := fmt.Sprintf("3 V4242 N%d G", len(want)+1); !strings.HasPrefix(got[0], head) {
			t.Errorf("run %d: header %q, want %q...", run, got[0], head)
		}
		if !reflect.DeepEqual(got[1:], want) {
			t.Fatalf("run %d: uidlist has %d lines, want %d; first difference at %d", run, len(got)-1, len(want), firstDiff(got[1:], want))
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Dovecot delivering into the Maildir while the Writer writes: a UID Dovecot
// gave meanwhile is never given again, a file of ours Dovecot listed keeps
// Dovecot's UID, and a uidlist Dovecot made anew is not overwritten.
func TestPublishAfterDovecotChangedTheUIDList(t *testing.T) {
	t.Parallel()
	const guid = "0123456789abcdef0123456789abcdef"
	t.Run("new UIDs", func(t *testing.T) {
		t.Parallel()
		md, ul := maildirWithUIDList(t, "3 V5 N2 G"+guid+"\n1 :a\n")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		r := add(t, w, msg(0, "x\n"))
		if r.UID != 2 {
			t.Fatalf("first UID %d, want 2", r.UID)
		}
		// Dovecot delivers meanwhile and lists its message with UID 2.
		must(t, os.WriteFile(ul+".new", []byte("3 V5 N3 G"+guid+"\n1 :a\n2 :b\n"), 0o600))
		must(t, os.Rename(ul+".new", ul))
		must(t, w.Commit())
		want := "3 V5 N4 G" + guid + "\n1 :a\n2 :b\n3 :" + r.Name + "\n"
		if got := readFile(t, ul); got != want {
			t.Errorf("uidlist %q, want %q", got, want)
		}
		if !w.Renumbered() || w.NextUID() != 4 {
			t.Errorf("Renumbered %v, NextUID %d; want true, 4", w.Renumbered(), w.NextUID())
		}
	})
	t.Run("ours listed", func(t *testing.T) {
		t.Parallel()
		md, ul := maildirWithUIDList(t, "3 V5 N2 G"+guid+"\n1 :a\n")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		r := add(t, w, msg(0, "x\n"))
		dovecot := "3 V5 N8 G" + guid + "\n1 :a\n7 :" + r.Name + "\n"
		must(t, os.WriteFile(ul+".new", []byte(dovecot), 0o600))
		must(t, os.Rename(ul+".new", ul))
		must(t, w.Flush())
		if got := readFile(t, ul); got != dovecot {
			t.Errorf("uidlist %q, want Dovecot's %q", got, dovecot)
		}
		again := add(t, w, msg(0, "x\n"))
		if !again.Existed || again.UID != 7 {
			t.Errorf("the message again: %+v, want it existing with Dovecot's UID 7", again)
		}
	})
	t.Run("new UIDVALIDITY", func(t *testing.T) {
		t.Parallel()
		md := filepath.Join(t.TempDir(), "Maildir")
		mkdirs(t, md)
		ul := filepath.Join(md, "dovecot-uidlist")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		w.SetUIDBase(9, 0)
		add(t, w, msg(0, "x\n"))
		dovecot := "3 V5 N2 G" + guid + "\n1 :b\n"
		must(t, os.WriteFile(ul, []byte(dovecot), 0o600))
		if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "UIDVALIDITY is 5") {
			t.Fatalf("Commit: %v, want a UIDVALIDITY error", err)
		}
		if got := readFile(t, ul); got != dovecot {
			t.Errorf("uidlist now %q, want Dovecot's %q", got, dovecot)
		}
		if _, err := os.Lstat(ul + ".lock"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lock left behind (%v)", err)
		}
	})
	t.Run("line cut short", func(t *testing.T) {
		t.Parallel()
		md, ul := maildirWithUIDList(t, "3 V5 N2 G"+guid+"\n1 :a\n")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
		r := add(t, w, msg(0, "x\n"))
		must(t, os.WriteFile(ul, []byte("3 V5 N2 G"+guid+"\n1 :a\n2 :cut"), 0o600))
		must(t, w.Flush())
		want := "3 V5 N3 G" + guid + "\n1 :a\n2 :" + r.Name + "\n"
		if got := readFile(t, ul); got != want {
			t.Errorf("uidlist %q, want %q", got, want)
		}
	})
}

// A source whose first message was deleted: with AnyPosition the messages
// that moved up match the files written from their old positions, and only
// what is new is written.
func TestAnyPosition(t *testing.T) {
	t.Parallel()
	bodies := []string{"Subject: one\n\n1\n", "Subject: two\n\n2\n", "Subject: three\n\n3\n", "Subject: four\n\n4\n"}
	for _, any := range []bool{false, true} {
		t.Run(fmt.Sprint("AnyPosition=", any), func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			var first []Result
			for i, b := range bodies[:3] {
				first = append(first, add(t, w, msg(int64(i), b)))
			}
			must(t, w.Commit())

			_, w = newTestWriter(t, md, Options{Fsync: FsyncNone, AnyPosition: any})
			var again []Result
			for i, b := range bodies[1:] {
				again = append(again, add(t, w, msg(int64(i), b)))
			}
			must(t, w.Commit())
			for i, r := range again[:2] {
				old := first[i+1]
				matched := r.Existed && r.Name == old.Name && r.UID == old.UID && r.Sub == old.Sub
				if matched != any {
					t.Errorf("message %d again: %+v; first written as %s UID %d", i+2, r, old.Name, old.UID)
				}
			}
			if again[2].Existed {
				t.Errorf("the new message reported existing: %+v", again[2])
			}
			want := 4
			if !any {
				want = 6
			}
			if n := countFiles(t, md, "new"); n != want {
				t.Errorf("%d files in new/, want %d", n, want)
			}
			f, err := os.Open(filepath.Join(md, "dovecot-uidlist"))
			must(t, err)
			defer f.Close()
			u, err := parseUIDList(f)
			must(t, err)
			if len(u.lines) != want {
				t.Errorf("%d uidlist lines, want %d", len(u.lines), want)
			}
		})
	}
	t.Run("duplicates written in one run", func(t *testing.T) {
		t.Parallel()
		md := filepath.Join(t.TempDir(), "Maildir")
		_, w := newTestWriter(t, md, Options{Fsync: FsyncNone, AnyPosition: true})
		a := add(t, w, msg(0, bodies[0]))
		b := add(t, w, msg(1, bodies[0]))
		must(t, w.Commit())
		if a.Existed || b.Existed || a.Name == b.Name {
			t.Errorf("two identical messages of one source: %+v and %+v, want both written", a, b)
		}
	})
}

// A uidlist whose last line was cut short (a write that hit the quota, a
// crash) before this Writer read it: the next lines go after a rewrite
// that drops the part, never straight after it.
func TestAppendAfterLineCutShort(t *testing.T) {
	t.Parallel()
	for _, fsync := range []Fsync{FsyncBatch, FsyncNone} {
		t.Run(fsync.String(), func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			ul := filepath.Join(md, "dovecot-uidlist")
			_, w := newTestWriter(t, md, Options{Fsync: fsync})
			var lines []string
			for i := range 3 {
				r := add(t, w, msg(int64(i), fmt.Sprintf("message %d\n", i)))
				lines = append(lines, fmt.Sprintf("%d :%s", r.UID, r.Name))
			}
			must(t, w.Commit())
			f, err := os.OpenFile(ul, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("4")
			must(t, err)
			must(t, f.Close())

			_, w = newTestWriter(t, md, Options{Fsync: fsync})
			for i := range 6 {
				r := add(t, w, msg(int64(i), fmt.Sprintf("message %d\n", i)))
				if i >= 3 {
					lines = append(lines, fmt.Sprintf("%d :%s", r.UID, r.Name))
				}
			}
			must(t, w.Commit())
			text := readFile(t, ul)
			if err := CheckUIDList(strings.NewReader(text)); err != nil {
				t.Fatalf("uidlist Dovecot would call broken: %v\n%s", err, text)
			}
			got := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
			if !reflect.DeepEqual(got[1:], lines) {
				t.Errorf("uidlist:\n%s\nwant the lines\n%s", text, strings.Join(lines, "\n"))
			}
		})
	}
}

// An append that fails part way (here a write that hit the quota after
// part of a line) leaves the file as it was, so that a later append
// starts on a line of its own.
func TestFailedAppendIsUndone(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	ul := filepath.Join(md, "dovecot-uidlist")
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	add(t, w, msg(0, "first\n"))
	must(t, w.Flush())
	before := readFile(t, ul)
	quota := true
	w.trace = func(event string) error {
		if event != "append dovecot-uidlist" || !quota {
			return nil
		}
		quota = false
		f, err := os.OpenFile(ul, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.WriteString("3 :par")
			f.Close()
		}
		if err != nil {
			return err
		}
		return syscall.EDQUOT
	}
	add(t, w, msg(1, "second\n"))
	if err := w.Flush(); !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("Flush: %v, want EDQUOT", err)
	}
	if got := readFile(t, ul); got != before {
		t.Fatalf("uidlist after the failed append:\n%q\nwant it as before:\n%q", got, before)
	}
	must(t, w.Commit())
	text := readFile(t, ul)
	if err := CheckUIDList(strings.NewReader(text)); err != nil {
		t.Fatalf("uidlist Dovecot would call broken: %v\n%s", err, text)
	}
	if n := strings.Count(text, "\n"); n != 3 {
		t.Errorf("uidlist has %d lines, want a header and 2:\n%s", n, text)
	}
}

// Dovecot rewriting the uidlist between two batches, with a file of the
// size the Writer last saw, that gives out a UID the Writer would give
// next: the Writer must see the change, though ext4 may hand the new file
// the inode number of the one the Writer saw.
func TestUIDListReplacedWithSameSize(t *testing.T) {
	t.Parallel()
	const guid = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name string
		// replace puts dovecot in place of the uidlist at ul; w is the Writer.
		replace func(t *testing.T, w *Writer, ul, dovecot string)
	}{
		{"renamed over twice", func(t *testing.T, w *Writer, ul, dovecot string) {
			// Twice, as Dovecot does across two changes: unless the
			// Writer holds the first file, its inode number comes back.
			for _, text := range []string{dovecot, dovecot} {
				must(t, os.WriteFile(ul+".new", []byte(text), 0o600))
				must(t, os.Rename(ul+".new", ul))
			}
		}},
		{"inode number reused", func(t *testing.T, w *Writer, ul, dovecot string) {
			must(t, os.WriteFile(ul+".new", []byte(dovecot), 0o600))
			later := time.Now().Add(time.Second)
			must(t, os.Chtimes(ul+".new", later, later))
			must(t, os.Rename(ul+".new", ul))
			seen := *w.pubStat
			w.sawUIDList = func(st *unix.Stat_t) { st.Dev, st.Ino = seen.Dev, seen.Ino }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			md, ul := maildirWithUIDList(t, "3 V5 N2 G"+guid+"\n1 :a\n")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
			r := add(t, w, msg(0, "x\n"))
			must(t, w.Flush())
			mine := "3 V5 N2 G" + guid + "\n1 :a\n2 :" + r.Name + "\n"
			if got := readFile(t, ul); got != mine {
				t.Fatalf("uidlist %q, want %q", got, mine)
			}
			// Dovecot expunges a and numbers a delivered b: same size.
			dovecot := "3 V5 N4 G" + guid + "\n2 :" + r.Name + "\n3 :b\n"
			if len(dovecot) != len(mine) {
				t.Fatalf("the test's files differ in size")
			}
			tc.replace(t, w, ul, dovecot)
			next := add(t, w, msg(1, "y\n"))
			must(t, w.Flush())
			text := readFile(t, ul)
			if err := CheckUIDList(strings.NewReader(text)); err != nil {
				t.Fatalf("uidlist Dovecot would call broken: %v\n%s", err, text)
			}
			if want := dovecot + "4 :" + next.Name + "\n"; text != want || !w.Renumbered() {
				t.Errorf("uidlist %q (renumbered %v), want %q", text, w.Renumbered(), want)
			}
		})
	}
}

// The uidlist lock taken over as stale in the middle of a batch (the
// Writer stopped for minutes between two renames), and the other holder
// still writing its uidlist into the lock file: the Writer neither
// appends, nor renames or removes the other's lock file, but waits for the
// other to finish and lists its batch after what the other wrote.
func TestLockTakenOverMidBatch(t *testing.T) {
	t.Parallel()
	const guid = "0123456789abcdef0123456789abcdef"
	md := filepath.Join(t.TempDir(), "Maildir")
	mkdirs(t, md)
	ul := filepath.Join(md, "dovecot-uidlist")
	lock := ul + ".lock"
	must(t, os.WriteFile(ul, []byte("3 V5 N2 G"+guid+"\n1 :a\n"), 0o600))
	var durable []Result
	_, w := newTestWriter(t, md, Options{Durable: func(r Result) { durable = append(durable, r) }})
	r0 := add(t, w, msg(0, "x\n"))
	r1 := add(t, w, msg(1, "y\n"))

	// Dovecot's new uidlist: a delivered b, and our first file, which it
	// found in new/ once it held the lock.
	theirs := "3 V5 N4 G" + guid + "\n1 :a\n2 :b\n3 :" + r0.Name + "\n"
	var (
		took, finished bool
		events         []string
	)
	w.trace = func(event string) error {
		if strings.HasPrefix(event, "fsync ") {
			return nil // from several goroutines at once
		}
		events = append(events, event)
		switch {
		case !took && strings.HasPrefix(event, "rename tmp/") && strings.HasSuffix(event, r0.Name):
			took = true
			if err := os.Remove(lock); err != nil {
				return err
			}
			return os.WriteFile(lock, []byte(theirs[:20]), 0o600)
		case took && !finished && event == "wait dovecot-uidlist.lock":
			finished = true
			if got := readFile(t, lock); got != theirs[:20] {
				t.Errorf("the other holder's lock file reads %q, want %q", got, theirs[:20])
			}
			must(t, os.WriteFile(lock, []byte(theirs), 0o600))
			return os.Rename(lock, ul)
		}
		return nil
	}
	must(t, w.Flush())
	if !took || !finished {
		t.Fatalf("the Writer did not wait for the other holder (took over %v, finished %v): %q", took, finished, events)
	}
	text := readFile(t, ul)
	if err := CheckUIDList(strings.NewReader(text)); err != nil {
		t.Fatalf("uidlist Dovecot would call broken: %v\n%s", err, text)
	}
	if want := theirs + "4 :" + r1.Name + "\n"; text != want {
		t.Errorf("uidlist %q, want %q", text, want)
	}
	if len(durable) != 2 || durable[0].UID != 3 || durable[1].UID != 4 {
		t.Errorf("reported durable %+v, want UIDs 3 and 4", durable)
	}
	if _, err := os.Lstat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock left behind (%v)", err)
	}
}

// maildirWithUIDList makes an empty Maildir whose dovecot-uidlist holds content, as Dovecot
// left it, and returns the Maildir's and the uidlist's paths.
func maildirWithUIDList(t *testing.T, content string) (md, ul string) {
	t.Helper()
	md = filepath.Join(t.TempDir(), "Maildir")
	mkdirs(t, md)
	ul = filepath.Join(md, "dovecot-uidlist")
	must(t, os.WriteFile(ul, []byte(content), 0o600))
	return md, ul
}

// undated is a message without a date of its own, shown with mtime.
func undated(pos int64, body string, mtime time.Time) *Message {
	return &Message{MTime: mtime, Position: pos, New: true, Content: strings.NewReader(body)}
}

// A message without a date of its own is named with the time part 0, whatever
// mtime it is given to show: a second run, after the source's mtime changed
// (a delivery, a touch, a restore), finds the file the first run wrote.
func TestAddUndatedName(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	first := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	a := add(t, w, undated(0, "Subject: a\n\nx\n", first))
	b := add(t, w, undated(1, "Subject: b\n\ny\n", first))
	must(t, w.Commit())
	for _, r := range []Result{a, b} {
		if !strings.HasPrefix(r.Name, "0.M0Q") || r.Existed {
			t.Fatalf("undated message named %s (existed %v), want a new file named 0.M0Q...", r.Name, r.Existed)
		}
		fi, err := os.Stat(filepath.Join(md, r.Sub, r.Name))
		must(t, err)
		if !fi.ModTime().Equal(first) {
			t.Errorf("%s: mtime %v, want the given %v", r.Name, fi.ModTime(), first)
		}
	}

	_, w = newTestWriter(t, md, Options{Fsync: FsyncNone})
	later := first.Add(36 * time.Hour)
	a2 := add(t, w, undated(0, "Subject: a\n\nx\n", later))
	b2 := add(t, w, undated(1, "Subject: b\n\ny\n", later))
	c2 := add(t, w, undated(2, "Subject: c\n\nz\n", later))
	must(t, w.Commit())
	if !a2.Existed || a2.Name != a.Name || a2.UID != a.UID || !b2.Existed || b2.Name != b.Name || b2.UID != b.UID {
		t.Errorf("second run with another mtime: %+v, %+v; want the files %s and %s found", a2, b2, a.Name, b.Name)
	}
	if c2.Existed || !strings.HasPrefix(c2.Name, "0.M0Q2X") {
		t.Errorf("new undated message: %+v", c2)
	}
	if n := countFiles(t, md, "new"); n != 3 {
		t.Errorf("%d files in new/, want 3", n)
	}
}

// Earlier versions named a message without a date of its own after the
// source's mtime: such a file is the message's, found again whatever its
// seconds, while a file of another position or content is not.
func TestAddUndatedFindsMTimeName(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	oldMTime := time.Unix(1700000000, 123456789)
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	// What the previous version wrote: the mtime as the message's date.
	old := add(t, w, &Message{Date: oldMTime, Position: 0, New: true, Content: strings.NewReader("Subject: a\n\nx\n")})
	dated := add(t, w, &Message{Date: testDate, Position: 1, New: true, Content: strings.NewReader("Subject: b\n\ny\n")})
	must(t, w.Commit())
	if !strings.HasPrefix(old.Name, "1700000000.M123456Q0X") {
		t.Fatalf("old-style name %s", old.Name)
	}

	_, w = newTestWriter(t, md, Options{Fsync: FsyncNone})
	now := oldMTime.Add(time.Hour)
	a := add(t, w, undated(0, "Subject: a\n\nx\n", now))
	// The dated message keeps its name; the same bytes undated at its
	// position are another name (its own file has another time part).
	b := add(t, w, &Message{Date: testDate, Position: 1, New: true, Content: strings.NewReader("Subject: b\n\ny\n")})
	moved := add(t, w, undated(2, "Subject: a\n\nx\n", now))
	other := add(t, w, undated(3, "Subject: a\n\nx, changed\n", now))
	must(t, w.Commit())
	if !a.Existed || a.Name != old.Name || a.UID != old.UID {
		t.Errorf("undated message again: %+v; want the file %s (UID %d) found", a, old.Name, old.UID)
	}
	if !b.Existed || b.Name != dated.Name {
		t.Errorf("dated message again: %+v; want its name %s kept", b, dated.Name)
	}
	if moved.Existed || other.Existed {
		t.Errorf("another position or content matched an old file: %+v, %+v", moved, other)
	}
	if n := countFiles(t, md, "new"); n != 4 {
		t.Errorf("%d files in new/, want 4", n)
	}
}

// AnyPosition still matches an undated message that moved up in its source.
func TestAnyPositionUndated(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	mtime := time.Unix(1700000000, 0)
	_, w := newTestWriter(t, md, Options{Fsync: FsyncNone})
	add(t, w, undated(0, "Subject: gone\n\n0\n", mtime))
	kept := add(t, w, undated(1, "Subject: kept\n\n1\n", mtime))
	must(t, w.Commit())

	_, w = newTestWriter(t, md, Options{Fsync: FsyncNone, AnyPosition: true})
	r := add(t, w, undated(0, "Subject: kept\n\n1\n", mtime.Add(time.Minute)))
	must(t, w.Commit())
	if !r.Existed || r.Name != kept.Name || r.UID != kept.UID {
		t.Errorf("moved undated message: %+v; want %s found", r, kept.Name)
	}
	if n := countFiles(t, md, "new"); n != 2 {
		t.Errorf("%d files in new/, want 2", n)
	}
}

// openBelow counts this process's descriptors open on files in dir (not on
// dir itself).
func openBelow(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// A batch keeps its tmp files open until their fsync, so that they are not
// opened twice, but never more than maxHeld of them; the rest are opened
// again for it. Commit and Abort leave none open, a failed sync neither.
func TestBatchHoldsFewDescriptors(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"commit", "abort", "sync failure"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: FsyncBatch, BatchFiles: 5})
			w.maxHeld = 2
			base := openBelow(t, md+"/tmp") // the Writer's run marker
			log := &traceLog{}
			if end == "sync failure" {
				log.fail = func(event string) error {
					if strings.HasPrefix(event, "fsync tmp/") {
						return syscall.EIO
					}
					return nil
				}
			}
			w.trace = log.record
			for i := range 4 {
				add(t, w, msg(int64(i), fmt.Sprintf("message %d\n", i)))
				if w.held > 2 {
					t.Fatalf("after message %d: %d tmp files held open, at most 2 wanted", i, w.held)
				}
			}
			if n := openBelow(t, md+"/tmp") - base; n != 2 {
				t.Errorf("%d descriptors open in tmp/ before the batch's sync, want 2", n)
			}
			// The same content and position again: not written, its tmp file closed.
			if r := add(t, w, msg(3, "message 3\n")); !r.Existed {
				t.Errorf("a message added twice was not reported Existed")
			}
			var err error
			switch end {
			case "abort":
				err = w.Abort()
			default:
				err = w.Commit()
			}
			if end == "sync failure" {
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("Commit with failing fsyncs: %v, want EIO", err)
				}
				must(t, w.Abort())
			} else {
				must(t, err)
			}
			if n := openBelow(t, md+"/tmp") - base; n != 0 || w.held != 0 {
				t.Errorf("%d descriptors left open in tmp/ (held %d)", n, w.held)
			}
			if n := countFiles(t, md, "tmp"); n != 0 {
				t.Errorf("%d files left in tmp/", n)
			}
			want := 0
			if end == "commit" {
				want = 4
				synced := 0
				for _, e := range log.list() {
					if strings.HasPrefix(e, "fsync tmp/") {
						synced++
					}
				}
				if synced != 4 {
					t.Errorf("%d tmp files fsynced, want the 4 written", synced)
				}
			}
			if n := countFiles(t, md, "new"); n != want {
				t.Errorf("%d files in new/, want %d", n, want)
			}
		})
	}
}

// TestAddModeUnderUmask is not parallel: the umask is process-wide. Message
// files are 0600 whatever the umask, and a umask that leaves 0600 whole
// costs no fchmod.
func TestAddModeUnderUmask(t *testing.T) {
	for _, mask := range []int{0o277, 0o177, 0o077, 0o022, 0} {
		for _, mode := range []Fsync{FsyncBatch, FsyncNone} {
			old := unix.Umask(mask)
			md := filepath.Join(t.TempDir(), "Maildir")
			_, w := newTestWriter(t, md, Options{Fsync: mode})
			unix.Umask(old)
			if w.umask != uint32(mask) {
				t.Errorf("umask %04o read as %04o", mask, w.umask)
			}
			r := add(t, w, msg(0, "a\n"))
			must(t, w.Commit())
			fi, err := os.Lstat(filepath.Join(md, r.Sub, r.Name))
			must(t, err)
			if fi.Mode() != 0o600 {
				t.Errorf("umask %04o, %s: mode %v, want 0600", mask, mode, fi.Mode())
			}
		}
	}
}

// An undated message whose look for an earlier name fails (cur/ cannot be
// listed) leaves its tmp file neither open nor counted as held.
func TestAddUndatedListFailureClosesTmp(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, w := newTestWriter(t, md, Options{Fsync: FsyncBatch})
	defer w.Close()
	base := openBelow(t, md+"/tmp") // the Writer's run marker
	// cur/'s descriptor swapped for one on a file: listing it fails.
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-dir"))
	must(t, err)
	defer f.Close()
	cur := d.sub[subCur]
	d.sub[subCur] = int(f.Fd())
	_, err = w.Add(undated(0, "Subject: a\n\nx\n", testDate))
	d.sub[subCur] = cur
	if err == nil {
		t.Fatal("Add with cur/ not listable succeeded")
	}
	if n := openBelow(t, md+"/tmp") - base; n != 0 || w.held != 0 {
		t.Errorf("%d descriptors left open in tmp/ (held %d)", n, w.held)
	}
	if n := countFiles(t, md, "tmp"); n != 0 {
		t.Errorf("%d files left in tmp/", n)
	}
}

// TestFsyncDefault: an empty Options syncs as the command line does by default, and the
// default is the first of FsyncModes, which the command line lists in that order.
func TestFsyncDefault(t *testing.T) {
	got := (Options{}).Fsync
	if got != DefaultFsync || DefaultFsync != FsyncSyncfs || FsyncModes[0] != DefaultFsync {
		t.Errorf("Options{}.Fsync = %v, DefaultFsync %v, FsyncModes[0] %v: want syncfs for all three", got, DefaultFsync, FsyncModes[0])
	}
	for _, f := range FsyncModes {
		if g, err := ParseFsync(f.String()); err != nil || g != f {
			t.Errorf("ParseFsync(%q) = %v, %v", f.String(), g, err)
		}
	}
	if _, err := ParseFsync("sometimes"); err == nil {
		t.Error("ParseFsync(sometimes) = nil error")
	}
}
