// Corpus writes the seeded mailboxes bench/bench.sh measures: the same seed gives the same
// bytes on every machine, so two runs of the benchmark convert the same mail.
//
//	go run ./bench/corpus -mbox FILE [-messages 20000] [-seed 1]
//	go run ./bench/corpus -users DIR -n 1000 -bytes 100000 [-seed 1]
//
// With -mbox it writes one mbox of realistic mail: most messages 2-12 KB of text, about one
// in a hundred multipart with a base64 attachment, one in four thousand of one to three MB; with
// the default 20,000 messages that is about 111 MB. With -users it writes DIR/u0000 ...
// DIR/u<n-1>, each an mbox of about -bytes bytes of the same kind of mail (no MB-sized
// message in a mailbox smaller than it). Every message carries a Message-ID of its own, a
// From_ line and a Date: header that agree, and a Status header on most; no body line starts
// with "From ", so every tool splits the mbox alike.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

var words = []string{
	"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
	"by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
	"an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
	"there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "server",
	"mailbox", "migration", "meeting", "report", "invoice", "attached", "please", "thanks",
	"regards", "tomorrow", "schedule", "update", "backup", "disk", "quota", "password",
}

type gen struct {
	r    *rand.Rand
	w    *bufio.Writer
	seq  int
	date time.Time
}

func (g *gen) line(n int) {
	for n > 0 {
		w := words[g.r.IntN(len(words))]
		if n < len(w)+1 {
			break
		}
		g.w.WriteString(w)
		g.w.WriteByte(' ')
		n -= len(w) + 1
	}
	g.w.WriteByte('\n')
}

// text writes about n bytes of text lines.
func (g *gen) text(n int) {
	for n > 0 {
		l := 40 + g.r.IntN(36)
		g.line(l)
		n -= l
	}
}

func (g *gen) base64(n int) {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b [77]byte
	b[76] = '\n'
	for ; n > 0; n -= 77 {
		for i := range 76 {
			b[i] = alpha[g.r.IntN(64)]
		}
		g.w.Write(b[:])
	}
}

// message writes one message of about size bytes.
func (g *gen) message(size int, multipart bool) {
	g.seq++
	g.date = g.date.Add(time.Duration(30+g.r.IntN(3600)) * time.Second)
	d := g.date
	from := fmt.Sprintf("user%d@example.org", g.r.IntN(500))
	fmt.Fprintf(g.w, "From %s %s\n", from, d.Format("Mon Jan _2 15:04:05 2006"))
	fmt.Fprintf(g.w, "Return-Path: <%s>\nReceived: from mx.example.org (mx.example.org [192.0.2.%d])\n\tby mail.example.com (Postfix) with ESMTP id %X\n\tfor <me@example.com>; %s\n",
		from, g.r.IntN(250)+1, g.r.Uint64()>>20, d.Format(time.RFC1123Z))
	fmt.Fprintf(g.w, "Date: %s\nFrom: <%s>\nTo: me@example.com\nSubject: ", d.Format(time.RFC1123Z), from)
	g.line(20 + g.r.IntN(40))
	fmt.Fprintf(g.w, "Message-ID: <%d.%x@bench.example.org>\nMIME-Version: 1.0\n", g.seq, g.r.Uint32())
	switch k := g.r.IntN(10); {
	case k < 6:
		g.w.WriteString("Status: RO\n")
	case k < 7:
		g.w.WriteString("Status: RO\nX-Status: A\n")
	case k < 8:
		g.w.WriteString("Status: O\n")
	}
	if !multipart {
		g.w.WriteString("Content-Type: text/plain; charset=utf-8\n\n")
		g.text(size - 600)
		g.w.WriteByte('\n')
		return
	}
	b := fmt.Sprintf("=-=%x=-=", g.r.Uint64())
	fmt.Fprintf(g.w, "Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n\n--%s\nContent-Type: text/plain; charset=utf-8\n\n", b, b)
	t := 1000 + g.r.IntN(3000)
	g.text(t)
	fmt.Fprintf(g.w, "\n--%s\nContent-Type: application/pdf; name=\"report%d.pdf\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"report%d.pdf\"\n\n", b, g.seq, g.seq)
	g.base64(size - t - 900)
	fmt.Fprintf(g.w, "\n--%s--\n\n", b)
}

// next writes a message drawn from the corpus's mix; big allows the MB-sized ones.
func (g *gen) next(big bool) int {
	switch k := g.r.IntN(4000); {
	case big && k == 0:
		n := 1<<20 + g.r.IntN(2<<20)
		g.message(n, true)
		return n
	case k < 40:
		n := 20<<10 + g.r.IntN(100<<10)
		g.message(n, true)
		return n
	default:
		// Text sizes skewed towards the small end of 2-12 KB, as in real mail.
		u := g.r.Float64()
		n := 2048 + int(u*u*u*9.5*1024)
		g.message(n, false)
		return n
	}
}

func writeFile(path string, seed uint64, f func(g *gen)) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6d61696c)), w: bufio.NewWriterSize(out, 1<<20),
		date: time.Date(2019, 3, 1, 8, 0, 0, 0, time.UTC)}
	f(g)
	if err := g.w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func main() {
	mboxPath := flag.String("mbox", "", "write one mbox to this file")
	messages := flag.Int("messages", 20000, "messages in -mbox")
	usersDir := flag.String("users", "", "write one mbox per user into this directory")
	n := flag.Int("n", 1000, "users under -users")
	bytes := flag.Int("bytes", 100000, "bytes per user's mbox under -users")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if (*mboxPath == "") == (*usersDir == "") {
		fmt.Fprintln(os.Stderr, "corpus: error: give one of -mbox or -users")
		os.Exit(2)
	}
	if *mboxPath != "" {
		err := writeFile(*mboxPath, *seed, func(g *gen) {
			for range *messages {
				g.next(true)
			}
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "corpus: error:", err)
			os.Exit(1)
		}
		return
	}
	if err := os.MkdirAll(*usersDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "corpus: error:", err)
		os.Exit(1)
	}
	for u := range *n {
		err := writeFile(filepath.Join(*usersDir, fmt.Sprintf("u%04d", u)), *seed+uint64(u)*7919, func(g *gen) {
			for total := 0; total < *bytes; {
				total += g.next(*bytes >= 8<<20)
			}
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "corpus: error:", err)
			os.Exit(1)
		}
	}
}
