package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/users"
)

// ErrLockTimeout is wrapped by the error returned when a spool lock could not be taken in time.
var ErrLockTimeout = errors.New("migrate: lock timeout")

// Dotlock timings, as Postfix (stale_lock_time 500s) and Dovecot (mbox_dotlock_change_timeout
// 2 min) treat them, rounded to what SPEC.md promises.
const (
	dotlockStale   = 5 * time.Minute
	dotlockRefresh = 60 * time.Second
	lockPoll       = 100 * time.Millisecond
)

// Dotlock is a held USER.lock file next to a spool. It keeps the directory and the lock file
// open: the lock is refreshed through its descriptor, and removed through the directory's only
// while the name still points at the file this process created.
type Dotlock struct {
	dir  int    // the directory holding the lock
	name string // the lock's name in dir
	path string // for messages
	fd   int    // the lock file we created
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// dotlockMax is the most of a foreign lock file ever read: "pid:host" fits in it, and a lock
// that is a link to a large or endless file is not read further.
const dotlockMax = 64

// TakeDotlock creates path exclusively, with "pid:host" inside as Dovecot writes it, breaking a
// lock that has not changed for five minutes or whose pid is dead on this host. It retries until
// ctx is done or timeout has passed (then the error wraps ErrLockTimeout). While held, the lock's
// mtime is refreshed every minute so that other MTAs do not think it stale. The directory is
// opened once; everything after acts through its descriptor.
func TakeDotlock(ctx context.Context, path string, timeout time.Duration) (*Dotlock, error) {
	dir, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("migrate: dotlock %s: %w", path, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err})
	}
	defer unix.Close(dir)
	return takeDotlock(ctx, dir, filepath.Base(path), path, timeout)
}

// TakeDotlockAt is TakeDotlock for the lock name in the directory dirfd (a worker's home or
// folder directory, opened without following symlinks). dirfd stays the caller's.
func TakeDotlockAt(ctx context.Context, dirfd int, name string, timeout time.Duration) (*Dotlock, error) {
	return takeDotlock(ctx, dirfd, name, name, timeout)
}

func takeDotlock(ctx context.Context, dirfd int, name, path string, timeout time.Duration) (*Dotlock, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("migrate: dotlock %q: not a file name", name)
	}
	host, _ := os.Hostname()
	content := fmt.Sprintf("%d:%s", os.Getpid(), host)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err == nil {
			return holdDotlock(dirfd, fd, name, path, content)
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("migrate: dotlock %s: %w", path, err)
		}
		if breakStaleDotlock(dirfd, name, host) {
			continue
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrLockTimeout) {
				return nil, fmt.Errorf("migrate: dotlock %s held by %s for %s: %w", path, dotlockOwner(dirfd, name), timeout, ErrLockTimeout)
			}
			return nil, err
		}
	}
}

// sleepUntil waits one poll interval, or returns ErrLockTimeout past deadline, or ctx's error.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	if !time.Now().Before(deadline) {
		return ErrLockTimeout
	}
	t := time.NewTimer(min(lockPoll, time.Until(deadline)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// holdDotlock fills in the lock file fd we just created and starts refreshing it.
func holdDotlock(dirfd, fd int, name, path, content string) (*Dotlock, error) {
	l := &Dotlock{dir: -1, name: name, path: path, fd: fd, stop: make(chan struct{})}
	n, err := unix.Write(fd, []byte(content))
	if err == nil && n != len(content) {
		err = errors.New("short write")
	}
	if err == nil {
		l.dir, err = dupCloexec(dirfd)
	}
	if err != nil {
		if l.dir < 0 {
			l.dir = dirfd
		}
		_ = l.unlinkOurs()
		unix.Close(fd)
		return nil, fmt.Errorf("migrate: dotlock %s: %w", path, err)
	}
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

// foreignDotlock is what can safely be learnt about a lock file someone else made.
type foreignDotlock struct {
	st    unix.Stat_t // lstat of the name, never of what a symlink points to
	owner string      // a well-formed "pid:host", or ""
	pid   int
	host  string
}

// readDotlock looks at the lock name in dirfd without following a symlink, without opening
// anything but a regular file, and without blocking: a FIFO or a device is only stat'ed. Of a
// regular file at most dotlockMax bytes are read, and only a well-formed "pid:host" is kept.
func readDotlock(dirfd int, name string) (foreignDotlock, error) {
	var d foreignDotlock
	if err := unix.Fstatat(dirfd, name, &d.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return d, err
	}
	if d.st.Mode&unix.S_IFMT != unix.S_IFREG {
		return d, nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return d, nil
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Dev != d.st.Dev || fst.Ino != d.st.Ino {
		return d, nil
	}
	buf := make([]byte, dotlockMax+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	if n > dotlockMax {
		return d, nil
	}
	d.pid, d.host, d.owner = parseDotlock(string(buf[:n]))
	return d, nil
}

// parseDotlock accepts "pid:host" (a positive decimal pid, a host name of letters, digits, '-',
// '.' and '_'), with an optional final newline, and nothing else.
func parseDotlock(s string) (pid int, host, owner string) {
	s = strings.TrimSuffix(s, "\n")
	pidStr, host, ok := strings.Cut(s, ":")
	if !ok || pidStr == "" || len(pidStr) > 10 || host == "" {
		return 0, "", ""
	}
	for _, c := range pidStr {
		if c < '0' || c > '9' {
			return 0, "", ""
		}
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return 0, "", ""
		}
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, "", ""
	}
	return pid, host, s
}

// dotlockOwner names the holder of a lock for an error message: its "pid:host" when the lock
// is a regular file holding just that, never any other content.
func dotlockOwner(dirfd int, name string) string {
	d, err := readDotlock(dirfd, name)
	switch {
	case err != nil:
		return "another process"
	case d.owner != "":
		return strconv.Quote(d.owner)
	case d.st.Mode&unix.S_IFMT == unix.S_IFREG && d.st.Size == 0:
		return "an empty lock"
	}
	return "an unreadable lock"
}

// breakStaleDotlock removes the lock name in dirfd if it may be broken: unchanged for five
// minutes, or naming a dead pid on this host. The name is removed through the directory, and
// only if it still is the very file judged stale.
func breakStaleDotlock(dirfd int, name, host string) bool {
	d, err := readDotlock(dirfd, name)
	if err != nil {
		return false
	}
	stale := time.Since(time.Unix(d.st.Mtim.Unix())) > dotlockStale ||
		d.owner != "" && d.host == host && errors.Is(unix.Kill(d.pid, 0), unix.ESRCH)
	if !stale {
		return false
	}
	// Dotlocks have no atomic compare-and-remove; the window is narrowed to one fstatat.
	var now unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		now.Dev != d.st.Dev || now.Ino != d.st.Ino || now.Mtim != d.st.Mtim {
		return false
	}
	return unix.Unlinkat(dirfd, name, 0) == nil
}

func (l *Dotlock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(dotlockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = futimensNow(l.fd)
		}
	}
}

// futimensNow sets the mtime and atime of the open file fd to now: futimens(fd, NULL), which
// touches the file we hold whatever its name points at by now.
func futimensNow(fd int) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// unlinkOurs removes the lock's name if it still is the file we created.
func (l *Dotlock) unlinkOurs() error {
	var ours, now unix.Stat_t
	if err := unix.Fstat(l.fd, &ours); err != nil {
		return err
	}
	if err := unix.Fstatat(l.dir, l.name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if now.Dev != ours.Dev || now.Ino != ours.Ino {
		return errDotlockTaken
	}
	return unix.Unlinkat(l.dir, l.name, 0)
}

var errDotlockTaken = errors.New("taken over")

// Release removes the lock file if it is still ours.
func (l *Dotlock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		if uerr := l.unlinkOurs(); uerr != nil {
			if errors.Is(uerr, errDotlockTaken) {
				err = fmt.Errorf("migrate: dotlock %s was taken over by %s", l.path, dotlockOwner(l.dir, l.name))
			} else {
				err = fmt.Errorf("migrate: dotlock %s: %w", l.path, uerr)
			}
		}
		unix.Close(l.fd)
		unix.Close(l.dir)
	})
	return err
}

// LockFile takes an OFD write lock on the whole of f (it conflicts with the classic fcntl locks
// Postfix, Dovecot and procmail take, and is tied to this open file, not to the process), and
// with withFlock an flock too, retrying until timeout or ctx is done. The locks are released when
// f is closed.
func LockFile(ctx context.Context, f *os.File, timeout time.Duration, withFlock bool) error {
	deadline := time.Now().Add(timeout)
	if err := lockOFD(ctx, f, unix.F_WRLCK, deadline, timeout); err != nil {
		return err
	}
	if !withFlock {
		return nil
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			unlockFcntl(f)
			return fmt.Errorf("migrate: flock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			unlockFcntl(f)
			if errors.Is(err, ErrLockTimeout) {
				return fmt.Errorf("migrate: flock %s held for %s: %w", f.Name(), timeout, ErrLockTimeout)
			}
			return err
		}
	}
}

// lockOFD takes an OFD lock of type typ (F_RDLCK or F_WRLCK) on the whole of f, retrying
// until deadline. An OFD lock conflicts with the classic fcntl locks Postfix, Dovecot,
// procmail and mutt take; the error of a timeout names the holder when the kernel says.
func lockOFD(ctx context.Context, f *os.File, typ int16, deadline time.Time, timeout time.Duration) error {
	lk := unix.Flock_t{Type: typ}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("migrate: fcntl lock %s: %w", f.Name(), err)
		}
		if err := sleepUntil(ctx, deadline); err != nil {
			if errors.Is(err, ErrLockTimeout) {
				return fmt.Errorf("migrate: fcntl lock %s held by %s for %s: %w", f.Name(), fcntlHolder(f), timeout, ErrLockTimeout)
			}
			return err
		}
	}
}

func unlockFcntl(f *os.File) {
	lk := unix.Flock_t{Type: unix.F_UNLCK}
	_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// fcntlHolder names the process holding a conflicting classic lock, when the kernel says.
func fcntlHolder(f *os.File) string {
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err == nil && lk.Pid > 0 {
		return fmt.Sprintf("pid %d", lk.Pid)
	}
	return "another process"
}

// dotlockPath is the USER.lock file next to a spool.
func dotlockPath(spool string) string {
	return filepath.Join(filepath.Dir(spool), filepath.Base(spool)+".lock")
}

// RenameSource renames from to to, both in the lock's directory, if from still is the file
// dev/ino (see renameBeside).
func (l *Dotlock) RenameSource(from, to string, dev, ino uint64) error {
	return renameBeside(l.dir, from, to, dev, ino)
}

// sourceLock is the dotlock of a user's source held for a whole migration, and the one way
// --after rename renames the source: beside the lock, through the same directory.
type sourceLock interface {
	Release() error
	RenameSource(from, to string, dev, ino uint64) error
}

// MailboxLockName is the dotlock of ~USER/Mailbox.
const MailboxLockName = "Mailbox.lock"

// lockSource takes the dotlock of the user's source: as root beside a spool, whose directory
// is root's; in a worker as the user for ~USER/Mailbox, whose directory is the user's home
// (root following or reading anything the user planted there is what must not happen).
// ctx is the user's migration's: its end also cuts short the release of a Mailbox lock.
func (r *runner) lockSource(ctx context.Context, u users.User, src, home string) (sourceLock, error) {
	if r.cfg.Source != SourceMailbox {
		return TakeDotlock(ctx, dotlockPath(src), r.cfg.LockTimeout)
	}
	req := &workerRequest{Op: opMailboxLock, Home: home, Owner: owner(u), LockTimeout: r.cfg.LockTimeout}
	cred := Credentials{UID: u.UID, GID: u.GID, Groups: u.Groups}
	if os.Geteuid() != 0 || cred.UID == 0 {
		return lockMailboxHere(ctx, req)
	}
	return spawnMailboxLock(ctx, cred, req)
}

// homeLock is a Mailbox dotlock taken in this process, through the home's descriptor.
type homeLock struct {
	*Dotlock
	home int
}

func (h homeLock) Release() error {
	err := h.Dotlock.Release()
	unix.Close(h.home)
	return err
}

func lockMailboxHere(ctx context.Context, req *workerRequest) (sourceLock, error) {
	home, err := openHome(req)
	if err != nil {
		return nil, err
	}
	dl, err := TakeDotlockAt(ctx, home, MailboxLockName, req.LockTimeout)
	if err != nil {
		unix.Close(home)
		return nil, fmt.Errorf("%w (in %s)", err, req.Home)
	}
	return homeLock{Dotlock: dl, home: home}, nil
}

// The Mailbox lock worker's protocol: the request, then "locked" (or "lock-failed" with Kind
// and Err); then one rename request at a time, each answered "renamed" or "rename-failed";
// stdin closed: the lock is released and "released" (or "error") is the last line.
const (
	opMailboxLock = "mailbox-lock"
	opRename      = "rename"
)

func init() { workerOps[opMailboxLock] = serveMailboxLock }

// serveMailboxLock is the worker's side: it holds ~USER/Mailbox.lock as the user until its
// stdin is closed or it is told to stop.
func serveMailboxLock(req *workerRequest, emit func(workerMsg)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lockCtx, cancel := context.WithTimeout(ctx, req.LockTimeout)
	lk, err := lockMailboxHere(lockCtx, req)
	cancel()
	if err != nil {
		err = ctxLockError(ctx, err)
		kind := folderFailError
		if errors.Is(err, ErrLockTimeout) {
			kind = folderFailLock
		}
		emit(workerMsg{T: "lock-failed", Kind: kind, Err: err.Error(), Unsafe: errors.Is(err, ErrUnsafeHome)})
		return nil
	}
	emit(workerMsg{T: "locked"})
	// The parent sends a command only after reading the answer to the one before, so nothing
	// past the request was read ahead from stdin.
	cmds := make(chan workerRequest)
	go func() {
		defer close(cmds)
		dec := json.NewDecoder(os.Stdin)
		for {
			var c workerRequest
			if dec.Decode(&c) != nil {
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = lk.Release()
			return ctx.Err()
		case c, ok := <-cmds:
			if !ok {
				if err := lk.Release(); err != nil {
					return err
				}
				emit(workerMsg{T: "released"})
				return nil
			}
			if c.Op != opRename {
				emit(workerMsg{T: "rename-failed", Err: fmt.Sprintf("migrate: mailbox lock: unknown command %q", c.Op)})
				continue
			}
			if err := lk.RenameSource(c.RenameFrom, c.RenameTo, c.Dev, c.Inode); err != nil {
				emit(workerMsg{T: "rename-failed", Err: err.Error()})
				continue
			}
			emit(workerMsg{T: "renamed"})
		}
	}
}

// workerLock is the parent's end of a Mailbox lock worker. The worker holds the lock without
// working, so the watchdog's rule applies to its answers: each must come within the stall
// timeout (the first, the lock, within the lock timeout and that), or root kills it.
type workerLock struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	outf   *os.File
	out    *json.Decoder
	stderr *bytes.Buffer
	uid    int
	stall  time.Duration
	run    context.Context
	mu     sync.Mutex
	once   sync.Once
	err    error
}

// spawnMailboxLock starts the worker and waits for the lock, which the worker gives up on by
// the lock timeout; once ctx ends (an interrupt), the worker's answers are waited for
// abortGrace at most.
func spawnMailboxLock(ctx context.Context, cred Credentials, req *workerRequest) (sourceLock, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	// Not ctx: the lock outlives the locking deadline; cancellation is the caller's Release.
	cmd := workerCommand(context.Background(), cred, req.Home)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	cmd.WaitDelay = reapWait
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("migrate: mailbox lock: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("migrate: starting the mailbox lock worker as uid %d: %w", cred.UID, err)
	}
	outf := out.(*os.File)
	w := &workerLock{cmd: cmd, in: in, outf: outf, out: json.NewDecoder(io.LimitReader(outf, 1<<20)), stderr: &stderr, uid: cred.UID,
		stall: stallTimeoutOf(ctx), run: ctx}
	if _, err := in.Write(append(body, '\n')); err != nil {
		return nil, w.fail(fmt.Errorf("migrate: mailbox lock: %w", err))
	}
	// The worker gives up by the lock timeout itself; ctx ending first (an interrupt) stops
	// waiting for its answer at once.
	patience := req.LockTimeout + w.stall
	_ = outf.SetReadDeadline(time.Now().Add(patience))
	stopped := context.AfterFunc(ctx, func() { _ = outf.SetReadDeadline(time.Now()) })
	m, err := w.read(patience)
	stopped()
	switch {
	case ctx.Err() != nil:
		return nil, w.fail(ctx.Err())
	case err != nil:
		return nil, w.fail(err)
	case m.T == "lock-failed" && m.Kind == folderFailLock:
		return nil, w.fail(fmt.Errorf("%w: %s", ErrLockTimeout, m.Err))
	case m.T == "lock-failed":
		return nil, w.fail(&remoteError{msg: m.Err, unsafe: m.Unsafe})
	case m.T != "locked":
		return nil, w.fail(fmt.Errorf("migrate: mailbox lock worker said %q", m.T))
	}
	return w, nil
}

// answer reads the worker's next line, waiting for it no longer than patience, nor than
// abortGrace once the run is interrupted.
func (w *workerLock) answer(patience time.Duration) (workerMsg, error) {
	_ = w.outf.SetReadDeadline(time.Now().Add(patience))
	hurry := context.AfterFunc(w.run, func() { _ = w.outf.SetReadDeadline(time.Now().Add(abortGrace)) })
	defer hurry()
	return w.read(patience)
}

// read reads the worker's next line by the read deadline set, patience from now.
func (w *workerLock) read(patience time.Duration) (workerMsg, error) {
	var m workerMsg
	if err := w.out.Decode(&m); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if w.run != nil && w.run.Err() != nil {
				patience = min(patience, abortGrace)
			}
			return m, &stallError{timeout: patience, state: procState(w.cmd.Process.Pid), gone: true, noFiles: true}
		}
		return m, fmt.Errorf("migrate: mailbox lock worker as uid %d: %w%s", w.uid, err, w.said())
	}
	if m.T == "error" {
		return m, &remoteError{msg: m.Err, unsafe: m.Unsafe}
	}
	return m, nil
}

func (w *workerLock) said() string {
	if msg := strings.TrimSpace(w.stderr.String()); msg != "" {
		return ": " + truncate(msg, 500)
	}
	return ""
}

// fail stops the worker (its lock, if any, goes with it) and returns err.
func (w *workerLock) fail(err error) error {
	w.once.Do(func() {
		w.in.Close()
		if _, gone := endWorker(w.cmd, true, abortGrace); !gone {
			var se *stallError
			if errors.As(err, &se) {
				se.gone = false
			}
		}
	})
	return err
}

// endWorker waits for the worker cmd to end: asked with SIGTERM when term (and SIGCONT, for one
// its user stopped), killed when it has not ended after patience, and given up on when it is
// still not gone reapWait later (uninterruptible sleep on a hung filesystem). It returns what
// Wait said and whether the worker is gone.
func endWorker(cmd *exec.Cmd, term bool, patience time.Duration) (error, bool) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if term {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case err := <-done:
		return err, true
	case <-t.C:
	}
	_ = cmd.Process.Kill()
	t.Reset(reapWait)
	select {
	case err := <-done:
		return err, true
	case <-t.C:
		return nil, false
	}
}

// RenameSource has the worker rename the source as the user.
func (w *workerLock) RenameSource(from, to string, dev, ino uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	body, err := json.Marshal(workerRequest{Op: opRename, RenameFrom: from, RenameTo: to, Dev: dev, Inode: ino})
	if err != nil {
		return fmt.Errorf("migrate: rename: %w", err)
	}
	if _, err := w.in.Write(append(body, '\n')); err != nil {
		return fmt.Errorf("migrate: mailbox lock worker: %w", err)
	}
	m, err := w.answer(w.stall)
	switch {
	case errors.As(err, new(*stallError)):
		return w.fail(err)
	case err != nil:
		return err
	case m.T == "rename-failed":
		return &remoteError{msg: m.Err}
	case m.T != "renamed":
		return fmt.Errorf("migrate: mailbox lock worker said %q", m.T)
	}
	return nil
}

// Release has the worker remove the lock and waits for it to end.
func (w *workerLock) Release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	stalled := false
	w.once.Do(func() {
		w.in.Close()
		m, aerr := w.answer(w.stall)
		switch {
		case errors.As(aerr, new(*stallError)):
			err, stalled = aerr, true
		case aerr != nil:
			err = aerr
		case m.T != "released":
			err = fmt.Errorf("migrate: mailbox lock worker said %q", m.T)
		}
		patience := w.stall
		if stalled {
			// Continued, it may still remove its lock before it is killed.
			patience = abortGrace
		}
		werr, gone := endWorker(w.cmd, stalled, patience)
		var se *stallError
		if !gone && errors.As(err, &se) {
			se.gone = false
		}
		if werr != nil && err == nil {
			err = fmt.Errorf("migrate: mailbox lock worker as uid %d: %w%s", w.uid, werr, w.said())
		}
	})
	return err
}
