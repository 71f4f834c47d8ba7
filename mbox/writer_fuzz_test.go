package mbox_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
)

// FuzzWriter checks that for any message bytes, written between two other messages and
// read back with Reader, the message comes back byte for byte with its UID, flags, keywords
// and date; or that Add refused it (ErrNotExact) for one of the reasons writer.go gives,
// found here from the bytes themselves, and then wrote nothing of it.
func FuzzWriter(f *testing.F) {
	for _, m := range edgeMails() {
		f.Add([]byte(m.text), uint8(m.flags), int64(1e9))
	}
	for _, data := range fixtures(f) {
		msgs, _, err := readAll(data, mbox.Options{})
		if err != nil {
			continue
		}
		for _, m := range msgs {
			f.Add(append(append([]byte(nil), m.Header...), m.body...), uint8(m.Meta.Flags()), m.Date.Unix())
		}
	}
	f.Add([]byte("Subject: x\r"), uint8(0), int64(0))
	f.Add([]byte("From x\n"), uint8(0), int64(-1e10))
	f.Fuzz(func(t *testing.T, text []byte, flags uint8, secs int64) {
		date := time.Unix(secs%(1e11), 0)
		opts := mbox.WriterOptions{Location: newYork, UIDValidity: 99, NextUID: 10, Keywords: []string{"a", "b"}}
		around := []mail{
			{text: "Subject: before\n\nFrom before\n", uid: 1, date: time.Unix(1e9, 0)},
			{text: string(text), uid: 5, flags: mbox.Flags(flags) & (mbox.Old<<1 - 1), keywords: []string{"b"}, date: date},
			{text: "Subject: after\n\n>From after", uid: 9, date: time.Unix(1e9, 0)},
		}
		var out bytes.Buffer
		w, err := mbox.NewWriter(&out, opts)
		if err != nil {
			t.Fatal(err)
		}
		var written []mail
		for _, m := range around {
			before := out.Len()
			err := w.Add(m.toMail())
			if err == nil {
				written = append(written, m)
				continue
			}
			if m.uid != 5 || !errors.Is(err, mbox.ErrNotExact) {
				t.Fatalf("UID %d: %v", m.uid, err)
			}
			if why := refusal(text, date); why == "" {
				t.Fatalf("refused %q: %v", text, err)
			}
			if out.Len() != before {
				t.Fatalf("refused, but %d bytes written", out.Len()-before)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if len(written) == 3 {
			if why := refusal(text, date); why != "" {
				t.Fatalf("accepted %q, which %s", text, why)
			}
		}
		checkReadBack(t, out.Bytes(), opts, written)
	})
}

// rest0 returns text from the start of line, the line that rest follows, to its end.
func rest0(text, line, rest []byte) []byte {
	return text[len(text)-len(rest)-len(line):]
}

// refusal says why the Writer must refuse text at date, "" when it must not.
func refusal(text []byte, date time.Time) string {
	if y := date.In(newYork).Year(); y < 1 || y > 9999 {
		return "has no four-digit year"
	}
	if len(text) > 0 && text[len(text)-1] == '\r' {
		return "ends in a carriage return"
	}
	body := false
	for rest := text; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if string(line) == "\n" || string(line) == "\r\n" {
			body = true
			break
		}
		if bytes.HasPrefix(line, []byte("From ")) {
			if _, _, ok := mbox.ParseFromLine(line, time.UTC); ok || mbox.DovecotFromLine(rest0(text, line, rest)) {
				return "has a From_ line in its header"
			}
		}
		if name, _, ok := strings.Cut(string(line), ":"); ok && line[0] != ' ' && line[0] != '\t' {
			switch strings.ToLower(strings.TrimRight(name, " \t")) {
			case "status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length":
				return "has an internal header"
			}
		}
	}
	if !body && len(text) > 0 && text[len(text)-1] != '\n' {
		return "has no body and no final line end"
	}
	return ""
}
