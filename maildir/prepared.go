package maildir

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"time"
)

// Prepared is a message's content read whole, with what Add computes of it:
// its SHA-256 and its bare line feeds (for W=). A caller that reads messages
// on one goroutine while Add writes files on another prepares them there
// (Message.Prepared), and Add then only writes.
type Prepared struct {
	b      []byte
	sum    [sha256.Size]byte
	bareLF int64
}

// Prepare measures b, a message's bytes exactly as they must be stored. b
// must not change until Add has written it.
func Prepare(b []byte) Prepared {
	return Prepared{b: b, sum: sha256.Sum256(b), bareLF: bareLFs(b, false)}
}

// bareLFs counts the line feeds of p not preceded by a carriage return;
// afterCR says whether the byte before p was one.
func bareLFs(p []byte, afterCR bool) int64 {
	n := bytes.Count(p, []byte{'\n'}) - bytes.Count(p, []byte("\r\n"))
	if afterCR && len(p) > 0 && p[0] == '\n' {
		n--
	}
	return int64(n)
}

// counter hashes and measures a message as it streams to its file.
type counter struct {
	h      hash.Hash
	sum    [sha256.Size]byte // set by finish
	n      int64
	bareLF int64
	lastCR bool
	mtime  time.Time // Result.MTime of the file
}

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	c.bareLF += bareLFs(p, c.lastCR)
	if len(p) > 0 {
		c.lastCR = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

// finish sets the sum of what was written.
func (c *counter) finish() { c.h.Sum(c.sum[:0]) }
