package migrate

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Audit event names.
const (
	EventRunStart   = "run-start"
	EventRunEnd     = "run-end"
	EventUserStart  = "user-start"
	EventUserDone   = "user-done"
	EventUserSkip   = "user-skipped"
	EventUserFailed = "user-failed"
	EventNotice     = "notice"
	EventMessage    = "message"
	EventAfter      = "source-after"
)

// Audit is an append-only JSON Lines log: one object per event with time, run and event first.
// Writes are single write(2) calls on an O_APPEND file, so concurrent runs do not interleave
// inside a line. After a failed write every later Log fails too: the run must stop.
type Audit struct {
	mu  sync.Mutex
	f   *os.File
	run string
	err error
	now func() time.Time
}

// OpenAudit opens (creating it 0600, and its directory 0700) the audit log at path for
// appending. A log that is a symlink or not a regular file is refused.
func OpenAudit(path string) (*Audit, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("migrate: audit log: %w", err)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("migrate: audit log: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("migrate: audit log %s is not a regular file", path)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("migrate: audit log: %w", err)
	}
	return &Audit{f: f, run: newRunID(), now: time.Now}, nil
}

// newRunID is a sortable, unique enough run identifier: UTC start time and 4 random bytes.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run returns this run's identifier.
func (a *Audit) Run() string { return a.run }

// Log appends one event. Keys of fields come after time, run and event: user, uid, src and dst
// first, the others in alphabetical order. Nil values are left out.
func (a *Audit) Log(event string, fields map[string]any) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	put := func(k string, v any) {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		vb, err := json.Marshal(v)
		if err != nil {
			vb, _ = json.Marshal(fmt.Sprint(v))
		}
		buf.Write(vb)
	}
	put("time", a.now().Format(time.RFC3339Nano))
	put("run", a.run)
	put("event", event)
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		if v != nil {
			keys = append(keys, k)
		}
	}
	first := map[string]int{"user": 0, "uid": 1, "src": 2, "dst": 3}
	sort.Slice(keys, func(i, j int) bool {
		ri, oki := first[keys[i]]
		rj, okj := first[keys[j]]
		switch {
		case oki && okj:
			return ri < rj
		case oki != okj:
			return oki
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		v := fields[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		put(k, v)
	}
	buf.WriteString("}\n")
	n, err := a.f.Write(buf.Bytes())
	if err == nil && n != buf.Len() {
		err = errors.New("short write")
	}
	if err != nil {
		a.err = fmt.Errorf("migrate: audit log: %w", err)
		return a.err
	}
	return nil
}

// Close closes the log; it returns the first write error, if any.
func (a *Audit) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cerr := a.f.Close()
	if a.err != nil {
		return a.err
	}
	if cerr != nil {
		return fmt.Errorf("migrate: audit log: %w", cerr)
	}
	return nil
}
