package migrate

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"io"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/maildir"
	"github.com/maildirmig/maildirmig/mbox"
)

// A conversion reads its mbox on a goroutine of its own: it parses each message, reads a
// small one whole, hashes its source bytes and prepares the bytes to store (maildir.Prepare),
// while the converter's goroutine writes the files. The two run on two cores, and the
// writing, which is system calls, no longer waits for the reading, which is mostly not.
//
// Messages go over in chunks, so that the two goroutines wake each other once a chunk rather
// than once a message: a chunk ends after readChunkItems messages, or when its arena, which
// holds their bytes, has less than readAheadMax left. A message larger than readAheadMax is
// handed over with what was read of it, at the end of its chunk, and the reading goroutine
// waits until the converter has streamed the rest. Memory stays bounded by readChunks arenas.
const (
	readAheadMax   = 256 << 10
	readChunkBytes = 1 << 20
	readChunkItems = 64
	readChunks     = 3
)

// readChunk is messages read ahead, with the arena their bytes are in.
type readChunk struct {
	items []readItem
	arena []byte
}

// readItem is one message read ahead.
type readItem struct {
	m   *mbox.Message
	err error // Next's (io.EOF after the last message), or the body's read error

	// whole is set when the message was read whole: content holds the bytes to store (the
	// header, stripped unless KeepHeaders, then the body) and sum the SHA-256 of the source
	// bytes (the header as stored and the body as read).
	whole   bool
	content maildir.Prepared
	sum     [sha256.Size]byte

	// A message not read whole: prefix holds the bytes to store read so far, src has hashed
	// the source bytes read so far, and the converter streams the rest of m.Body, then
	// closes streamed to let the reading go on.
	prefix   []byte
	src      hash.Hash
	streamed chan struct{}

	end       int64   // the reader's offset after the message (after what was read of it)
	notices   []Event // the reader's notices met while reading it
	loose     bool    // the reader's Loose and LooseFrom then
	looseFrom []byte
}

// readAhead runs the reading goroutine: it sends chunks of messages on out, the last ending
// with an item of Next's error (io.EOF at the end), until stop is closed. It takes the chunks
// to fill from free.
func (c *converter) readAhead(out, free chan *readChunk, stop <-chan struct{}) {
	src := sha256.New()
	var ch *readChunk
	for {
		if ch == nil {
			select {
			case ch = <-free:
			case <-stop:
				return
			}
			ch.items, ch.arena = ch.items[:0], ch.arena[:0]
			if ch.arena == nil {
				ch.arena = make([]byte, 0, readChunkBytes+readAheadMax)
			}
		}
		m, err := c.r.Next()
		fault.Read.Hit()
		ch.items = append(ch.items, readItem{m: m, err: err})
		it := &ch.items[len(ch.items)-1]
		if err == nil {
			c.readMessage(it, ch, src)
			if it.src == src {
				src = sha256.New() // handed over with a streamed message
			}
		}
		it.end = c.r.Offset()
		it.loose, it.looseFrom = c.r.Loose(), c.r.LooseFrom()
		it.notices, c.readNotices = c.readNotices, nil
		last, streamed := it.err != nil, it.streamed
		if last || streamed != nil || len(ch.items) == readChunkItems || cap(ch.arena)-len(ch.arena) < readAheadMax {
			select {
			case out <- ch:
				ch = nil
			case <-stop:
				return
			}
		}
		if last {
			return
		}
		if streamed != nil {
			select {
			case <-streamed:
			case <-stop:
				return
			}
		}
	}
}

// readMessage reads m's body into the chunk's arena, up to readAheadMax bytes of content,
// and hashes what it read. The arena has room for that much.
func (c *converter) readMessage(it *readItem, ch *readChunk, src hash.Hash) {
	m := it.m
	header := m.Header
	if !c.opts.KeepHeaders && !m.Pseudo {
		header = mbox.StripMeta(header)
	}
	src.Reset()
	src.Write(m.Header)
	if len(header) > readAheadMax {
		// A huge header block (up to mbox's limit) is not copied.
		it.prefix, it.src, it.streamed = header, src, make(chan struct{})
		return
	}
	start := len(ch.arena)
	buf := append(ch.arena, header...)
	body, limit := len(buf), start+readAheadMax
	for {
		if len(buf) == limit {
			src.Write(buf[body:])
			ch.arena, it.prefix, it.src, it.streamed = buf, buf[start:], src, make(chan struct{})
			return
		}
		n, err := m.Body.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			ch.arena, it.err = buf, err
			return
		}
	}
	src.Write(buf[body:])
	src.Sum(it.sum[:0])
	ch.arena, it.whole = buf, true
	it.content = maildir.Prepare(buf[start:])
}

// rest is the content of a message not read whole: what was read of it, then the rest of
// its body, hashed into it.src as it is read.
func (it *readItem) rest() io.Reader {
	return io.MultiReader(bytes.NewReader(it.prefix), io.TeeReader(it.m.Body, it.src))
}
