package migrate

import (
	"io"
	"sync"
	"time"
)

// Progress for root's watchdog (package worker): the only progress it sees is the work a
// worker reports, bytes of messages read or stored, in msgWork lines (and msgProgress, which
// reports source bytes for the bar). Everything in a worker that reads messages, the source or
// the Maildir's files, reads through a workMeter; check's work in a home counts each entry it
// looks at and each byte of dovecot-uidlist it reads (check.Home.Work) into one.

// workEvery is how often a worker reports the work it is doing: far more often than any stall
// timeout, so a slow worker on a slow disk is never taken for a stuck one.
const workEvery = 100 * time.Millisecond

// workMeter counts the bytes of messages a worker reads and reports them to root, the first
// as soon as there are any, then at most once per workEvery. A nil *workMeter counts nothing.
// A conversion's reading goroutine and its writing one count through the same meter.
type workMeter struct {
	emit    func(workerMsg)
	mu      sync.Mutex
	pending int64
	last    time.Time
}

func newWorkMeter(emit func(workerMsg)) *workMeter { return &workMeter{emit: emit} }

// add counts n bytes read or stored.
func (m *workMeter) add(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending += int64(n)
	if now := time.Now(); now.Sub(m.last) >= workEvery {
		m.emit(workerMsg{T: msgWork, N: m.pending})
		m.pending, m.last = 0, now
	}
}

// readerAt returns r, counting what is read through it.
func (m *workMeter) readerAt(r io.ReaderAt) io.ReaderAt {
	if m == nil {
		return r
	}
	return meteredReaderAt{r, m}
}

// reader returns r, counting what is read through it.
func (m *workMeter) reader(r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return meteredReader{r, m}
}

type meteredReaderAt struct {
	r io.ReaderAt
	m *workMeter
}

func (r meteredReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	r.m.add(n)
	return n, err
}

type meteredReader struct {
	r io.Reader
	m *workMeter
}

func (r meteredReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.add(n)
	return n, err
}

// Work is how many bytes of messages the line reports read or stored since the line before;
// root's watchdog counts nothing else as progress.
func (m workerMsg) Work() int64 {
	if m.T == msgWork || m.T == msgProgress {
		return m.N
	}
	return 0
}
