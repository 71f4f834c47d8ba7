package dovecotview

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// readTexts reads the output of
//
//	doveadm -f pager fetch "mailbox-guid uid size.physical text" all
//
// and calls fn with each message's text, exactly as doveadm gave it. The pager formatter
// prints each field as "name: value\n", but the text raw, without escaping and without an end
// mark, and "\f\n" before every message but the first. JSON would be unambiguous, but doveadm
// replaces bytes that are not UTF-8 there with U+FFFD, and a hash of that would prove
// nothing about them.
//
// So a text ends where the next message's fields begin, and the order of the messages is
// known (want, from an earlier fetch): the text of message i ends before
// "\f\nmailbox-guid: G\nuid: U\n" of message i+1, or at the end of the output for the last.
// size.physical is where that mark normally is; Dovecot counts one byte short for an mbox
// whose last message lacks its final newline, and then the mark is searched for.
func readTexts(rd io.Reader, want []textKey, fn func(textKey, []byte)) error {
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
		if err := expect(r, "text:\n"); err != nil {
			return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
		}
		var text []byte
		if i == len(want)-1 {
			if text, err = readLast(r, size); err != nil {
				return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
			}
		} else if text, r, err = readUntil(r, size, "\f\n"+fields(want[i+1])); err != nil {
			return fmt.Errorf("%w: message %d (uid %d): %v", errTextOrder, i+1, k.uid, err)
		}
		fn(k, text)
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

// readUntil returns the bytes of r before mark, and the reader to go on with, where mark is
// next. The mark is looked for at size first.
func readUntil(r *bufio.Reader, size int64, mark string) ([]byte, *bufio.Reader, error) {
	text := make([]byte, size)
	if _, err := io.ReadFull(r, text); err != nil {
		return nil, r, err
	}
	if peek, err := r.Peek(len(mark)); err == nil && string(peek) == mark {
		return text, r, nil
	}
	// The size was wrong: search the text and what follows for the mark.
	buf, from := text, 0
	for {
		if i := bytes.Index(buf[from:], []byte(mark)); i >= 0 {
			i += from
			// What was read past the text is read again, before the rest of r.
			rest := bytes.NewReader(append([]byte(nil), buf[i:]...))
			return buf[:i], bufio.NewReaderSize(io.MultiReader(rest, r), 256<<10), nil
		}
		from = max(0, len(buf)-len(mark)+1)
		chunk := make([]byte, 64<<10)
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err == io.EOF && n == 0 {
			return nil, r, fmt.Errorf("no %q after the text", mark[2:])
		}
		if err != nil && err != io.EOF {
			return nil, r, err
		}
	}
}

// readLast returns the last text: the rest of r. What follows its size must not be another
// message's fields (one more message than listed).
func readLast(r *bufio.Reader, size int64) ([]byte, error) {
	text, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if int64(len(text)) > size && bytes.HasPrefix(text[size:], []byte("\f\nmailbox-guid: ")) {
		return nil, errors.New("more messages than listed")
	}
	return text, nil
}

// sumCRLF returns the hex SHA-256 of text with every bare LF written as CRLF, as IMAP clients
// receive a message.
func sumCRLF(text []byte) string {
	h := sha256.New()
	start := 0
	for i, c := range text {
		if c == '\n' && (i == 0 || text[i-1] != '\r') {
			h.Write(text[start:i])
			h.Write([]byte("\r\n"))
			start = i + 1
		}
	}
	h.Write(text[start:])
	return hex.EncodeToString(h.Sum(nil))
}
