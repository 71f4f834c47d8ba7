package maildir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/lock"
	"github.com/maildirmig/maildirmig/internal/safefs"
)

// The control-file dotlock: Dovecot's name.lock on dovecot-uidlist and
// dovecot-keywords, which is also where the new version of the file is
// written before it is renamed over the old one (package lock has its
// mechanics). It is created as a file of this run in tmp/, recorded in the
// run marker (recover.go), then hard-linked to name.lock. It is refreshed
// while held and checked to be still ours before every change; a holder
// that is a dead maildirmig of this host (its marker says so) loses it at
// once, any other holder only when it is lock.ControlStale old, as Dovecot
// decides. A run killed while holding it costs the next one at most
// lock.ControlStale, and never takes a live holder's lock.

// ctlLock is Dovecot's dotlock on a control file of the Maildir, name.lock,
// created exclusively: it is also where a new version of the file is
// written before it is renamed over the old one. Another process takes it
// over once its mtime is lock.ControlStale old, so it is refreshed while
// held, and its name is checked to still be our file before it is renamed
// or removed.
type ctlLock struct {
	w       *Writer
	h       *lock.Held // the new control file is written into its file
	name    string
	touched time.Time
	done    bool       // renamed over name, or removed
	rec     lockRecord // what the run marker says of it while held
}

// held returns an error matching lock.ErrLost unless name.lock is still ours.
func (l *ctlLock) held() error {
	if err := l.h.Ours(); err != nil {
		return fmt.Errorf("maildir: %s/%s.lock: %w", l.w.d.path, l.name, err)
	}
	return nil
}

// refresh sets the lock's mtime to now once a quarter of lock.ControlStale
// has passed since it was last set, so that a long batch keeps it from
// looking stale. It is best effort: held is the check.
func (l *ctlLock) refresh() {
	now := time.Now()
	if now.Sub(l.touched) < lock.ControlStale/4 {
		return
	}
	if l.h.Touch() == nil {
		l.touched = now
	}
}

// unlinkTmp removes the lock's other name in tmp/, which kept its inode
// from being reused while the run marker recorded it.
func (l *ctlLock) unlinkTmp() {
	if l.rec.tmp != "" {
		_ = unix.Unlinkat(l.w.d.sub[subTmp], l.rec.tmp, 0)
		l.rec.tmp = ""
	}
}

// forget takes the lock out of the run marker and removes its tmp/ name.
func (l *ctlLock) forget() {
	if m := l.w.marker; m != nil {
		m.release(l)
	}
	l.unlinkTmp()
}

// lockControl takes the dotlock of the control file name, waiting up to 30
// seconds for another holder. It takes over at once a lock whose holder is
// a maildirmig that died on this host (its run marker says so), and any
// other lock older than lock.ControlStale, as Dovecot does.
//
// The lock is made as a file of this run in tmp/, recorded in the run
// marker, then hard-linked to name.lock (which fails when it exists); the
// tmp/ name stays until the lock goes (see recover.go).
func (w *Writer) lockControl(name string) (*ctlLock, error) {
	lockName := name + ".lock"
	display := w.d.path + "/" + lockName
	wait := 30 * time.Second
	if w.lockWait > 0 {
		wait = w.lockWait
	}
	deadline := time.Now().Add(wait)
	var (
		last   lockHolder
		lastSt *unix.Stat_t
	)
	for {
		l, err := w.createLock(name)
		if err == nil {
			fault.Locked.Hit()
			return l, nil
		}
		if err != unix.EEXIST {
			return nil, err
		}
		// Every way round the loop passes the deadline: whatever is at
		// name.lock, and whatever the user does to it, the wait ends.
		broken := false
		var st unix.Stat_t
		if unix.Fstatat(w.d.fd, lockName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				// Not a dotlock anyone made: no one can break it, Dovecot
				// neither, and waiting would change nothing.
				return nil, &unsafeError{display, "is a " + FileType(st.Mode) + ", not a lock file"}
			}
			h, taken := w.holder(lockName, &st)
			switch {
			case taken:
				broken = true
			case h.pid == 0 && lock.Stale(&st, lock.ControlStale):
				judged := st
				broken = w.breakLock(lockName, func(now *unix.Stat_t) bool {
					return now.Dev == judged.Dev && now.Ino == judged.Ino && now.Mtim == judged.Mtim
				})
			}
			if !broken {
				last, lastSt = h, &st
			}
		}
		if time.Now().After(deadline) {
			return nil, heldError(display, last, lastSt)
		}
		if broken {
			continue
		}
		if err := w.traced(nil, "wait "+lockName); err != nil {
			return nil, err
		}
		if err := lock.Wait(context.Background(), deadline); err != nil {
			return nil, heldError(display, last, lastSt)
		}
	}
}

// breakLock removes the dotlock lockName if it is still the file judged to
// be stale or a dead run's (same says so of what is there), and reports
// whether it did. It is moved aside first (lock.BreakAside), to a name of
// this run in tmp/: a kill in between leaves it there, and the next Writer
// removes it as a dead run's file.
func (w *Writer) breakLock(lockName string, same func(*unix.Stat_t) bool) bool {
	aside, err := w.runName("B")
	if err != nil || w.traced(nil, "break "+lockName) != nil {
		return false
	}
	return lock.BreakAside(w.d.fd, lockName, w.d.sub[subTmp], aside, same)
}

// runName is a new name for a file of this run in tmp/ that holds no
// message, kind telling which: "<secs>.<token><kind><12 hex digits>.<host>".
func (w *Writer) runName(kind string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%s%s%s.%s", time.Now().Unix(), w.marker.token, kind, hex.EncodeToString(rnd[:]), w.host), nil
}

// createLock makes name.lock, as lockControl says; it returns EEXIST
// unwrapped when the lock is there already.
func (w *Writer) createLock(name string) (*ctlLock, error) {
	lockName := name + ".lock"
	display := w.d.path + "/" + lockName
	tmpfd := w.d.sub[subTmp]
	tmp, err := w.runName("L")
	if err != nil {
		return nil, fmt.Errorf("maildir: lock name: %w", err)
	}
	h, err := lock.Create(tmpfd, tmp, display)
	if err != nil {
		return nil, fmt.Errorf("maildir: create %s/tmp/%s: %w", w.d.path, tmp, err)
	}
	dev, ino := h.ID()
	l := &ctlLock{w: w, h: h, name: name, touched: time.Now(),
		rec: lockRecord{name: lockName, tmp: tmp, dev: dev, ino: ino}}
	if err := w.marker.hold(l); err != nil {
		_ = h.Remove()
		h.Close()
		return nil, err
	}
	err = w.traced(nil, "record "+lockName)
	if err == nil {
		err = h.Link(w.d.fd, lockName)
	}
	if err == nil {
		return l, nil
	}
	w.marker.release(l)
	_ = h.Remove()
	h.Close()
	switch {
	case errors.Is(err, lock.ErrNoLinks):
		// A file system without hard links: the lock is created in
		// place, and a kill before it is recorded costs lock.ControlStale.
		return w.createLockInPlace(name)
	case err == unix.EEXIST:
		return nil, unix.EEXIST
	}
	return nil, fmt.Errorf("maildir: create %s: %w", display, err)
}

// createLockInPlace makes name.lock by an exclusive create. Without a tmp/
// name to keep its inode, it is not recorded: a kill while it is held costs
// lock.ControlStale.
func (w *Writer) createLockInPlace(name string) (*ctlLock, error) {
	lockName := name + ".lock"
	display := w.d.path + "/" + lockName
	h, err := lock.Create(w.d.fd, lockName, display)
	if err == unix.EEXIST {
		return nil, unix.EEXIST
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: create %s: %w", display, err)
	}
	return &ctlLock{w: w, h: h, name: name, touched: time.Now()}, nil
}

// drop releases a lock that was not installed.
func (l *ctlLock) drop() {
	if l.done {
		return
	}
	l.done = true
	l.forget()
	// A lock taken over is the other holder's now: not ours to remove.
	_ = l.h.Remove()
	l.h.Close()
}

// install makes what was written into the lock file the control file:
// mode 0600, synced, renamed over the file, the directory synced.
func (w *Writer) install(l *ctlLock) error {
	lockName := l.name + ".lock"
	display := w.d.path + "/" + lockName
	fd := int(l.h.File().Fd())
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return fmt.Errorf("maildir: chmod %s: %w", display, err)
	}
	if w.opts.Fsync != FsyncNone {
		if err := w.traced(unix.Fsync(fd), "fsync "+lockName); err != nil {
			return fmt.Errorf("maildir: fsync %s: %w", display, err)
		}
	}
	// Renaming another holder's name.lock would install their file,
	// perhaps half written.
	if err := l.held(); err != nil {
		return err
	}
	// dovecot-uidlist must have one link (check refuses more): the tmp/
	// name goes first. Until the rename, a kill leaves a lock that no
	// record matches, which costs lock.ControlStale.
	l.forget()
	if err := w.traced(unix.Renameat(w.d.fd, lockName, w.d.fd, l.name), "rename "+lockName+" "+l.name); err != nil {
		return fmt.Errorf("maildir: rename %s to %s: %w", display, l.name, err)
	}
	l.done = true
	cerr := l.h.Close()
	if w.opts.Fsync != FsyncNone {
		if err := w.traced(unix.Fsync(w.d.fd), "fsync ."); err != nil {
			return fmt.Errorf("maildir: fsync %s: %w", w.d.path, err)
		}
	}
	if cerr != nil {
		return fmt.Errorf("maildir: close %s: %w", display, bare(cerr, display))
	}
	return nil
}

// writeControl replaces a control file of the Maildir the way Dovecot does:
// the content, which write produces while the lock is held, goes into
// name.lock (created exclusively, so it is also Dovecot's dotlock), is
// synced, and is renamed over name.
func (w *Writer) writeControl(name string, write func(io.Writer) error) error {
	lk, err := w.lockControl(name)
	if err != nil {
		return err
	}
	defer lk.drop()
	if err := write(lk.h.File()); err != nil {
		return err
	}
	return w.install(lk)
}

// lockRecord is one dotlock a marker says its run holds.
type lockRecord struct {
	name     string // dovecot-uidlist.lock ...
	tmp      string // its other name in tmp/
	dev, ino uint64
}

func (r lockRecord) String() string {
	return fmt.Sprintf("%s %s %d %d\n", r.name, r.tmp, r.dev, r.ino)
}

// parseRecords reads the records of the marker of the run token.
func parseRecords(b []byte, token string) []lockRecord {
	var out []lockRecord
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		// Only the dotlocks a Writer takes, and tmp/ names of that run:
		// the marker is the user's file, and a name with a "/" would
		// reach out of the Maildir.
		if len(f) != 4 || f[0] != uidlistName+".lock" && f[0] != keywordsName+".lock" {
			continue
		}
		if t, _, _, legacy, ok := parseTmp(f[1]); !ok || legacy || t != token || strings.Contains(f[1], "/") {
			continue
		}
		dev, derr := parseDecimal(f[2])
		ino, ierr := parseDecimal(f[3])
		if derr == nil && ierr == nil {
			out = append(out, lockRecord{name: f[0], tmp: f[1], dev: uint64(dev), ino: uint64(ino)})
		}
	}
	return out
}

// inPlace says whether the dotlock r records is still the one it
// recorded: its name and its tmp/ name are one inode, the recorded one.
func (w *Writer) inPlace(r lockRecord) bool {
	var lk, tmp unix.Stat_t
	return unix.Fstatat(w.d.fd, r.name, &lk, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		unix.Fstatat(w.d.sub[subTmp], r.tmp, &tmp, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		lk.Dev == r.dev && lk.Ino == r.ino && tmp.Dev == r.dev && tmp.Ino == r.ino
}

// hold records l among the dotlocks held, before it is made visible.
func (m *runMarker) hold(l *ctlLock) error {
	m.locks = append(m.locks, l)
	if err := m.record(); err != nil {
		m.release(l)
		return fmt.Errorf("maildir: record %s in %s: %w", l.rec.name, m.f.Name(), err)
	}
	return nil
}

// release forgets l, before it goes away.
func (m *runMarker) release(l *ctlLock) {
	for i, x := range m.locks {
		if x == l {
			m.locks = append(m.locks[:i], m.locks[i+1:]...)
			break
		}
	}
	// Truncating first leaves no record of l even when the rewrite of
	// the others fails.
	_ = unix.Ftruncate(int(m.f.Fd()), 0)
	if len(m.locks) > 0 {
		_ = m.record()
	}
}

// lockHolder is what lockControl learned of the holder of a dotlock.
type lockHolder struct {
	pid   int  // a maildirmig on this host, 0 when no marker records the lock
	alive bool // that maildirmig is alive
}

// holder looks for the run marker that records the dotlock st as its
// run's. A dead run's dotlock is removed at once (taken is true).
func (w *Writer) holder(lockName string, st *unix.Stat_t) (h lockHolder, taken bool) {
	var tokens []string
	_ = w.d.eachName(subTmp, func(n string) {
		if token, host, ok := parseMarker(n); ok && host == w.host && (w.marker == nil || token != w.marker.token) {
			tokens = append(tokens, token)
		}
	})
	b := make([]byte, 4096)
	for _, token := range tokens {
		fd, err := safefs.Open(w.d.sub[subTmp], markerPrefix+token+"."+w.host, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		n, _ := unix.Pread(fd, b, 0)
		unix.Close(fd)
		mine := false
		for _, rec := range parseRecords(b[:max(n, 0)], token) {
			mine = mine || rec.name == lockName && rec.dev == st.Dev && rec.ino == st.Ino && w.inPlace(rec)
		}
		if !mine {
			continue
		}
		alive, dead, err := w.probe(token)
		if err != nil || alive {
			return lockHolder{pid: pidOf(token), alive: true}, false
		}
		removed, tmps := w.takeOver(dead)
		for _, tmp := range tmps {
			_ = unix.Unlinkat(w.d.sub[subTmp], tmp, 0)
		}
		if dead.f != nil {
			// Its marker and other files stay for the next Writer's recovery.
			_ = unix.Ftruncate(int(dead.f.Fd()), 0)
			dead.f.Close()
		}
		for _, name := range removed {
			w.notify(fmt.Sprintf("took over %s left by a maildirmig that died (pid %d)", name, pidOf(token)))
		}
		return lockHolder{pid: pidOf(token)}, len(removed) > 0
	}
	return lockHolder{}, false
}

// heldError says who holds the dotlock display, as far as lockControl saw.
func heldError(display string, h lockHolder, st *unix.Stat_t) error {
	if h.pid != 0 && h.alive {
		return fmt.Errorf("maildir: %s is held by maildirmig pid %d", display, h.pid)
	}
	if h.pid != 0 {
		return fmt.Errorf("maildir: %s was left by a maildirmig that died (pid %d) and could not be taken over", display, h.pid)
	}
	if st == nil {
		return fmt.Errorf("maildir: %s is held by another process", display)
	}
	since := time.Unix(st.Mtim.Unix()).Format("15:04:05")
	return fmt.Errorf("maildir: %s is held by another process (Dovecot?) since %s", display, since)
}
