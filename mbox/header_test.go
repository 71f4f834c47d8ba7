package mbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
)

// metaOf reads a one-message mbox with the given header block.
func metaOf(t *testing.T, header string) mbox.Meta {
	t.Helper()
	msgs, _, err := readAll([]byte(f1+header+"\nbody\n"), mbox.Options{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read: %d messages, %v", len(msgs), err)
	}
	return msgs[0].Meta
}

func TestMeta(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		check  func(m mbox.Meta) bool
	}{
		{"absent", "Subject: x\n", func(m mbox.Meta) bool {
			return !m.HasStatus && !m.HasXStatus && m.Status == "" && m.UID == 0 && m.IMAPBase == nil &&
				m.ContentLength == -1 && m.Keywords == nil
		}},
		{"empty Status", "Status: \n", func(m mbox.Meta) bool { return m.HasStatus && m.Status == "" }},
		{"Status and X-Status", "status:   RO  \nX-Status: AFT\n", func(m mbox.Meta) bool {
			return m.HasStatus && m.Status == "RO" && m.HasXStatus && m.XStatus == "AFT"
		}},
		{"folded Status", "Status: R\n O\n", func(m mbox.Meta) bool { return m.Status == "R O" }},
		{"first Status wins", "Status: R\nStatus: O\n", func(m mbox.Meta) bool { return m.Status == "R" }},
		{"X-UID", "X-UID: 4294967295\n", func(m mbox.Meta) bool { return m.UID == 4294967295 }},
		{"X-UID invalid", "X-UID: 12a\n", func(m mbox.Meta) bool { return m.UID == 0 }},
		{"X-UID too large", "X-UID: 4294967296\n", func(m mbox.Meta) bool { return m.UID == 0 }},
		{"padded X-Keywords", "X-Keywords: $label1 NonJunk                                   \n", func(m mbox.Meta) bool {
			return strings.Join(m.Keywords, "|") == "$label1|NonJunk"
		}},
		{"blank X-Keywords", "X-Keywords:                     \n", func(m mbox.Meta) bool { return m.Keywords == nil }},
		{"X-Keywords with commas and folding", "X-Keywords: a, b,c\n\td\n", func(m mbox.Meta) bool {
			return strings.Join(m.Keywords, "|") == "a|b|c|d"
		}},
		{"X-IMAPbase with keywords", "X-IMAPbase: 1795364162 0000000010 $Forwarded $label1 NonJunk\n", func(m mbox.Meta) bool {
			b := m.IMAPBase
			return b != nil && !b.UW && b.UIDValidity == 1795364162 && b.LastUID == 10 &&
				strings.Join(b.Keywords, "|") == "$Forwarded|$label1|NonJunk"
		}},
		{"X-IMAPbase without keywords", "X-IMAPbase: 1528796916 6\n", func(m mbox.Meta) bool {
			return m.IMAPBase != nil && m.IMAPBase.UIDValidity == 1528796916 && m.IMAPBase.LastUID == 6 && m.IMAPBase.Keywords == nil
		}},
		{"X-IMAPbase invalid", "X-IMAPbase: 12\n", func(m mbox.Meta) bool { return m.IMAPBase == nil }},
		{"Content-Length", "Content-Length:  5 \n", func(m mbox.Meta) bool { return m.ContentLength == 5 }},
		{"Content-Length negative", "Content-Length: -5\n", func(m mbox.Meta) bool { return m.ContentLength == -1 }},
		{"Content-Length junk", "Content-Length: five\n", func(m mbox.Meta) bool { return m.ContentLength == -1 }},
		{"look-alike names are not meta", "X-Status-Foo: A\nStatusx: R\n", func(m mbox.Meta) bool {
			return !m.HasStatus && !m.HasXStatus
		}},
		{"CRLF", "Status: RO\r\nX-UID: 3\r\n", func(m mbox.Meta) bool { return m.Status == "RO" && m.UID == 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if m := metaOf(t, tt.header); !tt.check(m) {
				t.Errorf("header %q gave %+v", tt.header, m)
			}
		})
	}
}

func TestStripMeta(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"nothing to strip", "Subject: a\nFrom: b\n\n", "Subject: a\nFrom: b\n\n"},
		{"all meta headers", "Status: RO\nSubject: a\nX-Status: A\nX-Keywords: k\nX-UID: 3\nX-IMAP: 1 2\nX-IMAPbase: 1 2 k\nContent-Length: 9\nTo: c\n\n",
			"Subject: a\nTo: c\n\n"},
		{"case and folding", "subject: a\nX-KEYWORDS: a\n b\n\tc\ncontent-length : 4\nX-Other: keep\n  folded\n\n",
			"subject: a\nX-Other: keep\n  folded\n\n"},
		{"CRLF", "Status: R\r\nSubject: a\r\n\r\n", "Subject: a\r\n\r\n"},
		{"no final empty line", "Subject: a\nStatus: R", "Subject: a\n"},
		{"junk lines kept", "Subject: a\nnot a header\nStatus: O\n\n", "Subject: a\nnot a header\n\n"},
		{"look-alike names kept", "X-Status-Foo: 1\nX-UIDL: 2\n\n", "X-Status-Foo: 1\nX-UIDL: 2\n\n"},
		{"empty", "", ""},
		{"only the empty line", "\n", "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(mbox.StripMeta([]byte(tt.in))); got != tt.want {
				t.Errorf("StripMeta(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDateHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		want   time.Time
	}{
		{"Date: Fri, 28 Dec 2001 22:18:08 +0200\n\n", time.Date(2001, 12, 28, 20, 18, 8, 0, time.UTC)},
		{"Subject: x\ndate:\n Fri, 28 Dec 2001 22:18:08 +0200\n\n", time.Date(2001, 12, 28, 20, 18, 8, 0, time.UTC)},
		{"Date: Fri, 28 Dec 2001 22:18:08 -0800 (PST)\n", time.Date(2001, 12, 29, 6, 18, 8, 0, time.UTC)},
		{"Date: Fri 28 Dec 2001 22:18:08 +0000\n", time.Date(2001, 12, 28, 22, 18, 8, 0, time.UTC)},
		{"Date: Fri, 28 Dec 01 22:18:08 +0000\n", time.Date(2001, 12, 28, 22, 18, 8, 0, time.UTC)},
		{"Date: 28 Dec 2001 22:18:08 GMT\n", time.Date(2001, 12, 28, 22, 18, 8, 0, time.UTC)},
		{"Date: Fri, 28 Dec 2001 22:18:08 +0100 CET\n", time.Date(2001, 12, 28, 21, 18, 8, 0, time.UTC)},
		{"Date: Fri Dec 28 22:18:08 2001\r\n\r\n", time.Date(2001, 12, 28, 22, 18, 8, 0, time.UTC)},
		{"Date: Fri, 23 Aug 2002 2:32:53 -0400\n", time.Date(2002, 8, 23, 6, 32, 53, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			got, ok := mbox.DateHeader([]byte(tt.header))
			if !ok || !got.Equal(tt.want) {
				t.Errorf("DateHeader(%q) = %v, %v; want %v", tt.header, got, ok, tt.want)
			}
		})
	}
	for _, h := range []string{"Subject: x\n\n", "Date: \n", "Date: yesterday\n", "X-Date: Fri, 28 Dec 2001 22:18:08 +0200\n"} {
		if got, ok := mbox.DateHeader([]byte(h)); ok {
			t.Errorf("DateHeader(%q) = %v, want not ok", h, got)
		}
	}
}
