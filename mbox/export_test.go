package mbox

import "io"

// NewReaderSize is NewReader with a buffer of n bytes, so that tests reach the buffer's edges
// with small inputs.
func NewReaderSize(src io.ReaderAt, size int64, opts Options, n int) *Reader {
	r := NewReader(src, size, opts)
	r.buf = make([]byte, n)
	return r
}

// DovecotFromLine is dovecotFromLine, for the tests that hold it to Dovecot.
var DovecotFromLine = dovecotFromLine
