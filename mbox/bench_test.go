package mbox_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	gombox "github.com/emersion/go-mbox"

	"github.com/maildirmig/maildirmig/mbox"
)

// benchMbox generates an mbox of about size bytes: list-style messages of 1 to 40 KiB with
// realistic headers, quoted and unquoted From lines in some bodies.
func benchMbox(size int) []byte {
	var b bytes.Buffer
	line := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again. ", 2)[:72] + "\n"
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "From user%d@example.org  Mon Sep %2d 10:%02d:%02d 2001\n", i, i%28+1, i%60, i%60)
		fmt.Fprintf(&b, "Return-Path: <user%d@example.org>\nReceived: from mx.example.org (mx.example.org [192.0.2.1])\n\tby mail.example.net (Postfix) with ESMTP id %X\n\tfor <bob@example.net>; Mon, 17 Sep 2001 10:00:00 +0200 (CEST)\n", i, i)
		fmt.Fprintf(&b, "Message-ID: <%d@example.org>\nDate: Mon, 17 Sep 2001 10:00:00 +0200\nFrom: User %d <user%d@example.org>\nTo: bob@example.net\nSubject: message number %d\nStatus: RO\nX-UID: %d\n\n", i, i, i, i, i+1)
		lines := 14 + (i*7919)%560
		for j := 0; j < lines; j++ {
			switch {
			case j%97 == 50:
				b.WriteString(">From the archives, quoted\n")
			case j%131 == 70:
				b.WriteString("From the desk of nobody in particular\n")
			case j%23 == 0:
				b.WriteString("\n")
			default:
				b.WriteString(line)
			}
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// benchInput is made on first use, so that tests that measure memory do not carry it.
var benchInput = sync.OnceValue(func() []byte { return benchMbox(32 << 20) })

func BenchmarkRead(b *testing.B) {
	benchData := benchInput()
	for _, u := range []struct {
		name string
		u    mbox.Unescape
	}{{"none", mbox.UnescapeNone}, {"mboxrd", mbox.UnescapeMboxrd}} {
		b.Run(u.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchData)))
			for b.Loop() {
				r := mbox.NewReader(bytes.NewReader(benchData), int64(len(benchData)), mbox.Options{Unescape: u.u})
				n := 0
				for {
					m, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, m.Body); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n < 100 {
					b.Fatalf("%d messages", n)
				}
			}
		})
	}
}

func BenchmarkGoMbox(b *testing.B) {
	benchData := benchInput()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		r := gombox.NewReader(bytes.NewReader(benchData))
		n := 0
		for {
			m, err := r.NextMessage()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, m); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n < 100 {
			b.Fatalf("%d messages", n)
		}
	}
}

// TestBigFile reads the mbox named by MBOX_BIG_FILE, which must give back its own bytes, to
// measure speed and peak memory on real sizes (for example a 1 GB file holding one 200 MB
// message, under /usr/bin/time -v). Without the variable it is skipped.
func TestBigFile(t *testing.T) {
	path := os.Getenv("MBOX_BIG_FILE")
	if path == "" {
		t.Skip("MBOX_BIG_FILE not set")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, f); err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	r := mbox.NewReader(f, st.Size(), mbox.Options{})
	var largest int64
	n := 0
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(m.Lead)
		got.Write(m.FromLine)
		got.Write(m.Header)
		if _, err := io.Copy(got, m.Body); err != nil {
			t.Fatal(err)
		}
		got.Write(m.Separator())
		largest = max(largest, m.Size())
		n++
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("the messages do not give back the file")
	}
	t.Logf("%d messages, largest %d bytes, file %d bytes", n, largest, st.Size())
}
