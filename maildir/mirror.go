package maildir

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/fault"
)

// Mirroring: a migration that keeps a Maildir equal to its source, pass after
// pass, changes the files a Writer wrote. Restate moves a message between new/
// and cur/ and renames it for its flags and keywords (its base name, and so its
// identity, stays); Remove takes away a message whose source message is gone;
// ReplaceUIDList lists every message again under the UIDs the source gives. A
// Writer made with Options.Unlisted leaves the files it adds out of
// dovecot-uidlist, so that ReplaceUIDList lists them in their source order.
// Nothing here is for a Maildir that Dovecot or a delivery agent uses: the
// caller decides that (LiveMarker), and then only adds.

// Own is what the name of a file a Writer wrote says of its message:
//
//	<secs>.M<usecs>Q<seq>X<sum>.<host>,S=<size>,W=<vsize>[:2,<flags>]
type Own struct {
	Head  string // "<secs>.M<usecs>": the message's own date, "0.M0" without one
	Seq   int64  // Message.Position when the file was written
	Sum   string // the first 16 hex digits of the SHA-256 of the stored bytes
	Host  string // as escaped in the name
	Size  int64  // S=
	VSize int64  // W=
}

// OwnKey identifies a stored message wherever it stands in its source: its
// date, the hash of its bytes and their number. Identical messages with the
// same date share a key; their order in the source tells them apart.
type OwnKey struct {
	Head string
	Sum  string
	Size int64
}

// Key returns the identity of o's message, its place aside.
func (o Own) Key() OwnKey { return OwnKey{Head: o.Head, Sum: o.Sum, Size: o.Size} }

// ParseOwn recognises the name (or base name) of a file a Writer wrote, and
// reports false for any other: Dovecot's, a delivery agent's, a user's. A
// Writer's names hold no space, control character or DEL (escapeHost), so a
// name of its form with one was made by someone else, to be taken for one of
// ours and have its bytes written where names are one word on a line.
func ParseOwn(name string) (Own, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] == 0x7f {
			return Own{}, false
		}
	}
	base := baseOf(name)
	head, rest, ok := splitTime(base)
	if !ok {
		return Own{}, false
	}
	_, seq, rest, ok := splitPosition(base)
	if !ok || len(rest) < 1+16+1 || rest[0] != 'X' || rest[17] != '.' {
		return Own{}, false
	}
	sum := rest[1:17]
	for i := 0; i < len(sum); i++ {
		if !isHex(sum[i]) {
			return Own{}, false
		}
	}
	host, fields, ok := strings.Cut(rest[18:], ",")
	if !ok || host == "" {
		return Own{}, false
	}
	o := Own{Head: head, Seq: seq, Sum: sum, Host: host, Size: -1, VSize: -1}
	for _, f := range strings.Split(fields, ",") {
		v, err := parseDecimal(f[min(2, len(f)):])
		switch {
		case err != nil:
			return Own{}, false
		case strings.HasPrefix(f, "S=") && o.Size < 0:
			o.Size = v
		case strings.HasPrefix(f, "W=") && o.VSize < 0:
			o.VSize = v
		default:
			return Own{}, false
		}
	}
	if o.Size < 0 || o.VSize < o.Size {
		return Own{}, false
	}
	return o, true
}

// OwnKeyOf returns the key a Writer's name gives a message of the stored bytes
// size and SHA-256 sum, dated date (the zero time for none): what ParseOwn
// reads back from that name.
func OwnKeyOf(date int64, usecs int64, sum [32]byte, size int64) OwnKey {
	if date < 0 {
		date, usecs = 0, 0
	}
	return OwnKey{Head: strconv.FormatInt(date, 10) + ".M" + strconv.FormatInt(usecs, 10), Sum: hex.EncodeToString(sum[:8]), Size: size}
}

// LiveMarker returns the name of a file in the Maildir directory of d that
// Dovecot makes once it serves the mailbox (its index, cache, mailbox list
// index, UIDVALIDITY files or mailbox log), or "" when there is none.
func LiveMarker(d *Dir) (string, error) {
	names, err := readDirNames(d.fd, d.path)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if dovecotUsed(n) {
			return n, nil
		}
	}
	return "", nil
}

func dovecotUsed(name string) bool {
	for _, p := range []string{"dovecot.index", "dovecot.list.index", "dovecot-uidvalidity", "dovecot.mailbox.log"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// readDirNames lists the directory dirfd through a fresh open of ".".
func readDirNames(dirfd int, display string) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("maildir: open %s: %w", display, err)
	}
	f := os.NewFile(uintptr(fd), display)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("maildir: list %s: %w", display, err)
	}
	return names, nil
}

// Has reports whether the Maildir holds a message of base name base, in cur/
// or new/ as NewWriter found it or this Writer made it, with its file's sub and
// name and the UID dovecot-uidlist gives it (0 when it is not listed).
func (w *Writer) Has(base string) (sub, name string, uid uint32, ok bool) {
	e, ok := w.known[keyOf(base)]
	if !ok {
		return "", "", 0, false
	}
	sub = subNames[subCur]
	if e.suffix&inNew != 0 {
		sub = subNames[subNew]
	}
	return sub, base + w.suffixes[e.suffix&^inNew], e.uid, true
}

// Keywords is a Maildir's dovecot-keywords: the keyword name of each letter.
type Keywords [maxKeywords]string

// ReadKeywords reads the Maildir's dovecot-keywords; none when it is missing.
func (d *Dir) ReadKeywords() (Keywords, error) {
	b, _, err := readSmallFile(d.fd, keywordsName, d.path+"/"+keywordsName)
	if err != nil || b == nil {
		return Keywords{}, err
	}
	kw, err := parseKeywords(bytes.NewReader(b))
	if err != nil {
		return Keywords{}, fmt.Errorf("maildir: %s/%s: %w", d.path, keywordsName, err)
	}
	return kw, nil
}

// NameFor returns where the message file of base name base belongs for the
// flags m asks (m.Flags, m.Keywords and m.New, as Add reads them), with its
// keywords named by letter in kw: new/ and no info part, or cur/ and
// ":2,<flags>". missing reports a keyword kw has no letter for, which the
// name leaves out.
func (kw *Keywords) NameFor(base string, m *Message) (sub, name string, missing bool, err error) {
	flags, err := infoFlags(m, func(k string) (int, bool) {
		for i, n := range kw {
			if n == k && n != "" {
				return i, true
			}
		}
		missing = true
		return 0, false
	})
	if err != nil {
		return "", "", false, err
	}
	if m.New && flags == "" && len(m.Keywords) == 0 {
		return subNames[subNew], base, missing, nil
	}
	return subNames[subCur], base + ":2," + flags, missing, nil
}

// Wants returns where the message of base name base belongs for the flags m
// asks, giving letters in dovecot-keywords to its keywords that have none.
func (w *Writer) Wants(base string, m *Message) (sub, name string, err error) {
	for _, k := range m.Keywords {
		w.keywordIndex(k)
	}
	kw := Keywords(w.kw)
	sub, name, _, err = kw.NameFor(base, m)
	return sub, name, err
}

// Restate gives the message of base name base the place and flags m asks for
// (Wants), renaming its file without ever replacing one. It returns the
// file's sub and name now, and whether it had to change. The keywords are in
// dovecot-keywords before the name that uses them appears.
func (w *Writer) Restate(base string, m *Message) (sub, name string, changed bool, err error) {
	k := keyOf(base)
	e, ok := w.known[k]
	if !ok {
		return "", "", false, fmt.Errorf("maildir: %s: no message %s to rename", w.d.path, base)
	}
	toSub, toName, err := w.Wants(base, m)
	if err != nil {
		return "", "", false, err
	}
	to, _ := subIndex(toSub)
	from, fromName := subCur, base+w.suffixes[e.suffix&^inNew]
	if e.suffix&inNew != 0 {
		from = subNew
	}
	if from == to && fromName == toName {
		return toSub, fromName, false, nil
	}
	if err := w.writeKeywords(); err != nil {
		return "", "", false, err
	}
	event := "rename " + subNames[from] + "/" + fromName + " " + subNames[to] + "/" + toName
	err = w.traced(fault.Restate.Err(unix.Renameat2(w.d.sub[from], fromName, w.d.sub[to], toName, unix.RENAME_NOREPLACE)), event)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// Without RENAME_NOREPLACE a link fails rather than replace.
		if err = unix.Linkat(w.d.sub[from], fromName, w.d.sub[to], toName, 0); err == nil {
			err = unix.Unlinkat(w.d.sub[from], fromName, 0)
		}
	}
	if err != nil {
		return "", "", false, fmt.Errorf("maildir: rename %s/%s/%s to %s/%s: %w", w.d.path, subNames[from], fromName, subNames[to], toName, err)
	}
	w.dirty[from], w.dirty[to] = true, true
	nf := w.file(toName[len(base):], to)
	nf.uid = e.uid
	w.known[k] = nf
	return toSub, toName, true, nil
}

// Remove removes the message of base name base from cur/ or new/.
func (w *Writer) Remove(base string) error {
	k := keyOf(base)
	e, ok := w.known[k]
	if !ok {
		return nil
	}
	s, name := subCur, base+w.suffixes[e.suffix&^inNew]
	if e.suffix&inNew != 0 {
		s = subNew
	}
	err := w.traced(fault.Remove.Err(unix.Unlinkat(w.d.sub[s], name, 0)), "unlink "+subNames[s]+"/"+name)
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("maildir: remove %s/%s/%s: %w", w.d.path, subNames[s], name, err)
	}
	w.dirty[s] = true
	delete(w.known, k)
	return nil
}

// SyncDirs makes the renames and removals so far durable (an fsync of cur/ and
// new/, or a syncfs in FsyncSyncfs mode).
func (w *Writer) SyncDirs() error {
	if w.opts.Fsync == FsyncNone {
		w.dirty = [2]bool{}
		return nil
	}
	return w.syncDirs()
}

// UIDEntry is one line of dovecot-uidlist: a message's UID and base name.
type UIDEntry struct {
	UID  uint32
	Base string
}

// ReplaceUIDList writes dovecot-uidlist anew, under Dovecot's lock and
// atomically: UIDVALIDITY validity, next UID next, the mailbox GUID and header
// fields of the file it replaces, and entries in their order, whose UIDs must
// ascend below next. dovecot-keywords is written first when it changed.
func (w *Writer) ReplaceUIDList(validity, next uint32, entries []UIDEntry) error {
	if validity == 0 || next == 0 {
		return fmt.Errorf("maildir: %s/%s: UIDVALIDITY %d and next UID %d must not be 0", w.d.path, uidlistName, validity, next)
	}
	var prev uint32
	for _, e := range entries {
		if e.UID <= prev || e.UID >= next || e.UID == math.MaxUint32 {
			return fmt.Errorf("maildir: %s/%s: UID %d of %s out of order (after %d, next %d)", w.d.path, uidlistName, e.UID, e.Base, prev, next)
		}
		prev = e.UID
	}
	if err := w.writeKeywords(); err != nil {
		return err
	}
	display := w.d.path + "/" + uidlistName
	err := w.writeControl(uidlistName, func(out io.Writer) error {
		bw := bufio.NewWriterSize(out, 64*1024)
		fmt.Fprintf(bw, "3 V%d N%d G%s", validity, next, w.ul.guid)
		for _, f := range w.ul.extra {
			bw.WriteString(" " + f)
		}
		bw.WriteByte('\n')
		for _, e := range entries {
			bw.WriteString(strconv.FormatUint(uint64(e.UID), 10))
			bw.WriteString(" :")
			bw.WriteString(e.Base)
			bw.WriteByte('\n')
		}
		if err := fault.UIDListRewrite.Err(bw.Flush()); err != nil {
			return fmt.Errorf("maildir: write %s.lock: %w", display, bare(err, display+".lock"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		k := keyOf(e.Base)
		if f, ok := w.known[k]; ok {
			f.uid = e.UID
			w.known[k] = f
		}
	}
	w.unpin()
	w.ul.version, w.ul.validity, w.ul.next, w.ul.headNext = '3', validity, next, next
	w.pubStat, w.pubNext, w.pubHead, w.pubLast = nil, next, next, prev
	w.used, w.prev = next-1, prev
	w.ulDirty = false
	clear(w.tail)
	w.tail = w.tail[:0]
	return nil
}

// RemoveFolder removes the Maildir++ folder name beneath the Maildir parent once its
// messages are gone: its dovecot-uidlist, dovecot-keywords and maildirfolder, its empty
// cur/, new/ and tmp/, then the folder itself. Anything else there stops it with an error
// that names it, and the folder stays. A folder already gone is no error.
func RemoveFolder(parent *Dir, name string) error {
	d, err := OpenAt(parent.fd, name, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	for _, f := range []string{uidlistName, keywordsName, "maildirfolder"} {
		if err := unix.Unlinkat(d.fd, f, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("maildir: remove %s/%s: %w", d.path, f, err)
		}
	}
	for _, s := range []int{subTmp, subNew, subCur} {
		if err := unix.Unlinkat(d.fd, subNames[s], unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
			return fmt.Errorf("maildir: remove %s/%s: %w", d.path, subNames[s], err)
		}
	}
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("maildir: fsync %s: %w", d.path, err)
	}
	if err := unix.Unlinkat(parent.fd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("maildir: remove %s: %w", d.path, err)
	}
	return unix.Fsync(parent.fd)
}
