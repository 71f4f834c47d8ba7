package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/lock"
)

// Dead-run recovery: a Writer holds a run marker in tmp/ while it writes,
// and on start removes what a dead run of this host left (its tmp/ files, its
// control dotlock) and nothing a live writer holds. The rules follow.

// A Writer proves it is alive to the Writers that come after it with a run
// marker: a file of its own in tmp/, named
//
//	.maildirmig.P<pid>I<8 hex digits>.<host>
//
// which it holds locked (a liveness marker of package lock) from before it
// writes its first file until Close. A marker that can be locked, or a
// marker that is gone, is a dead run's. Every file the Writer puts in tmp/
// carries the same P<pid>I<hex> token after its time part, so a later Writer
// on this host knows whose it is: the files of a dead run are removed, those
// of a live run (this host or another) and of other programs (Dovecot, an
// MDA) are left to the 36-hour rule of check --fix.
//
// The marker also says which control dotlock (dovecot-uidlist.lock,
// dovecot-keywords.lock) the run holds, since a dotlock's content is the new
// control file and cannot carry a pid. The dotlock is made as a file of the
// run in tmp/, recorded in the marker by that name and its device and inode,
// then hard-linked to its place; the tmp/ name stays until just before the
// dotlock is renamed over the control file or removed. A dotlock is the dead
// run's only while the recorded tmp/ name is the same inode as the dotlock:
// that name keeps the inode alive, so no later file (a dotlock Dovecot made
// after taking the dead one over as stale) can have its number. Such a
// dotlock is taken over at once; one recorded by a live run's marker is left
// alone, and so is one that no marker records (Dovecot's), until it is
// lock.ControlStale old. A kill in the one call between the removal of the
// tmp/ name and the rename leaves a dotlock that costs lock.ControlStale,
// never a live holder's lock.
const markerPrefix = ".maildirmig."

// maxLeftAlone is how many runs a Writer names when it leaves their tmp/
// files alone because their marker could not be probed, or when it removes
// the tmp/ files of dead runs; the rest are counted in one more notice. The
// user can fill tmp/ with names of any number of "runs".
const maxLeftAlone = 5

// runMarker is the marker a Writer holds locked.
type runMarker struct {
	f     *os.File
	name  string
	token string // P<pid>I<hex>
	locks []*ctlLock
}

// claim creates the Writer's run marker in tmp/ and locks it.
func (w *Writer) claim() error {
	tmpfd := w.d.sub[subTmp]
	for try := 0; ; try++ {
		var rnd [4]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return fmt.Errorf("maildir: run id: %w", err)
		}
		token := "P" + strconv.Itoa(w.pid) + "I" + hex.EncodeToString(rnd[:])
		name := markerPrefix + token + "." + w.host
		f, err := lock.CreateMarker(tmpfd, name, w.d.path+"/tmp/"+name)
		if err == nil {
			w.marker = &runMarker{f: f, name: name, token: token}
			return nil
		}
		// ErrLost: a Writer that found the marker unlocked between its
		// create and its lock took it for a dead run's and removed it.
		// Then this one starts again under another name, as after a
		// name that was taken.
		if !errors.Is(err, lock.ErrLost) && !(errors.Is(err, unix.EEXIST) && try < 10) {
			return fmt.Errorf("maildir: %w", err)
		}
		if try == 10 {
			return fmt.Errorf("maildir: %s/tmp: no run marker of ours stayed in place", w.d.path)
		}
	}
}

// record writes into the marker which dotlocks the Writer holds now. An
// empty list truncates it, which cannot fail for want of space.
func (m *runMarker) record() error {
	fd := int(m.f.Fd())
	if len(m.locks) == 0 {
		return unix.Ftruncate(fd, 0)
	}
	var b strings.Builder
	for _, l := range m.locks {
		b.WriteString(l.rec.String())
	}
	if _, err := unix.Pwrite(fd, []byte(b.String()), 0); err != nil {
		return err
	}
	return unix.Ftruncate(fd, int64(b.Len()))
}

// Close releases the run marker: its lock, and its file in tmp/. The
// Writer must not be used after. A Writer never closed leaves its marker to
// the next one, which removes it once the process is gone.
func (w *Writer) Close() error {
	w.settle()
	w.closePending()
	m := w.marker
	if m == nil {
		return nil
	}
	w.marker = nil
	err := unix.Unlinkat(w.d.sub[subTmp], m.name, 0)
	if err != nil && err != unix.ENOENT {
		err = fmt.Errorf("maildir: remove %s: %w", m.f.Name(), err)
	} else {
		err = nil
	}
	if cerr := m.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("maildir: close %s: %w", m.f.Name(), cerr)
	}
	return err
}

// parseTmp splits a tmp/ file name a Writer makes,
// <secs>.P<pid>I<hex><rest>.<host>, into its run token and host; legacy
// reports a name of an earlier maildirmig, <secs>.P<pid>Q<pos>R<hex>.<host>,
// whose token is just P<pid>.
func parseTmp(name string) (token, host string, pid int, legacy, ok bool) {
	dot := strings.IndexByte(name, '.')
	if dot < 1 || !allDigits(name[:dot]) || dot+1 >= len(name) || name[dot+1] != 'P' {
		return "", "", 0, false, false
	}
	rest := name[dot+1:]
	i := 1
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if i == 1 || i == len(rest) {
		return "", "", 0, false, false
	}
	pid, err := strconv.Atoi(rest[1:i])
	if err != nil || pid <= 0 {
		return "", "", 0, false, false
	}
	switch rest[i] {
	case 'I':
		j := i + 1
		for j < len(rest) && j-i-1 < 8 && isHex(rest[j]) {
			j++
		}
		if j-i-1 != 8 {
			return "", "", 0, false, false
		}
		token = rest[:j]
	case 'Q':
		token, legacy = rest[:i], true
	default:
		return "", "", 0, false, false
	}
	end := strings.IndexByte(rest[len(token):], '.')
	if end < 0 {
		return "", "", 0, false, false
	}
	return token, rest[len(token)+end+1:], pid, legacy, true
}

// parseMarker splits a run marker's name into its token and host. The
// token must be one a Writer makes, P<pid>I<8 hex digits>: the user owns
// tmp/ and may fill it with names of any shape, which must not reach the
// console or the audit log as runs of ours.
func parseMarker(name string) (token, host string, ok bool) {
	rest, found := strings.CutPrefix(name, markerPrefix)
	if !found {
		return "", "", false
	}
	token, host, found = strings.Cut(rest, ".")
	if !found || !validToken(token) || host == "" {
		return "", "", false
	}
	return token, host, true
}

// validToken reports whether token has the form P<pid>I<8 hex digits>.
func validToken(token string) bool {
	p, hex, ok := strings.Cut(token, "I")
	if !ok || len(p) < 2 || p[0] != 'P' || !allDigits(p[1:]) || p[1] == '0' || len(hex) != 8 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if !isHex(hex[i]) {
			return false
		}
	}
	return true
}

// pidOf reads the pid of a run token P<pid>I<hex>.
func pidOf(token string) int {
	end := strings.IndexByte(token, 'I')
	if end < 0 {
		end = len(token)
	}
	pid, _ := strconv.Atoi(token[1:end])
	return pid
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// deadRun is a run whose marker this Writer holds locked, or found gone.
type deadRun struct {
	token string
	f     *os.File // the marker, locked; nil when it was gone
}

// probe says whether the run of token is alive: its marker is there and
// locked by another open file description. For a dead one it returns the
// marker locked (nil when there is none), so that no other Writer acts on
// that run at the same time.
func (w *Writer) probe(token string) (alive bool, dead *deadRun, err error) {
	name := markerPrefix + token + "." + w.host
	path := w.d.path + "/tmp/" + name
	alive, f, err := lock.ProbeMarker(w.d.sub[subTmp], name, path)
	switch {
	case errors.Is(err, lock.ErrNotMarker):
		// A dead run's marker is truncated: it must be a file of its
		// own, not a hard link a user made to some other file (root runs
		// convert too).
		return false, nil, &unsafeError{path, "is not a regular file with one link"}
	case err != nil:
		return false, nil, fmt.Errorf("maildir: %w", err)
	case alive:
		return true, nil, nil
	}
	return false, &deadRun{token: token, f: f}, nil
}

// takeOver removes the dotlocks the dead run's marker records that are
// still the very files recorded. It returns the names removed; their tmp/
// names are left to the caller.
func (w *Writer) takeOver(r *deadRun) (removed []string, tmps []string) {
	if r.f == nil {
		return nil, nil
	}
	b := make([]byte, 4096)
	n, _ := unix.Pread(int(r.f.Fd()), b, 0)
	for _, rec := range parseRecords(b[:max(n, 0)], r.token) {
		tmps = append(tmps, rec.tmp)
		// The recorded tmp/ name keeps the inode alive, so its number
		// names that file alone.
		if w.inPlace(rec) && w.breakLock(rec.name, func(st *unix.Stat_t) bool { return st.Dev == rec.dev && st.Ino == rec.ino }) {
			removed = append(removed, rec.name)
		}
	}
	return removed, tmps
}

// bury removes a dead run's marker and unlocks it.
func (w *Writer) bury(r *deadRun) {
	if r.f == nil {
		return
	}
	_ = unix.Unlinkat(w.d.sub[subTmp], markerPrefix+r.token+"."+w.host, 0)
	r.f.Close()
}

// recover removes what dead runs of maildirmig on this host left in the
// Maildir: their dotlocks, their tmp/ files and their markers. Files of
// live runs and of other programs are left alone. It runs once, after
// the Writer's own marker is in place and before its first file.
func (w *Writer) recover() error {
	byToken := map[string][]string{}
	legacy := map[string]int{}
	var order []string
	see := func(token string) {
		if _, ok := byToken[token]; !ok {
			byToken[token] = nil
			order = append(order, token)
		}
	}
	err := w.d.eachName(subTmp, func(n string) {
		if token, host, ok := parseMarker(n); ok {
			if host == w.host && token != w.marker.token {
				see(token)
			}
			return
		}
		token, host, pid, old, ok := parseTmp(n)
		if !ok || host != w.host || token == w.marker.token {
			return
		}
		if old {
			legacy[token] = pid
		}
		see(token)
		byToken[token] = append(byToken[token], n)
	})
	if err != nil {
		return err
	}
	leftAlone := 0
	var deadRuns, deadFiles int // runs whose files were removed, and how many files
	removeDead := func(files []string, pid int) {
		n := w.removeDead(files)
		if n == 0 {
			return
		}
		if deadRuns++; deadRuns <= maxLeftAlone {
			w.notify(fmt.Sprintf("removed %d %s left in tmp/ by a maildirmig that died (pid %d)", n, plural(n, "file", "files"), pid))
		} else {
			deadFiles += n
		}
	}
	defer func() {
		if leftAlone > maxLeftAlone {
			w.notify(fmt.Sprintf("left tmp/ files of %d more runs alone", leftAlone-maxLeftAlone))
		}
		if deadRuns > maxLeftAlone {
			w.notify(fmt.Sprintf("removed %d more %s left in tmp/ by %d more maildirmig runs that died",
				deadFiles, plural(deadFiles, "file", "files"), deadRuns-maxLeftAlone))
		}
	}()
	for _, token := range order {
		files := byToken[token]
		if pid, old := legacy[token]; old {
			// An earlier maildirmig had no marker: its files are
			// removed only once no process has its pid on this host.
			if unix.Kill(pid, 0) != unix.ESRCH {
				continue
			}
			removeDead(files, pid)
			continue
		}
		alive, dead, err := w.probe(token)
		if err != nil {
			// Each is said once per run, up to a few: a user can make
			// any number of markers that cannot be probed.
			if leftAlone++; leftAlone <= maxLeftAlone {
				w.notify(fmt.Sprintf("left tmp/ files of run %s alone: %v", token, err))
			}
			continue
		}
		if alive {
			continue
		}
		removed, _ := w.takeOver(dead)
		for _, name := range removed {
			w.notify(fmt.Sprintf("removed %s left by a maildirmig that died (pid %d)", name, pidOf(token)))
		}
		removeDead(files, pidOf(token))
		w.bury(dead)
	}
	return nil
}

// removeDead removes the tmp/ files of a dead run and returns how many it removed.
func (w *Writer) removeDead(files []string) int {
	removed := 0
	for _, name := range files {
		if unix.Unlinkat(w.d.sub[subTmp], name, 0) == nil {
			removed++
		}
	}
	return removed
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (w *Writer) notify(detail string) {
	if w.opts.Recovered != nil {
		w.opts.Recovered(detail)
	}
}

// TmpInUse says whether name, a file in the tmp/ directory open as tmpfd,
// is a file of a maildirmig run that is still alive: its run marker is
// there and locked. Such a file carries its message's date as mtime, not
// the time it was written; check ages tmp/ files by ctime, and spares these
// even when a run has been stopped (SIGSTOP) for longer than its rule. A run marker itself is in use while
// locked. It only looks (F_OFD_GETLK), and never follows a symlink.
func TmpInUse(tmpfd int, name string) bool {
	marker := name
	if _, _, ok := parseMarker(name); !ok {
		token, host, _, legacy, ok := parseTmp(name)
		if !ok || legacy {
			return false
		}
		marker = markerPrefix + token + "." + host
	}
	return lock.MarkerHeld(tmpfd, marker)
}
