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
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
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

// EventAuditFixed is the notice kind OpenAudit logs when it corrected the log's mode.
const EventAuditFixed = "audit-log-mode-fixed"

// OpenAudit opens (creating it 0600, and its directory 0700) the audit log at path for
// appending. It is OpenAuditUnder with no root.
func OpenAudit(path string) (*Audit, error) {
	return OpenAuditUnder("", path)
}

// OpenAuditUnder opens the audit log at path resolved beneath root (a mounted system's "/":
// an absolute symlink in it stays inside it), creating missing directories 0700 and the log
// 0600. An existing log must be a regular file, not a symlink, owned by us (root), with one
// link; a mode other than 0600 is corrected and said so in the log and by Notices.
func OpenAuditUnder(root, path string) (*Audit, error) {
	if root == "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	dir, name := filepath.Split(filepath.Clean(path))
	if !filepath.IsAbs(path) || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("migrate: audit log %q: want an absolute file path", path)
	}
	dirfd, _, err := mkdirUnder(root, dir, false)
	if err != nil {
		return nil, fmt.Errorf("migrate: audit log: %w", err)
	}
	defer unix.Close(dirfd)
	shown := filepath.Join(root, path)
	// Read as well as write: the last byte says whether a line was cut short.
	fd, err := unix.Openat(dirfd, name, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("migrate: audit log %s is a symlink", shown)
		}
		return nil, fmt.Errorf("migrate: audit log: %w", &os.PathError{Op: "open", Path: shown, Err: err})
	}
	f := os.NewFile(uintptr(fd), shown)
	var notices []string
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
		err = fmt.Errorf("migrate: audit log: %w", &os.PathError{Op: "fstat", Path: shown, Err: err})
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("migrate: audit log %s is not a regular file", shown)
	case int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("migrate: audit log %s is owned by uid %d, not %d", shown, st.Uid, os.Geteuid())
	case st.Nlink != 1:
		err = fmt.Errorf("migrate: audit log %s has %d links", shown, st.Nlink)
	case st.Mode&0o7777 != 0o600:
		if err = unix.Fchmod(fd, 0o600); err == nil {
			notices = append(notices, fmt.Sprintf("audit log %s had mode %04o, set to 0600", shown, st.Mode&0o7777))
		} else {
			err = fmt.Errorf("migrate: audit log %s: %w", shown, err)
		}
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	cut := false
	if err == nil && st.Size > 0 {
		var last [1]byte
		if _, rerr := unix.Pread(fd, last[:], st.Size-1); rerr != nil {
			err = fmt.Errorf("migrate: audit log: %w", &os.PathError{Op: "read", Path: shown, Err: rerr})
		}
		cut = last[0] != '\n'
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	a := &Audit{f: f, run: newRunID(), now: time.Now, notices: notices, cut: cut}
	for _, n := range notices {
		if err := a.Log(EventNotice, map[string]any{"kind": EventAuditFixed, "detail": n}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return a, nil
}

// Notices says what OpenAuditUnder corrected, for the console.
func (a *Audit) Notices() []string { return a.notices }

// MkdirUnder makes sure the directory dir exists beneath root, owned by us (root) and open to
// nobody else (0700: a wider mode is narrowed), as OpenAuditUnder does for the audit log's
// directory, and returns its path. notice says
// what was corrected, if anything. It is for the state directory.
func MkdirUnder(root, dir string) (path, notice string, err error) {
	fd, notice, err := mkdirUnder(root, dir, true)
	if err != nil {
		return "", "", fmt.Errorf("migrate: state directory: %w", err)
	}
	unix.Close(fd)
	if root == "" {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	return filepath.Join(root, dir), notice, nil
}

// resolveUnder is how every level is looked up beneath root: an absolute symlink is taken
// relative to root and ".." stops at it, as when that system runs; magic links are refused.
const resolveUnder = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// mkdirUnder opens the directory dir beneath root ("" is "/"), making each missing level 0700,
// and returns its fd. With private, the last level must be ours and open to nobody else: a
// group or other bit is cleared, and notice says so. (An audit log's directory may be a shared
// one such as /var/log: the log file itself is checked instead.)
func mkdirUnder(root, dir string, private bool) (int, string, error) {
	if root == "" {
		root = "/"
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootfd)
	shown := filepath.Join(root, dir)
	rel := strings.TrimPrefix(filepath.Clean("/"+dir), "/")
	fd, err := dupCloexec(rootfd)
	if err != nil {
		return -1, "", err
	}
	prefix := ""
	for level := range strings.SplitSeq(rel, "/") {
		if level == "" {
			continue
		}
		prefix = filepath.Join(prefix, level)
		how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveUnder}
		next, err := unix.Openat2(rootfd, prefix, how)
		if errors.Is(err, unix.ENOENT) {
			// Made through the directory just opened, so a symlink at this name is not
			// followed: mkdirat fails on it.
			if err = unix.Mkdirat(fd, level, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat2(rootfd, prefix, how)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", &os.PathError{Op: "open", Path: filepath.Join(root, prefix), Err: err}
		}
		fd = next
	}
	if !private {
		return fd, "", nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, "", &os.PathError{Op: "fstat", Path: shown, Err: err}
	}
	if int(st.Uid) != os.Geteuid() {
		unix.Close(fd)
		return -1, "", fmt.Errorf("%s is owned by uid %d, not %d", shown, st.Uid, os.Geteuid())
	}
	var notice string
	if mode := st.Mode & 0o7700; mode != st.Mode&0o7777 {
		if err := unix.Fchmod(fd, mode); err != nil {
			unix.Close(fd)
			return -1, "", &os.PathError{Op: "chmod", Path: shown, Err: err}
		}
		notice = fmt.Sprintf("%s had mode %04o, set to %04o", shown, st.Mode&0o7777, mode)
	}
	return fd, notice, nil
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
	n, err := fault.Audit.On(a.f, "write").N(a.f.Write(buf.Bytes()))
	if err == nil && n != buf.Len() {
		err = errors.New("short write")
	}
	if err != nil {
		a.err = fmt.Errorf("migrate: audit log: %w", err)
		return a.err
	}
	a.cut = false
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

// EventStateDirFixed is the notice kind Run logs when it narrowed the state directory's mode.
const EventStateDirFixed = "state-dir-mode-fixed"
