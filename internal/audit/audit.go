// Package audit writes maildirmig's audit log: JSON Lines, append-only, mode 0600, one
// object per event with time, run and event first, then the fields the event needs (user,
// uid, src and dst first, the others in alphabetical order).
//
// Each line is one write(2) on an O_APPEND file, so runs at the same time never interleave
// inside a line, and a line cut short by a crash or a full disk is ended before the next one
// is written. A failed write fails every later one: the caller must stop, since what it does
// then would not be on record. The log and its directory are root's; an existing log must be
// a regular file of ours with one link, never a symlink, and a wrong mode is corrected and
// said so in the log.
package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/safefs"
)

// Log is an append-only JSON Lines log: one object per event with time, run and event first.
// Writes are single write(2) calls on an O_APPEND file, so concurrent runs do not interleave
// inside a line. After a failed write every later Log fails too: the run must stop.
type Log struct {
	mu      sync.Mutex
	f       *os.File
	run     string
	err     error
	now     func() time.Time
	notices []string
	// cut says the log did not end in a newline when it was opened: a
	// run killed, or out of space, in the middle of a line. The next line
	// starts with a newline, so that each whole line stays a JSON object.
	cut bool
}

// EventAuditFixed is the notice kind Open logs when it corrected the log's mode.
const EventAuditFixed = "audit-log-mode-fixed"

// Open opens (creating it 0600, and its directory 0700) the audit log at path for
// appending. It is OpenUnder with no root.
func Open(path string) (*Log, error) {
	return OpenUnder("", path)
}

// OpenUnder opens the audit log at path resolved beneath root (a mounted system's "/":
// an absolute symlink in it stays inside it), creating missing directories 0700 and the log
// 0600. An existing log must be a regular file, not a symlink, owned by us (root), with one
// link; a mode other than 0600 is corrected and said so in the log and by Notices.
func OpenUnder(root, path string) (*Log, error) {
	if root == "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	dir, name := filepath.Split(filepath.Clean(path))
	if !filepath.IsAbs(path) || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("audit: log %q: want an absolute file path", path)
	}
	dirfd, err := mkdirUnder(root, dir, false)
	if err != nil {
		return nil, fmt.Errorf("audit: log: %w", err)
	}
	defer unix.Close(dirfd)
	shown := filepath.Join(root, path)
	// Read as well as write: the last byte says whether a line was cut short.
	fd, err := unix.Openat(dirfd, name, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("audit: log %s is a symlink", shown)
		}
		return nil, fmt.Errorf("audit: log: %w", &os.PathError{Op: "open", Path: shown, Err: err})
	}
	f := os.NewFile(uintptr(fd), shown)
	var notices []string
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
		err = fmt.Errorf("audit: log: %w", &os.PathError{Op: "fstat", Path: shown, Err: err})
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("audit: log %s is not a regular file", shown)
	case int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("audit: log %s is owned by uid %d, not %d", shown, st.Uid, os.Geteuid())
	case st.Nlink != 1:
		err = fmt.Errorf("audit: log %s has %d links", shown, st.Nlink)
	case st.Mode&0o7777 != 0o600:
		if err = unix.Fchmod(fd, 0o600); err == nil {
			notices = append(notices, fmt.Sprintf("audit log %s had mode %04o, set to 0600", shown, st.Mode&0o7777))
		} else {
			err = fmt.Errorf("audit: log %s: %w", shown, err)
		}
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	cut := false
	if err == nil && st.Size > 0 {
		var last [1]byte
		if _, rerr := unix.Pread(fd, last[:], st.Size-1); rerr != nil {
			err = fmt.Errorf("audit: log: %w", &os.PathError{Op: "read", Path: shown, Err: rerr})
		}
		cut = last[0] != '\n'
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	a := &Log{f: f, run: newRunID(), now: time.Now, notices: notices, cut: cut}
	for _, n := range notices {
		if err := a.Event(EventNotice, map[string]any{"kind": EventAuditFixed, "detail": n}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return a, nil
}

// Notices says what OpenUnder corrected, for the console.
func (a *Log) Notices() []string { return a.notices }

// MkdirUnder makes sure the directory dir exists beneath root, resolved as OpenUnder
// resolves the log's, and returns its path. It is how the migration makes its state
// directory, root's other private directory: a missing one is made 0700; an existing one is
// used only when it is root's own (owned by us) and nobody else can write in it (no group or
// other write bit), and is refused otherwise. Its mode is never changed: a directory such as
// /tmp given by mistake stays as it is.
func MkdirUnder(root, dir string) (string, error) {
	fd, err := mkdirUnder(root, dir, true)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	unix.Close(fd)
	if root == "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	return filepath.Join(root, dir), nil
}

// mkdirUnder opens the directory dir beneath root ("" is "/"), making each missing level 0700,
// and returns its fd. Every level is looked up with safefs.OpenInRoot: an absolute symlink is
// taken relative to root and ".." stops at it, as when that system runs. That is not the
// policy of safefs.Open, and need not be: these are root's own directories of the system under
// --root (/var/log, /var/lib), where a symlink such as /var/log -> /srv/log is the
// administrator's, and nothing a user owns lies on the way. The last level must be ours and
// writable by no other user, or whoever can write there could remove or replace what root
// keeps in it: with private (the state directory), no group or other write bit; else (the
// audit log's directory, which may be a shared one such as /var/log, root:syslog 0775 on
// Ubuntu) no other write bit. A directory that fails is refused, never changed.
func mkdirUnder(root, dir string, private bool) (int, error) {
	if root == "" {
		root = "/"
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootfd)
	shown := filepath.Join(root, dir)
	rel := strings.TrimPrefix(filepath.Clean("/"+dir), "/")
	fd, err := dupCloexec(rootfd)
	if err != nil {
		return -1, err
	}
	prefix := ""
	for level := range strings.SplitSeq(rel, "/") {
		if level == "" {
			continue
		}
		prefix = filepath.Join(prefix, level)
		next, err := safefs.OpenInRoot(rootfd, prefix, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOENT) {
			// Made through the directory just opened, so a symlink at this name is not
			// followed: mkdirat fails on it.
			if err = unix.Mkdirat(fd, level, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = safefs.OpenInRoot(rootfd, prefix, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: filepath.Join(root, prefix), Err: err}
		}
		fd = next
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: shown, Err: err}
	}
	if int(st.Uid) != os.Geteuid() {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is owned by uid %d, not %d", shown, st.Uid, os.Geteuid())
	}
	writers, want := uint32(0o002), "others"
	if private {
		writers, want = 0o022, "its group or others"
	}
	if st.Mode&writers != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("%s has mode %04o: %s can write in it (want a directory only uid %d can write in, such as 0700)",
			shown, st.Mode&0o7777, want, os.Geteuid())
	}
	return fd, nil
}

// newRunID is a sortable, unique enough run identifier: UTC start time and 4 random bytes.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run returns this run's identifier.
func (a *Log) Run() string { return a.run }

// Event appends one event. Keys of fields come after time, run and event: user, uid, src and dst
// first, the others in alphabetical order. Nil values are left out.
func (a *Log) Event(event string, fields map[string]any) error {
	if a == nil {
		return nil
	}
	if strict {
		if err := Registered(event, fields); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	var buf bytes.Buffer
	start := 0
	if a.cut {
		buf.WriteByte('\n')
		start = 1
	}
	buf.WriteByte('{')
	put := func(k string, v any) {
		if buf.Len() > start+1 {
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
	FieldOrder(keys)
	for _, k := range keys {
		v := fields[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		put(k, v)
	}
	buf.WriteString("}\n")
	n, err := fault.Audit.On(a.f, "write").N(a.f.Write(buf.Bytes()))
	if err == nil && n != buf.Len() {
		err = errors.New("short write")
	}
	if err != nil {
		a.err = fmt.Errorf("audit: log: %w", err)
		return a.err
	}
	a.cut = false
	return nil
}

// Close closes the log; it returns the first write error, if any.
func (a *Log) Close() error {
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
		return fmt.Errorf("audit: log: %w", cerr)
	}
	return nil
}

// Sync makes what was logged durable.
func (a *Log) Sync() error {
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("audit: log: %w", err)
	}
	return nil
}

// dupCloexec duplicates fd with close-on-exec set in the same step: a worker started at that
// moment must not inherit it.
func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}
