// Corpus writes the seeded mailboxes bench/bench.sh measures, and changes them as users do:
// the same seed gives the same bytes on every machine, so two runs of the benchmark convert
// the same mail.
//
//	corpus -mbox FILE [-messages 20000] [-seed 1]
//	corpus -users DIR -n 200 -messages 40 [-seed 1]
//	corpus -mutate [-expunge 0.01] [-reflag 0.05] [-seed 1] FILE...
//
// With -mbox it writes one mbox of realistic mail: most messages 2-12 KB of text, about one
// in a hundred multipart with a base64 attachment, one in four thousand of one to three MB; with
// the default 20,000 messages that is about 111 MB. With -users it writes DIR/u0000 ...
// DIR/u<n-1>, each an mbox of -messages messages of the same kind of mail (no MB-sized
// message in a mailbox of fewer than 1,000 messages). Every message carries a Message-ID of
// its own, a From_ line and a Date: header that agree, and a Status header on most; no body
// line starts with "From ", so every tool splits the mbox alike.
//
// With -mutate it changes each FILE in place, as a mail client working through Dovecot
// changes an mbox between two passes of a migration: each message is expunged (removed from
// the file) with probability -expunge, and each other one reflagged with probability -reflag
// (Seen toggled in its Status header, and every other time Flagged in X-Status, the headers
// rewritten where they were or added at the end of the header). The file keeps its inode,
// owner and mode, as Dovecot's rewrite does. The choice depends only on the seed, the file's
// name and its content. It prints a line per file and a total:
// "messages=N expunged=E reflagged=F".
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

// writeMbox writes one mbox of the corpus's mix.
func writeMbox(path string, messages int, seed uint64) error {
	return writeFile(path, seed, func(g *gen) {
		for range messages {
			g.next(true)
		}
	})
}

// writeUsers writes dir/u0000 ... dir/u<n-1>, each an mbox of messages messages of the mix,
// each from a seed of its own.
func writeUsers(dir string, n, messages int, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for u := range n {
		err := writeFile(filepath.Join(dir, fmt.Sprintf("u%04d", u)), seed+uint64(u)*7919, func(g *gen) {
			for range messages {
				g.next(messages >= 1000)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func main() {
	mboxPath := flag.String("mbox", "", "write one mbox to this file")
	messages := flag.Int("messages", 0, "messages in -mbox (default 20000), or in each user's mbox under -users (default 40)")
	usersDir := flag.String("users", "", "write one mbox per user into this directory")
	n := flag.Int("n", 200, "users under -users")
	mutateFiles := flag.Bool("mutate", false, "change the mbox FILEs given as arguments in place")
	expunge := flag.Float64("expunge", 0.01, "with -mutate, the share of messages removed")
	reflag := flag.Float64("reflag", 0.05, "with -mutate, the share of messages whose flags change")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	modes := 0
	for _, on := range []bool{*mboxPath != "", *usersDir != "", *mutateFiles} {
		if on {
			modes++
		}
	}
	if modes != 1 || (*mutateFiles != (flag.NArg() > 0)) {
		fmt.Fprintln(os.Stderr, "corpus: error: give one of -mbox FILE, -users DIR or -mutate FILE...")
		os.Exit(2)
	}
	if *expunge < 0 || *reflag < 0 || *expunge+*reflag > 1 {
		fmt.Fprintln(os.Stderr, "corpus: error: -expunge and -reflag are shares between 0 and 1 that add up to at most 1")
		os.Exit(2)
	}
	var err error
	switch {
	case *mboxPath != "":
		if *messages == 0 {
			*messages = 20000
		}
		err = writeMbox(*mboxPath, *messages, *seed)
	case *usersDir != "":
		if *messages == 0 {
			*messages = 40
		}
		err = writeUsers(*usersDir, *n, *messages, *seed)
	default:
		var total mutation
		for _, f := range flag.Args() {
			var m mutation
			if m, err = mutate(f, *expunge, *reflag, *seed); err != nil {
				break
			}
			fmt.Printf("%s: %s\n", f, m)
			total.messages += m.messages
			total.expunged += m.expunged
			total.reflagged += m.reflagged
		}
		if err == nil {
			fmt.Printf("total: %s\n", total)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "corpus: error:", err)
		os.Exit(1)
	}
}
