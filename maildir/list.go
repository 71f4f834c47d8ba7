package maildir

// Reading a Maildir for export: the messages in the order, with the UIDs, flags, keywords,
// dates and sizes that Dovecot 2.3 shows for them. What Dovecot does, from its source
// (src/lib-storage/index/maildir in dovecot/core 2.3.19) and checked with doveadm in
// TestListMatchesDovecot:
//
//   - A scan of cur/ and new/ skips names that begin with '.'. A name that begins with ':' is
//     renamed, and a base name found twice (in cur/ and new/, or with two info parts) has
//     one of its files renamed: Dovecot changes the Maildir, so List refuses both.
//   - A file listed in dovecot-uidlist (matched by the base name, before the first ':') has
//     that UID. Files the uidlist does not list are numbered on the next sync from the
//     uidlist's next UID on, in the order of maildir_filename_sort_cmp: by the decimal seconds
//     that begin the name, then, when both names have one, by the number after the first 'M'
//     of the part between the first and second '.', then by the bytes after the seconds up to
//     ':' compared as C's signed char. List numbers them the same way, and refuses where that
//     order is not one Dovecot's qsort could only reach one way: two names it calls equal,
//     seconds or microseconds beyond 2^31-1 (its int arithmetic wraps), or names of the same
//     second of which only some carry microseconds (the comparison is then not transitive).
//   - Flags are the letters after the last ':' when it is followed by "2,", up to the next
//     ',': R answered, S seen, T deleted, D draft, F flagged; a to z are keywords, the index
//     of the letter into dovecot-keywords; other letters are ignored. A letter with no name
//     in dovecot-keywords shows as the keyword "unknown-N" (N its index), with '?' added
//     until no other keyword has that name.
//   - dovecot-keywords is read line by line as "<index> <name>": a line without a space, an
//     index that is not a number below 26, an empty name or a name already given (compared
//     without regard to case) is skipped; a later line for the same index wins.
//   - INTERNALDATE is the file's mtime, in whole seconds.
//   - The size is S= in the name when the name has it (the first ",S=" followed by digits and
//     then ':', ',' or the end), else the S extension field of the file's uidlist line; and
//     RFC822.SIZE is W= likewise, else the W field. Dovecot trusts both, so a size that is not
//     the file's is refused here, and VSize is for the reader of the bytes to check.
//   - POP3 shows the P field of a uidlist line as the message's UIDL, whatever
//     pop3_uidl_format says, and lists messages with an O field first, in its order. An mbox
//     cannot say either, so List refuses a Maildir whose files have them.

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// ErrNotExact is matched (with errors.Is) by the errors of List and Listing.Each that refuse
// a Maildir whose view Dovecot would change or could build in more than one way.
var ErrNotExact = errors.New("maildir: Dovecot's view cannot be read exactly")

// notExactError says which file or name is at fault, and matches ErrNotExact.
type notExactError struct {
	path   string
	reason string
}

func (e *notExactError) Error() string {
	return "maildir: " + e.path + ": " + e.reason
}

func (e *notExactError) Unwrap() error { return ErrNotExact }

// ErrChanged is matched by the errors of Listing.Each when the Maildir changed since List:
// a file renamed, removed or added, or dovecot-uidlist replaced by one that says otherwise.
var ErrChanged = errors.New("maildir: changed while it was read")

// MaxKeywordLength is the longest keyword Dovecot's mbox storage takes (its default
// mail_max_keyword_length): a longer one would be dropped from the mbox.
const MaxKeywordLength = 50

// Listing is how Dovecot numbers and shows the messages of one Maildir, read by List. It
// keeps a few dozen bytes per message (a key of the base name, its UID and the interned rest
// of its name) and the names of the files dovecot-uidlist does not list; Each reads the base
// names again from the uidlist it holds open. A Listing is not safe for concurrent use.
type Listing struct {
	// UIDValidity is the Maildir's UIDVALIDITY, 0 when it has no dovecot-uidlist: Dovecot
	// would then make one up on its next sync.
	UIDValidity uint32
	// NextUID is the UIDNEXT Dovecot shows once it has numbered every file.
	NextUID uint32
	// Keywords are the mailbox's keywords in the order of their letters: the valid names of
	// dovecot-keywords, and "unknown-N" for a letter used without a name.
	Keywords []string
	// Messages counts the message files.
	Messages int

	d        *Dir
	ul       *os.File // dovecot-uidlist as List read it, nil without one
	ulSize   int64    // its size then: Each reads no further
	listed   int      // files the uidlist lists
	files    map[baseKey]listedFile
	suffixes []string
	suffixAt map[string]uint32
	unlisted []unlistedFile // in Dovecot's order; their UIDs follow the uidlist's next UID
	next     uint32         // the uidlist's next UID, the first UID of unlisted files
	kw       [maxKeywords]string
}

// listedFile is a name of the uidlist or a file of cur/ or new/.
type listedFile struct {
	uid    uint32 // from the uidlist, 0 when it does not list the file
	suffix uint32 // index in suffixes of the name after its base, inNew set when in new/
	state  uint8
}

const (
	inUIDList uint8 = 1 << iota // a line of the uidlist names it
	onDisk                      // a file of cur/ or new/ has this base
	pop3Field                   // its uidlist line has a P or O field
)

type unlistedFile struct {
	sub  int
	name string
}

// Listed is one message of a Listing, handed to the function Each calls.
type Listed struct {
	Sub, Name string // "cur" or "new", and the file name
	UID       uint32
	// Flags are the system flag letters Dovecot reads from the name, in ASCII order: D
	// draft, F flagged, R answered, S seen, T deleted.
	Flags    string
	Keywords []string  // keyword names, in the order of their letters
	Date     time.Time // INTERNALDATE: the file's mtime, in whole seconds
	Size     int64     // the file's size (equal to S= where the name has it)
	VSize    int64     // W= of the name, -1 without: RFC822.SIZE, which Dovecot trusts
	// File is the message file, open read-only; it is closed when the function returns.
	File *os.File
}

// New reports whether the file is in new/: Dovecot shows it as \Recent, and an mbox keeps
// that by leaving 'O' out of Status.
func (m *Listed) New() bool { return m.Sub == subNames[subNew] }

// List reads dovecot-keywords, dovecot-uidlist and the names in cur/ and new/, and works out
// the UID, flags and keywords Dovecot shows for every message file. Files are not opened
// until Each. A Maildir whose view Dovecot would change on its next look, or could build in
// more than one way, is refused with an error matching ErrNotExact; a dovecot-uidlist that
// Dovecot would call broken gives a *UIDListError. The Listing reads through d, which must
// stay open while it is used.
func (d *Dir) List() (*Listing, error) {
	l := &Listing{d: d, files: map[baseKey]listedFile{}, suffixAt: map[string]uint32{}, next: 1}
	if err := l.readKeywords(); err != nil {
		return nil, err
	}
	if err := l.readUIDList(); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.scan(); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.order(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close releases the uidlist the Listing holds.
func (l *Listing) Close() error {
	if l.ul == nil {
		return nil
	}
	err := l.ul.Close()
	l.ul = nil
	return err
}

// readKeywords reads dovecot-keywords as Dovecot does (see the comment at the top).
func (l *Listing) readKeywords() error {
	display := l.d.path + "/" + keywordsName
	b, _, err := readSmallFile(l.d.fd, keywordsName, display)
	if err != nil || b == nil {
		return err
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		idx, name, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		i, err := strconv.ParseUint(idx, 10, 32)
		if err != nil || i >= maxKeywords || name == "" || seen[strings.ToLower(name)] {
			continue
		}
		seen[strings.ToLower(name)] = true
		l.kw[i] = name
	}
	return nil
}

// readUIDList reads dovecot-uidlist, keeps it open for Each, and notes the base of every
// line.
func (l *Listing) readUIDList() error {
	display := l.d.path + "/" + uidlistName
	f, st, err := openControl(l.d.fd, uidlistName, display)
	if err != nil || f == nil {
		return err
	}
	l.ul, l.ulSize = f, st.Size
	u, err := scanUIDList(io.NewSectionReader(f, 0, l.ulSize), func(line uidLine) error {
		k := keyOf(line.base)
		if e, ok := l.files[k]; ok && e.state&inUIDList != 0 {
			return &notExactError{display, fmt.Sprintf("%s is listed twice (UIDs %d and %d)", line.base, e.uid, line.uid)}
		}
		e := listedFile{uid: line.uid, state: inUIDList}
		if uidlistField(line.text, 'P') != "" || uidlistField(line.text, 'O') != "" {
			e.state |= pop3Field
		}
		l.files[k] = e
		return nil
	})
	if err != nil {
		if ue, ok := errors.AsType[*UIDListError](err); ok {
			ue.Path = display
			return ue
		}
		if errors.Is(err, ErrNotExact) {
			return err
		}
		return fmt.Errorf("maildir: read %s: %w", display, err)
	}
	l.UIDValidity, l.next = u.validity, u.next
	return nil
}

// scan lists cur/ and new/ and joins their names with the uidlist's.
func (l *Listing) scan() error {
	var used [maxKeywords]bool
	var err error
	for _, s := range []int{subCur, subNew} {
		lerr := l.d.eachName(s, func(n string) {
			if err != nil || n == "" || n[0] == '.' {
				return
			}
			display := l.d.path + "/" + subNames[s] + "/" + n
			switch {
			case n[0] == ':':
				err = &notExactError{display, "the name has an empty base, which Dovecot renames"}
				return
			case strings.ContainsAny(n, "\n\r"):
				err = &notExactError{display, "the name holds a line end, which dovecot-uidlist cannot list"}
				return
			}
			base := baseOf(n)
			k := keyOf(base)
			e := l.files[k]
			if e.state&onDisk != 0 {
				err = &notExactError{display, "another file has the same base name " + base + ", and Dovecot renames one of them"}
				return
			}
			e.state |= onDisk
			e.suffix = l.intern(n[len(base):])
			if s == subNew {
				e.suffix |= inNew
			}
			l.files[k] = e
			if e.state&pop3Field != 0 {
				err = &notExactError{display, "its dovecot-uidlist line sets its POP3 UIDL or order (a P or O field), which an mbox cannot carry"}
				return
			}
			if e.state&inUIDList != 0 {
				l.listed++
			} else {
				l.unlisted = append(l.unlisted, unlistedFile{sub: s, name: n})
			}
			_, letters := dovecotFlags(n)
			for _, c := range letters {
				used[c-'a'] = true
			}
		})
		if lerr != nil {
			return lerr
		}
		if err != nil {
			return err
		}
	}
	l.Messages = l.listed + len(l.unlisted)
	// Dovecot names a letter it finds without a keyword, as it reads the names.
	taken := map[string]bool{}
	for _, k := range l.kw {
		if k != "" {
			taken[strings.ToLower(k)] = true
		}
	}
	for i, u := range used {
		if !u || l.kw[i] != "" {
			continue
		}
		name := "unknown-" + strconv.Itoa(i)
		for taken[strings.ToLower(name)] {
			name += "?"
		}
		taken[strings.ToLower(name)] = true
		l.kw[i] = name
	}
	for i, k := range l.kw {
		if k == "" {
			continue
		}
		if err := checkKeyword(k); err != nil {
			if used[i] {
				return &notExactError{l.d.path + "/" + keywordsName, fmt.Sprintf("keyword %q (letter %c): %v", k, 'a'+i, err)}
			}
			// Unused, it shows nowhere: an mbox need not list it.
			l.kw[i] = ""
			continue
		}
		l.Keywords = append(l.Keywords, k)
	}
	return nil
}

func (l *Listing) intern(suffix string) uint32 {
	if i, ok := l.suffixAt[suffix]; ok {
		return i
	}
	i := uint32(len(l.suffixes))
	l.suffixes = append(l.suffixes, suffix)
	l.suffixAt[suffix] = i
	return i
}

// checkKeyword refuses a keyword Dovecot's mbox storage would not create (mailbox_keyword_is_valid):
// empty, longer than MaxKeywordLength, or with a character that is not an IMAP atom's.
func checkKeyword(k string) error {
	if k == "" {
		return errors.New("empty")
	}
	if len(k) > MaxKeywordLength {
		return fmt.Errorf("longer than %d bytes", MaxKeywordLength)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return fmt.Errorf("character %q is not allowed in an IMAP keyword", c)
		}
	}
	return nil
}

// order sorts the unlisted files as Dovecot numbers them, and refuses where its order is not
// the only one.
func (l *Listing) order() error {
	if len(l.unlisted) == 0 {
		l.NextUID = l.next
		return nil
	}
	keys := make([]sortName, len(l.unlisted))
	for i, f := range l.unlisted {
		k, err := parseSortName(f.name)
		if err != nil {
			return &notExactError{l.d.path + "/" + subNames[f.sub] + "/" + f.name, err.Error()}
		}
		keys[i] = k
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]].compare(&keys[idx[b]]) < 0 })
	sorted := make([]unlistedFile, len(idx))
	for i, j := range idx {
		sorted[i] = l.unlisted[j]
		if i == 0 {
			continue
		}
		// The names of one second are next to each other: a second whose names mix
		// both kinds shows here.
		prev, cur := &keys[idx[i-1]], &keys[j]
		if prev.secs == cur.secs && prev.hasUsecs != cur.hasUsecs {
			return &notExactError{l.d.path, fmt.Sprintf("files %s and %s, which dovecot-uidlist does not list, have the same time and only one microseconds part: Dovecot's order of them is not defined",
				sorted[i-1].name, sorted[i].name)}
		}
		if prev.compare(cur) == 0 {
			return &notExactError{l.d.path, fmt.Sprintf("files %s and %s, which dovecot-uidlist does not list, sort alike: Dovecot may number them either way",
				sorted[i-1].name, sorted[i].name)}
		}
	}
	l.unlisted = sorted
	if uint64(l.next)+uint64(len(sorted)) >= math.MaxUint32 {
		return &notExactError{l.d.path, "too many files to number after the uidlist's next UID"}
	}
	l.NextUID = l.next + uint32(len(sorted))
	return nil
}

// sortName is what maildir_filename_sort_cmp looks at in a name.
type sortName struct {
	secs     int64
	usecs    int64
	hasUsecs bool
	rest     string // the name after the leading digits
}

// parseSortName reads a name for Dovecot's order, refusing numbers its int arithmetic would
// wrap.
func parseSortName(name string) (sortName, error) {
	var k sortName
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		k.secs = k.secs*10 + int64(name[i]-'0')
		if k.secs > math.MaxInt32 {
			return k, errors.New("the time in the name is beyond 2^31-1, where Dovecot's order of names wraps")
		}
		i++
	}
	k.rest = name[i:]
	// ".<uniqueness>.<host>": microseconds follow the first 'M' of the uniqueness.
	if strings.HasPrefix(k.rest, ".") {
		for j := 1; j < len(k.rest) && k.rest[j] != '.' && k.rest[j] != ':'; j++ {
			if k.rest[j] != 'M' {
				continue
			}
			k.hasUsecs = true
			for j++; j < len(k.rest) && k.rest[j] >= '0' && k.rest[j] <= '9'; j++ {
				k.usecs = k.usecs*10 + int64(k.rest[j]-'0')
				if k.usecs > math.MaxInt32 {
					return k, errors.New("the microseconds in the name are beyond 2^31-1, where Dovecot's order of names wraps")
				}
			}
			break
		}
	}
	return k, nil
}

// compare is maildir_filename_sort_cmp for names whose numbers do not wrap.
func (a *sortName) compare(b *sortName) int {
	switch {
	case a.secs != b.secs:
		return cmpInt(a.secs, b.secs)
	case a.hasUsecs && b.hasUsecs && a.usecs != b.usecs:
		return cmpInt(a.usecs, b.usecs)
	}
	// maildir_filename_base_cmp: bytes as C's (signed) char, up to ':' or the end, where
	// the end is NUL and ':' is itself.
	x, y := a.rest, b.rest
	i := 0
	for i < len(x) && i < len(y) && x[i] == y[i] && x[i] != ':' {
		i++
	}
	cx, cy := charAt(x, i), charAt(y, i)
	if (cx == 0 || cx == ':') && (cy == 0 || cy == ':') {
		return 0
	}
	return cmpInt(cx, cy)
}

func charAt(s string, i int) int64 {
	if i >= len(s) {
		return 0
	}
	return int64(int8(s[i]))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dovecotFlags reads the flags of a file name as maildir_filename_flags_get does: system
// flag letters Dovecot knows, in ASCII order, and the keyword letters, each once, in order.
func dovecotFlags(name string) (system, keywords string) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 || !strings.HasPrefix(name[i+1:], "2,") {
		return "", ""
	}
	info := name[i+3:]
	if j := strings.IndexByte(info, ','); j >= 0 {
		info = info[:j]
	}
	var set [128]bool
	for j := 0; j < len(info); j++ {
		if c := info[j]; c < 128 {
			set[c] = true
		}
	}
	var b strings.Builder
	for _, c := range "DFRST" {
		if set[c] {
			b.WriteRune(c)
		}
	}
	system = b.String()
	b.Reset()
	for c := 'a'; c <= 'z'; c++ {
		if set[c] {
			b.WriteRune(c)
		}
	}
	return system, b.String()
}

// dovecotNameSize reads the size field ",<field>=<digits>" of a name as
// maildir_filename_get_size does: the first one, and only when ':', ',' or the end follows
// its digits. It returns -1 when Dovecot finds none.
func dovecotNameSize(name string, field byte) int64 {
	i := strings.Index(name, ","+string(field)+"=")
	if i < 0 {
		return -1
	}
	j := i + 3
	var n int64
	for ; j < len(name) && name[j] >= '0' && name[j] <= '9'; j++ {
		n = n*10 + int64(name[j]-'0')
	}
	if j < len(name) && name[j] != ':' && name[j] != ',' {
		return -1
	}
	return n
}

// messageSize is the size field ('S' or 'W') Dovecot takes for a file: from its name, else
// from its uidlist line; -1 when neither has it.
func messageSize(name, line string, field byte) int64 {
	if n := dovecotNameSize(name, field); n >= 0 {
		return n
	}
	if v := uidlistField(line, field); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// uidlistField returns the value of the extension field key of a version 3 uidlist line
// ("<uid> [<key><value> ...] :<name>"), "" when it has none.
func uidlistField(line string, key byte) string {
	_, rest, _ := strings.Cut(line, " ")
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" || rest[0] == ':' {
			break
		}
		var f string
		f, rest, _ = strings.Cut(rest, " ")
		if f[0] == key {
			return f[1:]
		}
	}
	return ""
}

// Each calls fn for every message, in UID order, with its file open. It reads dovecot-uidlist
// again from the descriptor List opened, up to the size List read, so its lines are the same;
// a file renamed or removed since List gives an error matching ErrChanged. fn's error stops
// the walk and is returned as it is.
func (l *Listing) Each(fn func(*Listed) error) error {
	return l.walk(true, fn)
}

// EachName calls fn for every message as Each does, in the same order, without opening or
// looking at its file: Listed.File is nil, Date is zero and Size is -1. It is for a reader
// that learnt the rest from Each before; Unchanged tells whether the names still hold.
func (l *Listing) EachName(fn func(*Listed) error) error {
	return l.walk(false, fn)
}

// Unchanged reads the names in cur/ and new/ again and fails, with an error matching
// ErrChanged, unless they are the message files List found: none added, renamed (a flag
// set) or removed.
func (l *Listing) Unchanged() error {
	n := 0
	var changed string
	for _, s := range []int{subCur, subNew} {
		err := l.d.eachName(s, func(name string) {
			if changed != "" || name == "" || name[0] == '.' {
				return
			}
			n++
			base := baseOf(name)
			e, ok := l.files[keyOf(base)]
			if !ok || e.state&onDisk == 0 || (e.suffix&inNew != 0) != (s == subNew) || l.suffixes[e.suffix&^inNew] != name[len(base):] {
				changed = subNames[s] + "/" + name
			}
		})
		if err != nil {
			return err
		}
	}
	switch {
	case changed != "":
		return fmt.Errorf("%w: %s/%s was not there when it was listed", ErrChanged, l.d.path, changed)
	case n != l.Messages:
		return fmt.Errorf("%w: %s has %d message files, %d when it was listed", ErrChanged, l.d.path, n, l.Messages)
	}
	return nil
}

// walk is Each, opening each file when open is set, and EachName.
func (l *Listing) walk(open bool, fn func(*Listed) error) error {
	seen := 0
	var stop error
	if l.ul != nil {
		display := l.d.path + "/" + uidlistName
		_, err := scanUIDList(io.NewSectionReader(l.ul, 0, l.ulSize), func(line uidLine) error {
			e, ok := l.files[keyOf(line.base)]
			if !ok || e.state&onDisk == 0 {
				return nil // expunged: the uidlist still names it until Dovecot's next sync
			}
			if e.uid != line.uid {
				return fmt.Errorf("%w: %s lists %s as UID %d, not %d", ErrChanged, display, line.base, line.uid, e.uid)
			}
			seen++
			sub := subCur
			if e.suffix&inNew != 0 {
				sub = subNew
			}
			if err := l.emit(open, sub, line.base+l.suffixes[e.suffix&^inNew], line.uid, line.text, fn); err != nil {
				stop = err
				return err
			}
			return nil
		})
		if stop != nil {
			return stop
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrChanged, display, err)
		}
	}
	if seen != l.listed {
		return fmt.Errorf("%w: %s: %d listed files found again, want %d", ErrChanged, l.d.path, seen, l.listed)
	}
	for i, f := range l.unlisted {
		if err := l.emit(open, f.sub, f.name, l.next+uint32(i), "", fn); err != nil {
			return err
		}
	}
	return nil
}

// emit opens one message file, when open is set, and hands it to fn; line is its uidlist
// line, "" for a file the uidlist does not list.
func (l *Listing) emit(open bool, sub int, name string, uid uint32, line string, fn func(*Listed) error) error {
	if !open {
		m := &Listed{Sub: subNames[sub], Name: name, UID: uid, Size: -1, VSize: messageSize(name, line, 'W')}
		m.Flags, m.Keywords = l.flags(name)
		return fn(m)
	}
	display := l.d.path + "/" + subNames[sub] + "/" + name
	fd, err := safefs.Open(l.d.sub[sub], name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	switch err {
	case nil:
	case unix.ENOENT:
		return fmt.Errorf("%w: %s is gone", ErrChanged, display)
	case unix.ELOOP:
		return &unsafeError{display, "is a symlink (not followed)"}
	default:
		return fmt.Errorf("maildir: open %s: %w", display, err)
	}
	f := os.NewFile(uintptr(fd), display)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("maildir: stat %s: %w", display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &unsafeError{display, "is not a regular file (" + FileType(st.Mode) + ")"}
	}
	// Reads must block normally; O_NONBLOCK only kept the open from hanging on a FIFO.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_RDONLY); err != nil {
		return fmt.Errorf("maildir: fcntl %s: %w", display, err)
	}
	if s := messageSize(name, line, 'S'); s >= 0 && s != st.Size {
		return &notExactError{display, fmt.Sprintf("Dovecot takes its size to be %d bytes (S= in the name or dovecot-uidlist), but the file has %d", s, st.Size)}
	}
	m := &Listed{
		Sub: subNames[sub], Name: name, UID: uid,
		Date: time.Unix(st.Mtim.Sec, 0), Size: st.Size, VSize: messageSize(name, line, 'W'), File: f,
	}
	m.Flags, m.Keywords = l.flags(name)
	return fn(m)
}

// flags returns the system flag letters and the keywords Dovecot reads from a file's name.
func (l *Listing) flags(name string) (string, []string) {
	flags, letters := dovecotFlags(name)
	var kw []string
	for _, c := range letters {
		kw = append(kw, l.kw[c-'a'])
	}
	return flags, kw
}
