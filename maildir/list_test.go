package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listFile is a message file of a test Maildir.
type listFile struct {
	path  string // "cur/<name>" or "new/<name>"
	text  string
	mtime int64
}

// buildMaildir makes a Maildir under dir with files, a dovecot-uidlist and dovecot-keywords
// ("" = none).
func buildMaildir(t *testing.T, dir string, files []listFile, uidlist, keywords string) string {
	t.Helper()
	md := filepath.Join(dir, "Maildir")
	mkdirs(t, md+"/cur", md+"/new", md+"/tmp")
	for _, f := range files {
		p := filepath.Join(md, f.path)
		must(t, os.WriteFile(p, []byte(f.text), 0o600))
		must(t, os.Chtimes(p, time.Unix(f.mtime, 0), time.Unix(f.mtime, 0)))
	}
	if uidlist != "" {
		must(t, os.WriteFile(filepath.Join(md, uidlistName), []byte(uidlist), 0o600))
	}
	if keywords != "" {
		must(t, os.WriteFile(filepath.Join(md, keywordsName), []byte(keywords), 0o600))
	}
	return md
}

// listAll runs List and Each and returns what Each handed out, with each file's bytes.
func listAll(t *testing.T, md string) (*Listing, []Listed, []string) {
	t.Helper()
	d, err := Open(md, false)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	l, err := d.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	var got []Listed
	var texts []string
	err = l.Each(func(m *Listed) error {
		b, err := io.ReadAll(m.File)
		if err != nil {
			return err
		}
		c := *m
		c.File = nil
		got = append(got, c)
		texts = append(texts, string(b))
		return nil
	})
	if err != nil {
		t.Fatalf("Each: %v", err)
	}
	return l, got, texts
}

// listCase is the Maildir TestListMatchesDovecot and TestList read: listed files, an
// expunged line, unlisted files whose names test every step of Dovecot's order, keywords
// with a gap, a letter without a name and an invalid unused name.
func listCase(t *testing.T, dir string) string {
	files := []listFile{
		{"cur/1000.M1P1.listed-a,S=21,W=22:2,S", "Subject: a\n\nlisted a\n", 1_000_000_000},
		{"new/900.M1P1.listed-b", "Subject: b\n\nlisted b\n", 1_000_000_100},
		{"cur/800.M1P1.listed-c:2,FRTac", "Subject: c\n\nlisted c\n", 1_000_000_200},
		// Not listed: numbered from N20 on in Dovecot's order.
		{"cur/1600000000.M40P1.host:2,S", "Subject: u40\n\n", 1_100_000_000},
		{"new/1600000000.M5P1.host", "Subject: u5\n\n", 1_100_000_001},
		{"cur/1500000000.zz.host:2,DPS,extra", "Subject: sec\n\n", 1_100_000_002},
		{"cur/abc:2,b", "Subject: nodigits\n\n", 1_100_000_003},
		{"cur/1500000001.a.host:2,", "Subject: ascii\n\n", 1_100_000_004},
		{"cur/1500000001.\xc3\xa9.host:2,T", "Subject: highbit\n\n", 1_100_000_005},
		{"cur/1500000001.:2,F", "Subject: short\n\n", 1_100_000_006},
		{"cur/1500000001.a:x:2,R", "Subject: two colons\n\n", 1_100_000_007},
	}
	uidlist := "3 V4242 N20 G0123456789abcdef0123456789abcdef\n" +
		"3 :1000.M1P1.listed-a,S=21,W=22\n" +
		"5 :gone.expunged\n" +
		"7 :900.M1P1.listed-b\n" +
		"12 W99 :800.M1P1.listed-c:2,FRTac\n"
	keywords := "0 Junk\n2 $Label1\nno-space-line\n5 bad word\n99 out-of-range\n3 junk\n"
	return buildMaildir(t, dir, files, uidlist, keywords)
}

// TestList checks List and Each against the Dovecot rules at the top of list.go, on
// listCase; TestListMatchesDovecot holds the same case against Dovecot itself.
func TestList(t *testing.T) {
	t.Parallel()
	md := listCase(t, t.TempDir())
	l, got, texts := listAll(t, md)
	if l.UIDValidity != 4242 || l.NextUID != 28 || l.Messages != 11 {
		t.Errorf("UIDVALIDITY %d, next UID %d, %d messages; want 4242, 28, 11", l.UIDValidity, l.NextUID, l.Messages)
	}
	if want := "Junk unknown-1 $Label1"; strings.Join(l.Keywords, " ") != want {
		t.Errorf("keywords %q, want %q", l.Keywords, want)
	}
	type row struct {
		uid   uint32
		name  string
		flags string
		kw    string
	}
	want := []row{
		{3, "1000.M1P1.listed-a,S=21,W=22:2,S", "S", ""},
		{7, "900.M1P1.listed-b", "", ""},
		{12, "800.M1P1.listed-c:2,FRTac", "FRT", "Junk $Label1"},
		{20, "abc:2,b", "", "unknown-1"},
		{21, "1500000000.zz.host:2,DPS,extra", "DS", ""},
		{22, "1500000001.\xc3\xa9.host:2,T", "T", ""},
		{23, "1500000001.:2,F", "F", ""},
		{24, "1500000001.a.host:2,", "", ""},
		{25, "1500000001.a:x:2,R", "R", ""},
		{26, "1600000000.M5P1.host", "", ""},
		{27, "1600000000.M40P1.host:2,S", "S", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.UID != w.uid || g.Name != w.name || g.Flags != w.flags || strings.Join(g.Keywords, " ") != w.kw {
			t.Errorf("message %d: uid %d %q flags %q keywords %q, want %+v", i, g.UID, g.Name, g.Flags, g.Keywords, w)
		}
		if g.Size != int64(len(texts[i])) {
			t.Errorf("message %d: size %d, want %d", i, g.Size, len(texts[i]))
		}
	}
	if got[0].VSize != 22 || got[1].VSize != -1 || got[2].VSize != 99 || !got[1].New() || got[0].New() {
		t.Errorf("VSize %d, %d, %d; New %v, %v", got[0].VSize, got[1].VSize, got[2].VSize, got[1].New(), got[0].New())
	}
	if !got[0].Date.Equal(time.Unix(1_000_000_000, 0)) {
		t.Errorf("date %v, want the mtime", got[0].Date)
	}
	// Each may be called again, and reads the same.
	var again []uint32
	must(t, l.Each(func(m *Listed) error { again = append(again, m.UID); return nil }))
	if len(again) != len(want) || again[3] != 20 {
		t.Errorf("second Each: %v", again)
	}
}

// TestListMatchesDovecot has doveadm number and show listCase after List read it: every
// UID, flag, keyword, INTERNALDATE and size must be what Each handed out, and so must
// UIDVALIDITY and UIDNEXT. \Recent belongs to Dovecot's sessions, not to the Maildir, and
// is left out.
func TestListMatchesDovecot(t *testing.T) {
	requireDoveadm(t)
	dir := mailUserDir(t)
	md := listCase(t, dir)
	l, got, texts := listAll(t, md)
	chownTree(t, md, mailUID)
	recs, log := doveadmLog(t, dir, mailUID, "fetch", "uid guid flags date.received.unixtime size.physical size.virtual", "mailbox", "INBOX", "all")
	if len(recs) != len(got) {
		t.Fatalf("doveadm shows %d messages, List %d: %v\n%s", len(recs), len(got), recs, log)
	}
	for i, r := range recs {
		g := got[i]
		var fl []string
		for _, c := range g.Flags {
			fl = append(fl, map[rune]string{'D': `\Draft`, 'F': `\Flagged`, 'R': `\Answered`, 'S': `\Seen`, 'T': `\Deleted`}[c])
		}
		fl = append(fl, g.Keywords...)
		vsize := g.VSize
		if vsize < 0 {
			vsize = g.Size + int64(strings.Count(texts[i], "\n")-strings.Count(texts[i], "\r\n"))
		}
		want := fmt.Sprintf("uid=%d guid=%s flags=%q date=%d size=%d vsize=%d", g.UID, baseOf(g.Name), sortFlags(strings.Join(fl, " ")), g.Date.Unix(), g.Size, vsize)
		have := fmt.Sprintf("uid=%s guid=%s flags=%q date=%s size=%s vsize=%s", r["uid"], r["guid"], sortFlags(strings.ReplaceAll(r["flags"], `\Recent`, "")), r["date.received.unixtime"], r["size.physical"], r["size.virtual"])
		if have != want {
			t.Errorf("message %d:\n dovecot %s\n    list %s", i, have, want)
		}
	}
	status := doveadm(t, dir, mailUID, "mailbox", "status", "uidvalidity uidnext", "INBOX")
	if len(status) != 1 || status[0]["uidvalidity"] != fmt.Sprint(l.UIDValidity) || status[0]["uidnext"] != fmt.Sprint(l.NextUID) {
		t.Errorf("mailbox status %v, List says %d %d", status, l.UIDValidity, l.NextUID)
	}
}

// TestListRefuses gives List and Each Maildirs whose view Dovecot would change, could build
// in more than one way, or that an mbox cannot carry: each is refused with an error naming
// the file, and nothing is followed or changed.
func TestListRefuses(t *testing.T) {
	t.Parallel()
	const head = "3 V9 N5 G0123456789abcdef0123456789abcdef\n"
	cases := []struct {
		name     string
		files    []listFile
		uidlist  string
		keywords string
		setup    func(t *testing.T, md string)
		want     error // matched with errors.Is; nil: a *UIDListError
		says     string
	}{
		{name: "empty base", files: []listFile{{"cur/:2,S", "x\n", 1}}, want: ErrNotExact, says: "empty base"},
		{name: "base twice", files: []listFile{{"cur/1.M1.h:2,S", "x\n", 1}, {"new/1.M1.h", "x\n", 1}}, want: ErrNotExact, says: "same base name 1.M1.h"},
		{name: "mixed microseconds", files: []listFile{{"cur/5.M1.h", "x\n", 1}, {"cur/5.x.h", "x\n", 1}}, want: ErrNotExact, says: "only one microseconds part"},
		{name: "sort alike", files: []listFile{{"cur/01.x", "x\n", 1}, {"cur/1.x", "x\n", 1}}, want: ErrNotExact, says: "sort alike"},
		{name: "time wraps", files: []listFile{{"cur/3000000000.M1.h", "x\n", 1}}, want: ErrNotExact, says: "beyond 2^31-1"},
		{name: "microseconds wrap", files: []listFile{{"cur/5.M3000000000.h", "x\n", 1}}, want: ErrNotExact, says: "beyond 2^31-1"},
		{name: "line end in name", files: []listFile{{"cur/5.M1.h\n", "x\n", 1}}, want: ErrNotExact, says: "line end"},
		{name: "wrong S=", files: []listFile{{"cur/1.M1.h,S=99:2,", "x\n", 1}}, want: ErrNotExact, says: "has 2"},
		{name: "wrong S field", files: []listFile{{"cur/1.M1.h:2,", "x\n", 1}}, uidlist: head + "1 S7 :1.M1.h\n", want: ErrNotExact, says: "to be 7 bytes"},
		{name: "invalid keyword used", files: []listFile{{"cur/1.M1.h:2,a", "x\n", 1}}, keywords: "0 bad(name\n", want: ErrNotExact, says: `"bad(name"`},
		{name: "keyword too long", files: []listFile{{"cur/1.M1.h:2,a", "x\n", 1}}, keywords: "0 " + strings.Repeat("k", 51) + "\n", want: ErrNotExact, says: "longer than 50"},
		{name: "POP3 UIDL", files: []listFile{{"cur/1.M1.h:2,", "x\n", 1}}, uidlist: head + "1 Pabc :1.M1.h\n", want: ErrNotExact, says: "POP3"},
		{name: "POP3 order", files: []listFile{{"cur/1.M1.h:2,", "x\n", 1}}, uidlist: head + "1 O3 :1.M1.h\n", want: ErrNotExact, says: "POP3"},
		{name: "listed twice", files: []listFile{{"cur/1.M1.h:2,", "x\n", 1}}, uidlist: head + "1 :1.M1.h\n2 :1.M1.h:2,S\n", want: ErrNotExact, says: "listed twice"},
		{name: "broken uidlist", files: []listFile{{"cur/1.M1.h:2,", "x\n", 1}}, uidlist: head + "2 :a\n1 :b\n"},
		{name: "symlink", setup: func(t *testing.T, md string) {
			must(t, os.WriteFile(filepath.Join(md, "..", "secret"), []byte("not mail\n"), 0o600))
			must(t, os.Symlink("../../secret", filepath.Join(md, "cur", "1.M1.h:2,S")))
		}, want: ErrUnsafe, says: "symlink"},
		{name: "fifo", setup: func(t *testing.T, md string) {
			must(t, unix.Mkfifo(filepath.Join(md, "cur", "1.M1.h:2,S"), 0o600))
		}, want: ErrUnsafe, says: "FIFO"},
		{name: "symlinked uidlist", setup: func(t *testing.T, md string) {
			must(t, os.WriteFile(filepath.Join(md, "..", "other-uidlist"), []byte("3 V1 N2\n1 :x\n"), 0o600))
			must(t, os.Symlink("../other-uidlist", filepath.Join(md, uidlistName)))
		}, want: ErrUnsafe, says: "symlink"},
		{name: "symlinked keywords", setup: func(t *testing.T, md string) {
			must(t, os.WriteFile(filepath.Join(md, "..", "other-keywords"), []byte("0 Junk\n"), 0o600))
			must(t, os.Symlink("../other-keywords", filepath.Join(md, keywordsName)))
		}, want: ErrUnsafe, says: "symlink"},
		{name: "directory", setup: func(t *testing.T, md string) {
			must(t, os.Mkdir(filepath.Join(md, "new", "1.M1.h"), 0o700))
		}, want: ErrUnsafe, says: "directory"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md := buildMaildir(t, t.TempDir(), tt.files, tt.uidlist, tt.keywords)
			if tt.setup != nil {
				tt.setup(t, md)
			}
			before := snapshot(t, md)
			d, err := Open(md, false)
			must(t, err)
			defer d.Close()
			l, err := d.List()
			if err == nil {
				err = l.Each(func(m *Listed) error {
					_, err := io.ReadAll(m.File)
					return err
				})
				l.Close()
			}
			switch {
			case err == nil:
				t.Fatal("accepted")
			case tt.want == nil:
				if _, ok := errors.AsType[*UIDListError](err); !ok {
					t.Fatalf("error %v, want a *UIDListError", err)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), md) {
				t.Errorf("error %q does not name %s and say %q", err, md, tt.says)
			}
			if after := snapshot(t, md); !reflect.DeepEqual(before, after) {
				t.Errorf("the Maildir changed:\n%v\n%v", before, after)
			}
		})
	}
}

// TestListChanged renames and removes files after List: Each must say the Maildir changed
// rather than hand out a message as something it no longer is.
func TestListChanged(t *testing.T) {
	t.Parallel()
	for _, change := range []string{"rename", "remove"} {
		// a.1 is listed in the uidlist, b.2 is not.
		for _, name := range []string{"1.M1.a:2,", "2.M1.b:2,"} {
			t.Run(change+" "+name, func(t *testing.T) {
				t.Parallel()
				files := []listFile{{"cur/1.M1.a:2,", "a\n", 1}, {"cur/2.M1.b:2,", "b\n", 2}}
				md := buildMaildir(t, t.TempDir(), files, "3 V9 N3 G0123456789abcdef0123456789abcdef\n1 :1.M1.a\n", "")
				d, err := Open(md, false)
				must(t, err)
				defer d.Close()
				l, err := d.List()
				must(t, err)
				defer l.Close()
				p := filepath.Join(md, "cur", name)
				if change == "rename" {
					must(t, os.Rename(p, p+"S"))
				} else {
					must(t, os.Remove(p))
				}
				n := 0
				err = l.Each(func(*Listed) error { n++; return nil })
				if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), name) {
					t.Errorf("Each handed out %d and said %v, want ErrChanged naming %s", n, err, name)
				}
			})
		}
	}
}

// TestListWithoutUIDList lists a Maildir Dovecot never opened: no UIDVALIDITY yet, and UIDs
// from 1 in Dovecot's order.
func TestListWithoutUIDList(t *testing.T) {
	t.Parallel()
	files := []listFile{{"new/20.M2.h", "b\n", 2}, {"new/20.M10.h", "c\n", 3}, {"cur/10.x:2,S", "a\n", 1}}
	l, got, _ := listAll(t, buildMaildir(t, t.TempDir(), files, "", ""))
	var names []string
	for _, m := range got {
		names = append(names, fmt.Sprintf("%d %s", m.UID, m.Name))
	}
	if l.UIDValidity != 0 || l.NextUID != 4 || strings.Join(names, ", ") != "1 10.x:2,S, 2 20.M2.h, 3 20.M10.h" {
		t.Errorf("UIDVALIDITY %d, next %d, messages %v", l.UIDValidity, l.NextUID, names)
	}
}

// TestListEmpty lists a Maildir whose messages were all expunged: no message, and the
// UIDVALIDITY and next UID of its uidlist.
func TestListEmpty(t *testing.T) {
	t.Parallel()
	l, got, _ := listAll(t, buildMaildir(t, t.TempDir(), nil, "3 V77 N12 G0123456789abcdef0123456789abcdef\n11 :gone\n", ""))
	if l.UIDValidity != 77 || l.NextUID != 12 || l.Messages != 0 || len(got) != 0 {
		t.Errorf("UIDVALIDITY %d, next %d, %d messages (%d handed out)", l.UIDValidity, l.NextUID, l.Messages, len(got))
	}
}
