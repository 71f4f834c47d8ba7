package mbox_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
)

// want is one expected message: its From_ line, header block, body as handed out and separator.
type want struct{ from, header, body, sep string }

const (
	f1 = "From alice@example.org Mon Sep 17 00:00:00 2001\n"
	f2 = "From bob@example.org  Tue Sep 18 01:02:03 2001\n"
	f3 = "From carol Wed Sep 19 02:03:04 2001\n"
)

func TestBoundaries(t *testing.T) {
	t.Parallel()
	bigLine := strings.Repeat("x", 5000) + "\n"
	tests := []struct {
		name    string
		in      string
		opts    mbox.Options
		want    []want
		notices []string
		loose   bool
	}{
		{
			name: "two messages with a blank line between",
			in:   f1 + "Subject: a\n\nbody a\n\n" + f2 + "Subject: b\n\nbody b\n",
			want: []want{{f1, "Subject: a\n\n", "body a\n", "\n"}, {f2, "Subject: b\n\n", "body b\n", ""}},
		},
		{
			name: "From_ line with no blank line before it starts a message",
			in:   f1 + "Subject: a\n\nbody a\n" + f2 + "Subject: b\n\nbody b\n",
			want: []want{{f1, "Subject: a\n\n", "body a\n", ""}, {f2, "Subject: b\n\n", "body b\n", ""}},
		},
		{
			name: "From_ line right after the header block",
			in:   f1 + "Subject: a\n" + f2 + "Subject: b\n\nbody b\n",
			want: []want{{f1, "Subject: a\n", "", ""}, {f2, "Subject: b\n\n", "body b\n", ""}},
		},
		// One empty line between header lines and a From_ line (or the end of the file) is the
		// mbox's separator, as Dovecot reads it: the message is its header lines alone.
		{
			name: "header only, then an empty line and a From_ line",
			in:   f1 + "Subject: a\n\n" + f2 + "Subject: b\n\nbody b\n",
			want: []want{{f1, "Subject: a\n", "", "\n"}, {f2, "Subject: b\n\n", "body b\n", ""}},
		},
		{
			name: "header only, then a final empty line",
			in:   f1 + "Subject: a\n\n",
			want: []want{{f1, "Subject: a\n", "", "\n"}},
		},
		{
			name: "header only in a CRLF mbox",
			in:   "From a Mon Sep 17 00:00:00 2001\r\nS: a\r\n\r\nFrom b Mon Sep 17 00:00:00 2001\r\nS: b\r\n\r\n",
			want: []want{
				{"From a Mon Sep 17 00:00:00 2001\r\n", "S: a\r\n", "", "\r\n"},
				{"From b Mon Sep 17 00:00:00 2001\r\n", "S: b\r\n", "", "\r\n"},
			},
		},
		{
			name: "header only, then two empty lines: the first ends the header block",
			in:   f1 + "S: a\n\n\n" + f2 + "S: b\n\n\n",
			want: []want{{f1, "S: a\n\n", "", "\n"}, {f2, "S: b\n\n", "", "\n"}},
		},
		{
			name: "an empty line before a From line that is body text ends the header block",
			in:   f1 + "S: a\n\nFrom the desk\n\n" + f2 + "\nb\n",
			want: []want{{f1, "S: a\n\n", "From the desk\n", "\n"}, {f2, "\n", "b\n", ""}},
		},
		{
			name:    "header only with a Content-Length that does not hold the next From_ line",
			in:      f1 + "Content-Length: 5\nS: a\n\n" + f2 + "S: b\n\nb\n",
			want:    []want{{f1, "Content-Length: 5\nS: a\n", "", "\n"}, {f2, "S: b\n\n", "b\n", ""}},
			notices: []string{mbox.NoticeContentLengthIgnored},
		},
		{
			name: "unparseable From line is body text",
			in:   f1 + "Subject: a\n\nhello\n\nFrom the desk of the president\n\n" + f2 + "\nb\n",
			want: []want{{f1, "Subject: a\n\n", "hello\n\nFrom the desk of the president\n", "\n"}, {f2, "\n", "b\n", ""}},
		},
		{
			name: "only one blank line is the separator",
			in:   f1 + "S: a\n\nbody\n\n\n\n" + f2 + "S: b\n\nb\n",
			want: []want{{f1, "S: a\n\n", "body\n\n\n", "\n"}, {f2, "S: b\n\n", "b\n", ""}},
		},
		{
			name: "final blank line belongs to the mbox",
			in:   f1 + "S: a\n\nbody\n\n",
			want: []want{{f1, "S: a\n\n", "body\n", "\n"}},
		},
		{
			name:    "no final newline",
			in:      f1 + "S: a\n\nbody",
			want:    []want{{f1, "S: a\n\n", "body", ""}},
			notices: []string{mbox.NoticeNoFinalNewline},
		},
		{
			name:    "header only, no final newline",
			in:      f1 + "S: a",
			want:    []want{{f1, "S: a", "", ""}},
			notices: []string{mbox.NoticeNoFinalNewline},
		},
		{
			name: "empty header block",
			in:   f1 + "\nbody\n\n" + f2 + "\n",
			// The last message's empty line is the final one, the mbox's.
			want: []want{{f1, "\n", "body\n", "\n"}, {f2, "", "", "\n"}},
		},
		{
			name: "empty header block before a From_ line",
			in:   f1 + "\n" + f2 + "S: b\n\nb\n",
			want: []want{{f1, "", "", "\n"}, {f2, "S: b\n\n", "b\n", ""}},
		},
		{
			name: "From_ line alone",
			in:   f1 + f2,
			want: []want{{f1, "", "", ""}, {f2, "", "", ""}},
		},
		{
			name: ">From kept by default",
			in:   f1 + "S: a\n\n>From here\n>>From there\nFrom x y\n",
			want: []want{{f1, "S: a\n\n", ">From here\n>>From there\nFrom x y\n", ""}},
		},
		{
			name: ">From unescaped mboxrd",
			in:   f1 + "S: a\n\n>From here\n>>From there\n> From not\n>Fromage\nx >From y\n",
			opts: mbox.Options{Unescape: mbox.UnescapeMboxrd},
			want: []want{{f1, "S: a\n\n", "From here\n>From there\n> From not\n>Fromage\nx >From y\n", ""}},
		},
		{
			name: ">From unescaped mboxo",
			in:   f1 + "S: a\n\n>From here\n>>From there\n",
			opts: mbox.Options{Unescape: mbox.UnescapeMboxo},
			want: []want{{f1, "S: a\n\n", "From here\n>>From there\n", ""}},
		},
		{
			name:    "unescape leaves the header alone and reaches the first body line",
			in:      f1 + "S: >From a\n\n>From b\n\n" + f2 + "\n>>From c",
			opts:    mbox.Options{Unescape: mbox.UnescapeMboxrd},
			want:    []want{{f1, "S: >From a\n\n", "From b\n", "\n"}, {f2, "\n", ">From c", ""}},
			notices: []string{mbox.NoticeNoFinalNewline},
		},
		{
			name: "CRLF mbox",
			in:   "From a Mon Sep 17 00:00:00 2001\r\nS: a\r\n\r\nbody\r\n\r\nFrom b Mon Sep 17 00:00:00 2001\r\nS: b\r\n\r\nb\r\n\r\n",
			want: []want{
				{"From a Mon Sep 17 00:00:00 2001\r\n", "S: a\r\n\r\n", "body\r\n", "\r\n"},
				{"From b Mon Sep 17 00:00:00 2001\r\n", "S: b\r\n\r\n", "b\r\n", "\r\n"},
			},
		},
		{
			name:    "leading blank lines",
			in:      "\n  \n\t\r\n" + f1 + "\nb\n",
			want:    []want{{f1, "\n", "b\n", ""}},
			notices: []string{mbox.NoticeLeadingBlank},
		},
		{
			name:    "byte-order mark",
			in:      "\xef\xbb\xbf" + f1 + "\nb\n",
			want:    []want{{f1, "\n", "b\n", ""}},
			notices: []string{mbox.NoticeBOM},
		},
		{
			name: "NUL bytes and long lines",
			in:   f1 + "S: \x00\n\n\x00\x00body\x00\n" + bigLine + "\n" + f2 + "\n" + bigLine,
			want: []want{{f1, "S: \x00\n\n", "\x00\x00body\x00\n" + bigLine, "\n"}, {f2, "\n", bigLine, ""}},
		},
		{
			name: "Content-Length keeps a From_ line in the body",
			in:   f1 + "Content-Length: 39\n\n" + "From x Mon Sep 17 00:00:00 2001\nbody 1\n\n" + f2 + "\nb\n",
			want: []want{{f1, "Content-Length: 39\n\n", "From x Mon Sep 17 00:00:00 2001\nbody 1\n", "\n"}, {f2, "\n", "b\n", ""}},
		},
		{
			name: "Content-Length pointing at a From_ line with no blank line",
			in:   f1 + "Content-Length: 6\n\nbody\n\n" + f2 + "\nb\n",
			want: []want{{f1, "Content-Length: 6\n\n", "body\n\n", ""}, {f2, "\n", "b\n", ""}},
		},
		{
			name:    "Content-Length to the end of the file",
			in:      f1 + "Content-Length: 36\n\n" + "From x Mon Sep 17 00:00:00 2001\nbody",
			want:    []want{{f1, "Content-Length: 36\n\n", "From x Mon Sep 17 00:00:00 2001\nbody", ""}},
			notices: []string{mbox.NoticeNoFinalNewline},
		},
		{
			name: "Content-Length followed by a final blank line",
			in:   f1 + "Content-Length: 37\n\n" + "From x Mon Sep 17 00:00:00 2001\nbody\n\n",
			want: []want{{f1, "Content-Length: 37\n\n", "From x Mon Sep 17 00:00:00 2001\nbody\n", "\n"}},
		},
		{
			name:    "Content-Length too short",
			in:      f1 + "Content-Length: 3\n\nbody\n\n" + f2 + "\nb\n",
			want:    []want{{f1, "Content-Length: 3\n\n", "body\n", "\n"}, {f2, "\n", "b\n", ""}},
			notices: []string{mbox.NoticeContentLengthIgnored},
		},
		{
			name:    "Content-Length past the end of the file",
			in:      f1 + "Content-Length: 1000\n\nbody\n\n" + f2 + "\nb\n",
			want:    []want{{f1, "Content-Length: 1000\n\n", "body\n", "\n"}, {f2, "\n", "b\n", ""}},
			notices: []string{mbox.NoticeContentLengthIgnored},
		},
		{
			name:    "Content-Length pointing at a line that is no From_ line",
			in:      f1 + "Content-Length: 5\n\nbody\nFrom the desk\n\n" + f2 + "\nb\n",
			want:    []want{{f1, "Content-Length: 5\n\n", "body\nFrom the desk\n", "\n"}, {f2, "\n", "b\n", ""}},
			notices: []string{mbox.NoticeContentLengthIgnored},
		},
		// Dovecot: with no second empty line, the one after "Content-Length: 0" is the
		// separator, as without Content-Length.
		{
			name: "Content-Length zero, then one empty line and a From_ line",
			in:   f1 + "Content-Length: 0\n\n" + f2 + "\nb\n",
			want: []want{{f1, "Content-Length: 0\n", "", "\n"}, {f2, "\n", "b\n", ""}},
		},
		{
			name: "Content-Length zero, CRLF, then one empty line and a From_ line",
			in:   "From a Mon Sep 17 00:00:00 2001\r\nContent-Length: 0\r\n\r\nFrom b Mon Sep 17 00:00:00 2001\r\n\r\nb\r\n",
			want: []want{
				{"From a Mon Sep 17 00:00:00 2001\r\n", "Content-Length: 0\r\n", "", "\r\n"},
				{"From b Mon Sep 17 00:00:00 2001\r\n", "\r\n", "b\r\n", ""},
			},
		},
		{
			name: "Content-Length zero, then a final empty line",
			in:   f1 + "Content-Length: 0\n\n",
			want: []want{{f1, "Content-Length: 0\n", "", "\n"}},
		},
		{
			name: "Content-Length zero",
			in:   f1 + "Content-Length: 0\n\n\n" + f2 + "\nb\n",
			want: []want{{f1, "Content-Length: 0\n\n", "", "\n"}, {f2, "\n", "b\n", ""}},
		},
		{
			name:    "loose mode",
			in:      "From - \nS: a\n\nbody\nFrom me, in the body\n\nFrom 1844347839636459560@xxx\nS: b\n\nb\n",
			want:    []want{{"From - \n", "S: a\n\n", "body\nFrom me, in the body\n", "\n"}, {"From 1844347839636459560@xxx\n", "S: b\n\n", "b\n", ""}},
			notices: []string{mbox.NoticeLoose},
			loose:   true,
		},
		{
			name:    "loose mode: header only, then an empty line and a one-word From line",
			in:      "From - \nS: a\n\nFrom - \nS: b\n\nb\n",
			want:    []want{{"From - \n", "S: a\n", "", "\n"}, {"From - \n", "S: b\n\n", "b\n", ""}},
			notices: []string{mbox.NoticeLoose},
			loose:   true,
		},
		{
			name:    "loose mode: a From line of several words after an empty line is body",
			in:      "From -\nS: a\n\nmy favourite film:\n\nFrom Russia with love\n\nFrom -\nS: b\n\nb\n",
			want:    []want{{"From -\n", "S: a\n\n", "my favourite film:\n\nFrom Russia with love\n", "\n"}, {"From -\n", "S: b\n\n", "b\n", ""}},
			notices: []string{mbox.NoticeLoose},
			loose:   true,
		},
		{
			name:    "loose mode: the first line's twin and dated lines split without a blank line",
			in:      "From - \nS: a\n\na\nFrom - \nS: b\n\nb\nFrom - Mon Jun  3 12:50:27 1996\nS: c\n\nc\n",
			want:    []want{{"From - \n", "S: a\n\n", "a\n", ""}, {"From - \n", "S: b\n\n", "b\n", ""}, {"From - Mon Jun  3 12:50:27 1996\n", "S: c\n\n", "c\n", ""}},
			notices: []string{mbox.NoticeLoose},
			loose:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs, notices, err := readAll([]byte(tt.in), tt.opts)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(msgs) != len(tt.want) {
				t.Fatalf("got %d messages, want %d", len(msgs), len(tt.want))
			}
			for i, w := range tt.want {
				m := msgs[i]
				got := want{string(m.FromLine), string(m.Header), string(m.body), string(m.Separator())}
				if got != w {
					t.Errorf("message %d:\n got %q\nwant %q", i, got, w)
				}
			}
			var kinds []string
			for _, n := range notices {
				kinds = append(kinds, n.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tt.notices, ",") {
				t.Errorf("notices = %v, want %v", kinds, tt.notices)
			}
			if tt.opts.Unescape == mbox.UnescapeNone {
				checkRoundTrip(t, []byte(tt.in))
			}
			r := mbox.NewReader(strings.NewReader(tt.in), int64(len(tt.in)), tt.opts)
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if r.Loose() != tt.loose {
				t.Errorf("Loose() = %v, want %v", r.Loose(), tt.loose)
			}
		})
	}
}

func TestNotMbox(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, errText string }{
		{"MMDF", "\x01\x01\x01\x01\n", `mbox: not an mbox file: offset 0: expected a From_ line, found "\x01\x01\x01\x01"`},
		{"text", "Hello\nFrom x Mon Sep 17 00:00:00 2001\n", `mbox: not an mbox file: offset 0: expected a From_ line, found "Hello"`},
		{"header", "From: alice@example.org\n\nhi\n", `mbox: not an mbox file: offset 0: expected a From_ line, found "From: alice@example.org"`},
		{"text after blank lines", "\n\nFrom\n", `mbox: not an mbox file: offset 2: expected a From_ line, found "From"`},
		{"quoted From", ">From x Mon Sep 17 00:00:00 2001\n", `mbox: not an mbox file: offset 0: expected a From_ line, found ">From x Mon Sep 17 00:00:00 2001"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs, _, err := readAll([]byte(tt.in), mbox.Options{})
			if !errors.Is(err, mbox.ErrNotMbox) {
				t.Fatalf("err = %v, want ErrNotMbox", err)
			}
			if err.Error() != tt.errText {
				t.Errorf("err = %q, want %q", err, tt.errText)
			}
			if len(msgs) != 0 {
				t.Errorf("got %d messages", len(msgs))
			}
		})
	}
}

func TestNoMessages(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n", "\n\n  \n", "\r\n", "\xef\xbb\xbf", "  "} {
		msgs, _, err := readAll([]byte(in), mbox.Options{})
		if err != nil || len(msgs) != 0 {
			t.Errorf("%q: %d messages, err %v; want none and no error", in, len(msgs), err)
		}
	}
}

func TestMessageFields(t *testing.T) {
	t.Parallel()
	in := "\n" + f1 + "Status: RO\nX-Status: AF\nX-UID: 7\n\nbody\n\n" + "From bob Tue Sep 18 01:02:03 2001\r\nS: b\r\n\r\nb\r\n"
	r := mbox.NewReader(strings.NewReader(in), int64(len(in)), mbox.Options{Location: time.UTC})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Index != 0 || m.Offset != 1 || string(m.Lead) != "\n" || m.Sender != "alice@example.org" || m.CRLF || m.Pseudo {
		t.Errorf("first message: index %d offset %d lead %q sender %q crlf %v pseudo %v", m.Index, m.Offset, m.Lead, m.Sender, m.CRLF, m.Pseudo)
	}
	if want := time.Date(2001, 9, 17, 0, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("date %v, want %v", m.Date, want)
	}
	if m.Meta.Status != "RO" || m.Meta.XStatus != "AF" || m.Meta.UID != 7 {
		t.Errorf("meta %+v", m.Meta)
	}
	// Next drains the unread body and fixes its size and separator.
	m2, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Size() != int64(len("Status: RO\nX-Status: AF\nX-UID: 7\n\nbody\n")) || string(m.Separator()) != "\n" {
		t.Errorf("first message size %d sep %q", m.Size(), m.Separator())
	}
	if b, _ := io.ReadAll(m.Body); len(b) != 0 {
		t.Errorf("stale body gave %q", b)
	}
	if m2.Index != 1 || m2.Offset != int64(strings.Index(in, "From bob")) || !m2.CRLF || len(m2.Lead) != 0 || m2.Sender != "bob" {
		t.Errorf("second message: %+v", m2)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("third Next: %v, want io.EOF", err)
	}
	if r.Offset() != int64(len(in)) {
		t.Errorf("Offset() = %d, want %d", r.Offset(), len(in))
	}
}

func TestPseudoMessage(t *testing.T) {
	t.Parallel()
	in := "From MAILER-DAEMON Wed Oct 14 10:00:00 2020\n" +
		"Date: Wed, 14 Oct 2020 10:00:00 +0000\n" +
		"From: Mail System Internal Data <MAILER-DAEMON@host>\n" +
		"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n" +
		"X-IMAP: 1602669600 0000000012 $Forwarded Junk\n" +
		"Status: RO\n\n" +
		"This text is part of the internal format of your mail folder.\n\n" +
		f1 + "X-UID: 12\n\nreal\n"
	msgs, _, err := readAll([]byte(in), mbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !msgs[0].Pseudo || msgs[1].Pseudo {
		t.Fatalf("got %d messages, pseudo flags wrong", len(msgs))
	}
	b := msgs[0].Meta.IMAPBase
	if b == nil || !b.UW || b.UIDValidity != 1602669600 || b.LastUID != 12 || strings.Join(b.Keywords, " ") != "$Forwarded Junk" {
		t.Errorf("IMAPBase = %+v", b)
	}
	checkRoundTrip(t, []byte(in))
}

// TestBufferEdges puts boundaries and quoted lines on every side of the reader's buffer edges by
// growing a filler in front of them.
func TestBufferEdges(t *testing.T) {
	t.Parallel()
	const buf = 1 << 20
	tail := "\n" + f2 + "Content-Length: 1\n\n\n\n" + f3 + "\n>From q\n>Fr\n\n" + f1 + "\nlast"
	for _, delta := range []int{-40, -12, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 8} {
		head := f1 + "\n"
		filler := strings.Repeat("y", buf-len(head)+delta-1) + "\n"
		in := head + filler + tail
		msgs := checkRoundTrip(t, []byte(in))
		if len(msgs) != 4 {
			t.Fatalf("delta %d: %d messages, want 4", delta, len(msgs))
		}
		if string(msgs[1].body) != "\n" || !msgs[1].UsedContentLength() {
			t.Errorf("delta %d: message 1 body %q", delta, msgs[1].body)
		}
		un, _, err := readAll([]byte(in), mbox.Options{Unescape: mbox.UnescapeMboxrd})
		if err != nil {
			t.Fatal(err)
		}
		if string(un[2].body) != "From q\n>Fr\n" {
			t.Errorf("delta %d: unescaped body %q", delta, un[2].body)
		}
	}
}

// TestSmallReads reads bodies a byte at a time, which must give what one large read gives.
func TestSmallReads(t *testing.T) {
	t.Parallel()
	in := f1 + "S: a\n\n>From a\nx\n>>From b\n\n" + f2 + "\n>From c\n"
	for _, u := range []mbox.Unescape{mbox.UnescapeNone, mbox.UnescapeMboxrd, mbox.UnescapeMboxo} {
		whole, _, err := readAll([]byte(in), mbox.Options{Unescape: u})
		if err != nil {
			t.Fatal(err)
		}
		r := mbox.NewReader(strings.NewReader(in), int64(len(in)), mbox.Options{Unescape: u})
		for i := 0; ; i++ {
			m, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			p := make([]byte, 1)
			for {
				n, err := m.Body.Read(p)
				got.Write(p[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got.String() != string(whole[i].body) {
				t.Errorf("unescape %d message %d: byte reads %q, whole read %q", u, i, got.String(), whole[i].body)
			}
		}
	}
}

// A reader started in the middle of a file read in loose mode splits the rest as the reading
// from the start did only when it is told that mode: on its own it decides strict mode from
// the dated From_ line it starts at, and a one-word "From " line in a body stays body text.
func TestResumeLoose(t *testing.T) {
	t.Parallel()
	data := []byte("From 1844@xxx\nSubject: a\n\nA\n\n" +
		"From b@example.org Mon Jan  2 15:04:05 2006\nSubject: b\n\nB\n\nFrom 999@xxx\nSubject: c\n\nC\n\n" +
		"From 1844@xxx\nSubject: d\n\nD\n")
	tests := []struct {
		name string
		opts func(r *mbox.Reader) mbox.Options
		want int
	}{
		{"mode given", func(r *mbox.Reader) mbox.Options {
			return mbox.Options{Loose: r.Loose(), LooseFrom: r.LooseFrom()}
		}, 3},
		{"mode decided afresh", func(*mbox.Reader) mbox.Options { return mbox.Options{} }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := mbox.NewReader(bytes.NewReader(data), int64(len(data)), mbox.Options{})
			var offsets []int64
			for {
				m, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				offsets = append(offsets, m.Offset)
			}
			if len(offsets) != 4 || !r.Loose() || string(r.LooseFrom()) != "From 1844@xxx" {
				t.Fatalf("whole file: %d messages, loose %v, first line %q", len(offsets), r.Loose(), r.LooseFrom())
			}
			msgs, _, err := readAll(data[offsets[1]:], tc.opts(r))
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != tc.want {
				t.Fatalf("from message 2: %d messages, want %d", len(msgs), tc.want)
			}
		})
	}
}

// TestCount counts messages as Reader finds them: the pseudo-message Dovecot writes into an
// empty mailbox is none, a body line beginning "From " without a From_ line's form splits
// nothing.
func TestCount(t *testing.T) {
	pseudo := "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1 0000000002\n\nThis text is part of the internal format of your mail folder.\n\n"
	two := "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nFrom the desk\n\nFrom b@example.org Tue Jan  2 10:00:00 2024\nSubject: two\n\nx\n\n"
	for _, tc := range []struct {
		text string
		want int64
	}{{"", 0}, {pseudo, 0}, {two, 2}, {pseudo + two, 2}} {
		n, err := mbox.Count(strings.NewReader(tc.text), int64(len(tc.text)), mbox.Options{})
		if err != nil || n != tc.want {
			t.Errorf("Count(%q) = %d, %v; want %d", tc.text, n, err, tc.want)
		}
	}
}
