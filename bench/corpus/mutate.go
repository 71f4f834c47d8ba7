package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// mutation counts what mutate did to one file.
type mutation struct {
	messages, expunged, reflagged int
}

func (m mutation) String() string {
	return fmt.Sprintf("messages=%d expunged=%d reflagged=%d", m.messages, m.expunged, m.reflagged)
}

// splitMbox cuts an mbox into its messages, each from its From_ line up to and including
// the blank line that separates it from the next. A message starts at a line beginning
// "From " at the start of the file or after a blank line, which is where the corpus's
// messages start and nowhere else.
func splitMbox(b []byte) ([][]byte, error) {
	if len(b) > 0 && !bytes.HasPrefix(b, []byte("From ")) {
		return nil, fmt.Errorf("not an mbox: it does not start with a From_ line")
	}
	var msgs [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\nFrom "))
		if i < 0 {
			msgs = append(msgs, b)
			break
		}
		msgs = append(msgs, b[:i+2])
		b = b[i+2:]
	}
	return msgs, nil
}

// mutate expunges and reflags the messages of the mbox at path in place (see the package
// comment). The random choices are drawn from seed and the file's base name.
func mutate(path string, expunge, reflag float64, seed uint64) (mutation, error) {
	var m mutation
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	msgs, err := splitMbox(b)
	if err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	h := fnv.New64a()
	h.Write([]byte(filepath.Base(path)))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	out := make([]byte, 0, len(b))
	for _, msg := range msgs {
		m.messages++
		switch x := r.Float64(); {
		case x < expunge:
			m.expunged++
			continue
		case x < expunge+reflag:
			m.reflagged++
			msg = reflagged(msg, m.reflagged%2 == 1)
		}
		out = append(out, msg...)
	}
	// Rewritten in place, as Dovecot rewrites an mbox: same inode, owner and mode.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return m, err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return m, err
	}
	return m, f.Close()
}

// reflagged returns msg with Seen toggled in its Status header and, when flag is set,
// Flagged toggled in its X-Status header. The headers are rewritten in place, or added at
// the end of the header when missing; an empty X-Status is left out.
func reflagged(msg []byte, flag bool) []byte {
	header, body := msg, []byte(nil)
	if end := bytes.Index(msg, []byte("\n\n")); end >= 0 {
		header, body = msg[:end+1], msg[end+1:]
	}
	var lines [][]byte
	var status, xstatus []byte
	statusAt, xstatusAt := -1, -1
	for i, l := range bytes.SplitAfter(header, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		switch {
		case i > 0 && bytes.HasPrefix(l, []byte("Status: ")):
			status, statusAt = bytes.TrimSpace(l[len("Status: "):]), len(lines)
		case i > 0 && bytes.HasPrefix(l, []byte("X-Status: ")):
			xstatus, xstatusAt = bytes.TrimSpace(l[len("X-Status: "):]), len(lines)
		}
		lines = append(lines, l)
	}
	seen := !bytes.ContainsRune(status, 'R')
	flagged := bytes.ContainsRune(xstatus, 'F') != flag
	answered := bytes.ContainsRune(xstatus, 'A')

	newStatus := []byte("Status: O\n")
	if seen {
		newStatus = []byte("Status: RO\n")
	}
	var xs []byte
	if answered {
		xs = append(xs, 'A')
	}
	if flagged {
		xs = append(xs, 'F')
	}
	var newX []byte
	if len(xs) > 0 {
		newX = append(append([]byte("X-Status: "), xs...), '\n')
	}
	var out []byte
	for i, l := range lines {
		switch i {
		case statusAt:
			out = append(out, newStatus...)
		case xstatusAt:
			out = append(out, newX...)
		default:
			out = append(out, l...)
		}
	}
	if statusAt < 0 {
		out = append(out, newStatus...)
	}
	if xstatusAt < 0 {
		out = append(out, newX...)
	}
	return append(out, body...)
}
