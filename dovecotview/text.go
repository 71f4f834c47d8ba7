package dovecotview

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// textKey names one message: its mailbox's GUID and its UID.
type textKey struct {
	guid string
	uid  uint32
}

// errTextOrder is returned by readTexts when doveadm's output does not hold the messages
// expected, in the order expected.
var errTextOrder = errors.New("the messages' texts are not the messages listed")

// MaxHashed is the largest message text readTexts hashes. A larger one fails its user: the
// size is the user's to choose (a sparse file of a terabyte costs them nothing), and the
// recording must neither hold nor read it.
const MaxHashed = 1 << 30

// errTooLarge is wrapped by readTexts's error for a text above MaxHashed.
var errTooLarge = errors.New("more than record --hash reads of one message")

// readTexts reads the output of
//
//	doveadm -f pager fetch "mailbox-guid uid size.physical text" all
//
// and calls fn with the hash of each message's text (sumCRLF), exactly as doveadm gave it.
// The pager formatter prints each field as "name: value\n", but the text raw, without
// escaping and without an end mark, and "\f\n" before every message but the first. JSON would
// be unambiguous, but doveadm replaces bytes that are not UTF-8 there with U+FFFD, and a hash
// of that would prove nothing about them.
//
// So a text ends where the next message's fields begin, and the order of the messages is
// known (want, from an earlier fetch): the text of message i ends before
// "\f\nmailbox-guid: G\nuid: U\n" of message i+1, or at the end of the output for the last.
// size.physical is where that mark normally is; Dovecot counts one byte short for an mbox
// whose last message lacks its final newline, and then the mark is searched for. Texts are
// hashed as they stream by, a few hundred KiB at a time, and one above limit bytes (by its
// size.physical, or as it streams) is an error wrapping errTooLarge.
func readTexts(rd io.Reader, want []textKey, limit int64, fn func(k textKey, sum string)) error {
	r := bufio.NewReaderSize(rd, 256<<10)
	if len(want) == 0 {
		if _, err := r.Peek(1); err == nil {
			return fmt.Errorf("%w: output where no message was expected", errTextOrder)
		}
		return nil
	}
	fields := func(k textKey) string {
		return "mailbox-guid: " + k.guid + "\nuid: " + strconv.FormatUint(uint64(k.uid), 10) + "\n"
	}
	for i, k := range want {
		head := fields(k) + "size.physical: "
		if i > 0 {
			head = "\f\n" + head
		}
		if err := expect(r, head); err != nil {
			return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%w: message %d (uid %d): size: %v", errTextOrder, i+1, k.uid, err)
		}
		size, err := strconv.ParseInt(line[:len(line)-1], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: message %d (uid %d): size %q", errTextOrder, i+1, k.uid, line)
		}
		if size > limit {
			return fmt.Errorf("message %d (uid %d): %d bytes, %w (%d)", i+1, k.uid, size, errTooLarge, limit)
		}
		if err := expect(r, "text:\n"); err != nil {
			return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
		}
		h := &crlfHash{Hash: sha256.New(), limit: limit}
		if i == len(want)-1 {
			err = readLast(r, size, h)
		} else {
			r, err = readUntil(r, size, "\f\n"+fields(want[i+1]), h)
		}
		if errors.Is(err, errTooLarge) {
			return fmt.Errorf("message %d (uid %d): %w (%d)", i+1, k.uid, err, limit)
		}
		if err != nil {
			return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
		}
		fn(k, h.sum())
	}
	return nil
}

// expect consumes s from r, or fails.
func expect(r *bufio.Reader, s string) error {
	b := make([]byte, len(s))
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("want %q: %v", s, err)
	}
	if string(b) != s {
		return fmt.Errorf("want %q, got %q", s, b)
	}
	return nil
}

// readUntil hashes into h the bytes of r before mark, and returns the reader to go on with,
// where mark is next. The mark is looked for at size first; when it is not there, a text
// whose size is small enough to hold is searched from its start, and then what follows is
// searched as it streams.
func readUntil(r *bufio.Reader, size int64, mark string, h *crlfHash) (*bufio.Reader, error) {
	if size > maxHeld {
		if _, err := io.CopyN(h, r, size); err != nil {
			return r, err
		}
		return r, streamUntil(r, mark, h)
	}
	text := make([]byte, size)
	if _, err := io.ReadFull(r, text); err != nil {
		return r, err
	}
	if peek, err := r.Peek(len(mark)); err == nil && string(peek) == mark {
		_, err := h.Write(text)
		return r, err
	}
	if i := bytes.Index(text, []byte(mark)); i >= 0 {
		// What was read past the text is read again, before the rest of r.
		if _, err := h.Write(text[:i]); err != nil {
			return r, err
		}
		rest := bytes.NewReader(append([]byte(nil), text[i:]...))
		return bufio.NewReaderSize(io.MultiReader(rest, r), 256<<10), nil
	}
	// The mark may begin in the text's last bytes: those are searched again with what follows.
	keep := min(len(text), len(mark)-1)
	if _, err := h.Write(text[:len(text)-keep]); err != nil {
		return r, err
	}
	r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(append([]byte(nil), text[len(text)-keep:]...)), r), 256<<10)
	return r, streamUntil(r, mark, h)
}

// maxHeld is the largest text readUntil holds in memory to search it from its start.
const maxHeld = 16 << 20

// streamUntil hashes into h what r holds before mark, leaving r at the mark.
func streamUntil(r *bufio.Reader, mark string, h *crlfHash) error {
	for {
		peek, err := r.Peek(r.Size())
		if i := bytes.Index(peek, []byte(mark)); i >= 0 {
			if _, err := h.Write(peek[:i]); err != nil {
				return err
			}
			_, err := r.Discard(i)
			return err
		}
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				return fmt.Errorf("no %q after the text", mark[2:])
			}
			return err
		}
		n := len(peek) - len(mark) + 1
		if _, err := h.Write(peek[:n]); err != nil {
			return err
		}
		if _, err := r.Discard(n); err != nil {
			return err
		}
	}
}

// readLast hashes into h the last text: the rest of r. What follows its size must not be
// another message's fields (one more message than listed).
func readLast(r *bufio.Reader, size int64, h *crlfHash) error {
	n, err := io.CopyN(h, r, size)
	if err == io.EOF && n < size {
		return nil
	}
	if err != nil {
		return err
	}
	if peek, _ := r.Peek(len("\f\nmailbox-guid: ")); string(peek) == "\f\nmailbox-guid: " {
		return errors.New("more messages than listed")
	}
	_, err = io.Copy(h, r)
	return err
}

// crlfHash hashes what is written to it with every bare LF written as CRLF (sumCRLF), and
// refuses to take more than limit bytes.
type crlfHash struct {
	hash.Hash
	limit, n int64
	lastCR   bool
}

func (c *crlfHash) Write(p []byte) (int, error) {
	if c.n += int64(len(p)); c.n > c.limit {
		return 0, fmt.Errorf("the text is longer: %w", errTooLarge)
	}
	start := 0
	for i, b := range p {
		if b == '\n' && !(i == 0 && c.lastCR || i > 0 && p[i-1] == '\r') {
			c.Hash.Write(p[start:i])
			c.Hash.Write([]byte("\r\n"))
			start = i + 1
		}
	}
	c.Hash.Write(p[start:])
	if len(p) > 0 {
		c.lastCR = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

func (c *crlfHash) sum() string { return hex.EncodeToString(c.Sum(nil)) }

// sumCRLF returns the hex SHA-256 of text with every bare LF written as CRLF, as IMAP clients
// receive a message.
func sumCRLF(text []byte) string {
	h := &crlfHash{Hash: sha256.New(), limit: int64(len(text))}
	h.Write(text)
	return h.sum()
}
