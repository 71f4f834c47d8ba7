package migrate

// IMAP folders: the mbox files beneath ~/mail become Maildir++ folders beneath ~/Maildir.
//
// What Dovecot 2.3.19 does, found by experiment with `mail_location = mbox:~/mail:INBOX=...`
// and `mail_location = maildir:~/Maildir` (LAYOUT=maildir++, no namespace settings):
//
//   - mbox stores a folder as a file named by its IMAP name in modified UTF-7 (RFC 3501), one
//     directory level per '/' ("Entwürfe/Alt" is the file Entw&APw-rfe/Alt); '&' is stored "&-".
//     Its LIST shows a file whose name is not valid modified UTF-7 literally: raw UTF-8 "Über"
//     as "Über", "bad&mutf" as "bad&mutf" (though it cannot then open them).
//   - Maildir++ stores the same folder as the directory ".Entw&APw-rfe.Alt": a dot, then the
//     levels in modified UTF-7 joined by '.', the hierarchy separator. So '.' inside an mbox
//     folder name becomes a hierarchy level: mbox "a.b" is Maildir++ ".a.b", listed as "a.b"
//     under the default separator '.', but as "a/b" where the namespace sets `separator = /`
//     (and Dovecot refuses to create "a.b" at all there, unless the listescape plugin is on).
//     '~', '%', '#', '\', '"', ' ' and '&' are kept, '&' encoded as in mbox.
//   - Dovecot refuses a name that begins with '~' ("Begins with '~'") or with the separator,
//     so an mbox file "~x" or ".x" has no Maildir++ equivalent; its mbox LIST shows "~x" but
//     cannot open it either.
//   - The mbox LIST hides "*.lock" dotlocks, ".imap/" (its index), ".subscriptions" and the
//     INBOX file; it shows empty directories as \Noselect folders, which Maildir++ cannot have.
//   - Both keep subscriptions in the same format: "V\t2\n\n", then one name per line, in
//     modified UTF-7, with a tab between hierarchy levels ("x\ty" for "x/y"), INBOX as "INBOX",
//     subscriptions to folders that do not exist kept. The mbox file is ~/mail/.subscriptions,
//     the Maildir one ~/Maildir/subscriptions. Files from before the "V 2" header hold one
//     name per line with the separator itself ('/' for mbox).
//
// UW-IMAP keeps subscriptions in ~/.mailboxlist: one name per line as the client sent it
// (modified UTF-7, '/' between levels), relative to the home directory, so a folder of the
// ~/mail root appears there as "mail/Name".

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
	"github.com/maildirmig/maildirmig/maildir"
)

// Folder is one mbox folder found beneath a folder root (~/mail).
type Folder struct {
	Name    string // IMAP name as the mbox's clients saw it, UTF-8, '/' between levels: "Archive/2019"
	Source  string // path of the mbox file relative to the folder root, as stored: "Archive/2019"
	Maildir string // Maildir++ directory beneath the main Maildir: ".Archive.2019"
	Size    int64  // size of the mbox file when it was found
}

// SkippedFolder is an entry beneath a folder root that may hold mail but is not migrated.
// Dovecot's and UW-IMAP's own control files are not reported.
type SkippedFolder struct {
	Source string // path relative to the folder root
	Reason string
}

// maxFolderDepth bounds the recursion; Dovecot's own limit on hierarchy levels is 16.
const maxFolderDepth = 16

// discoverFolders lists the mbox folders beneath the directory rootfd (the folder root, for
// instance ~/mail, opened by the caller), sorted by Name. Nothing is followed: symlinks,
// FIFOs, devices and sockets are skipped and reported; so are entries whose names Maildir++
// cannot hold (see maildirFolderName), files that would land on a Maildir++ directory already
// taken, and a top-level file named INBOX, which Dovecot hides behind the real INBOX.
// Dovecot's index and control files (.imap/, dovecot.index*, dovecot-uidlist...), its and
// UW-IMAP's subscription lists and dotlocks (*.lock) are not mail and are skipped silently;
// so are directories holding no mbox file. Files are not read: whether each is an mbox is for
// the conversion to find out.
func discoverFolders(rootfd int) ([]Folder, []SkippedFolder, error) {
	w := &folderWalk{}
	if err := w.dir(rootfd, nil, 0); err != nil {
		return nil, nil, err
	}
	sort.Slice(w.folders, func(i, j int) bool { return w.folders[i].Name < w.folders[j].Name })
	// A collision is decided by name order rather than directory order, so that every run
	// keeps the same one of two colliding folders.
	var folders []Folder
	taken := make(map[string]string) // Maildir++ name → Source
	for _, f := range w.folders {
		if other, ok := taken[f.Maildir]; ok {
			w.skip(f.Source, fmt.Sprintf("its Maildir++ folder %s is already that of %s", f.Maildir, other))
			continue
		}
		taken[f.Maildir] = f.Source
		folders = append(folders, f)
	}
	sort.Slice(w.skipped, func(i, j int) bool { return w.skipped[i].Source < w.skipped[j].Source })
	return folders, w.skipped, nil
}

type folderWalk struct {
	folders []Folder
	skipped []SkippedFolder
}

func (w *folderWalk) skip(source, reason string) {
	w.skipped = append(w.skipped, SkippedFolder{Source: source, Reason: reason})
}

// dir walks the directory dirfd, whose path beneath the root is the list of stored names
// parents.
func (w *folderWalk) dir(dirfd int, parents []string, depth int) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return fmt.Errorf("migrate: folders: %s: %w", sourcePath(parents, "."), err)
	}
	for _, name := range names {
		if controlFile(name, depth) {
			continue
		}
		source := sourcePath(parents, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // gone since the listing: a lock file or a folder being deleted
			}
			return fmt.Errorf("migrate: folders: stat %s: %w", source, err)
		}
		if strings.HasPrefix(name, ".") {
			w.skip(source, "a name beginning with '.' has no Maildir++ equivalent")
			continue
		}
		level, err := folderLevel(name)
		if err != nil {
			w.skip(source, err.Error())
			continue
		}
		levels := append(append([]string(nil), parents...), name)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if depth == 0 && strings.EqualFold(level, "INBOX") {
				w.skip(source, "Dovecot shows the INBOX instead of this file")
				continue
			}
			imapName := imapNameOf(levels)
			dirName, err := maildirFolderName(imapName)
			if err != nil {
				w.skip(source, err.Error())
				continue
			}
			w.folders = append(w.folders, Folder{Name: imapName, Source: source, Maildir: dirName, Size: st.Size})
		case unix.S_IFDIR:
			if depth+1 >= maxFolderDepth {
				w.skip(source, fmt.Sprintf("more than %d levels deep", maxFolderDepth))
				continue
			}
			fd, err := safefs.OpenDir(dirfd, name)
			if err != nil {
				if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
					w.skip(source, "replaced while it was read")
					continue
				}
				return fmt.Errorf("migrate: folders: open %s: %w", source, err)
			}
			err = w.dir(fd, levels, depth+1)
			unix.Close(fd)
			if err != nil {
				return err
			}
		case unix.S_IFLNK:
			w.skip(source, "a symlink, not followed")
		default:
			w.skip(source, "not a regular file")
		}
	}
	return nil
}

// controlFile reports whether name is one of the files Dovecot or UW-IMAP keep beside mbox
// folders for themselves.
func controlFile(name string, depth int) bool {
	switch {
	case name == ".imap", name == ".subscriptions", name == ".mailboxlist":
		return true
	case strings.HasPrefix(name, "dovecot.index"), strings.HasPrefix(name, "dovecot.list.index"),
		strings.HasPrefix(name, "dovecot-uidvalidity"), name == "dovecot-uidlist", name == "dovecot-keywords":
		return true
	case strings.HasSuffix(name, ".lock"), strings.HasPrefix(name, ".temp."):
		return true // dotlocks and Dovecot's temporary files
	}
	return false
}

// readDirNames lists the directory dirfd without disturbing the caller's descriptor.
func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func sourcePath(parents []string, name string) string {
	if len(parents) == 0 {
		return name
	}
	return strings.Join(parents, "/") + "/" + name
}

// folderLevel decodes one stored level of an mbox folder path the way Dovecot's LIST shows
// it: modified UTF-7 when it is valid, else the bytes themselves when they are UTF-8.
func folderLevel(stored string) (string, error) {
	if s, err := DecodeMUTF7(stored); err == nil {
		return s, nil
	}
	if utf8.ValidString(stored) && !strings.ContainsFunc(stored, isControl) {
		return stored, nil
	}
	return "", fmt.Errorf("name %q is neither modified UTF-7 nor UTF-8", stored)
}

func imapNameOf(stored []string) string {
	levels := make([]string, len(stored))
	for i, s := range stored {
		levels[i], _ = folderLevel(s)
	}
	return strings.Join(levels, "/")
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// maildirFolderName returns the Maildir++ directory that Dovecot 2.3 (maildir:~/Maildir,
// the default LAYOUT=maildir++) uses for the IMAP folder imapName, given with '/' between
// hierarchy levels as mbox clients see it: a '.', then the levels in modified UTF-7 joined by
// '.' ("Entwürfe/Alt" → ".Entw&APw-rfe.Alt"). A '.' inside a level becomes a hierarchy level
// of its own, as Dovecot's default separator makes it. It refuses INBOX, empty levels, a
// level beginning with '~' or '.', control characters, and names longer than a file name
// may be.
func maildirFolderName(imapName string) (string, error) {
	if imapName == "" {
		return "", errors.New("migrate: empty folder name")
	}
	if strings.EqualFold(imapName, "INBOX") {
		return "", errors.New("migrate: INBOX is the Maildir itself, not a folder")
	}
	if !utf8.ValidString(imapName) {
		return "", fmt.Errorf("migrate: folder name %q is not UTF-8", imapName)
	}
	var b strings.Builder
	for _, level := range strings.Split(imapName, "/") {
		if level == "" {
			return "", fmt.Errorf("migrate: folder name %q has an empty level", imapName)
		}
		// Dovecot's checks apply to the levels it will see, those between the dots.
		for _, sub := range strings.Split(level, ".") {
			switch {
			case sub == "":
				return "", fmt.Errorf("migrate: folder name %q would give Maildir++ an empty level", imapName)
			case strings.HasPrefix(sub, "~"):
				return "", fmt.Errorf("migrate: folder name %q has a level beginning with '~', which Dovecot refuses", imapName)
			case strings.ContainsFunc(sub, isControl):
				return "", fmt.Errorf("migrate: folder name %q holds a control character", imapName)
			}
		}
		b.WriteByte('.')
		b.WriteString(encodeMUTF7(level))
	}
	if b.Len() > 255 {
		return "", fmt.Errorf("migrate: folder name %q is too long for a Maildir++ directory", imapName)
	}
	return b.String(), nil
}

// mutf7 is RFC 3501's base64 alphabet: ',' instead of '/', no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes s in IMAP's modified UTF-7 (RFC 3501 5.1.3), the charset of mailbox
// names on the wire and in Dovecot's files.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		units := utf16.Encode(run)
		raw := make([]byte, 2*len(units))
		for i, u := range units {
			raw[2*i], raw[2*i+1] = byte(u>>8), byte(u)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes IMAP's modified UTF-7. It is strict, as Dovecot is: only printable
// ASCII outside shifts, no shift that encodes printable ASCII, no empty or unterminated
// shift, no stray bits, no unpaired surrogate.
func DecodeMUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("migrate: modified UTF-7: byte %#x outside a shift", c)
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New("migrate: modified UTF-7: unterminated shift")
		}
		enc := s[i+1 : i+1+end]
		i += end + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		// Go's base64 skips '\r' and '\n'; a mailbox name may not hold them anywhere.
		if strings.ContainsFunc(enc, func(r rune) bool { return !isMUTF7Base64(r) }) {
			return "", fmt.Errorf("migrate: modified UTF-7: bad shift %q", enc)
		}
		raw, err := mutf7.Strict().DecodeString(enc)
		if err != nil || len(raw) == 0 || len(raw)%2 != 0 {
			return "", fmt.Errorf("migrate: modified UTF-7: bad shift %q", enc)
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for j := 0; j < len(units); j++ {
			u := units[j]
			var r rune
			switch {
			case utf16.IsSurrogate(rune(u)):
				if j+1 >= len(units) {
					return "", fmt.Errorf("migrate: modified UTF-7: unpaired surrogate in %q", enc)
				}
				r = utf16.DecodeRune(rune(u), rune(units[j+1]))
				j++
				if r == utf8.RuneError {
					return "", fmt.Errorf("migrate: modified UTF-7: unpaired surrogate in %q", enc)
				}
			case u >= 0x20 && u <= 0x7e:
				return "", fmt.Errorf("migrate: modified UTF-7: shift %q encodes printable ASCII", enc)
			default:
				r = rune(u)
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// beneathError words an error of safefs opening path beneath a folder root or home: a
// symlink or a file where a directory should be is unsafe (maildir.ErrUnsafe).
func beneathError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		err = fmt.Errorf("%w: %s: a symlink or not a directory on the way", maildir.ErrUnsafe, path)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("migrate: open %s: bad path", path)
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

func isMUTF7Base64(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == ','
}

// openBeneath opens the regular file at path (levels separated by '/', no "..") beneath the
// directory dirfd for reading, following no symlink at any level, and without blocking on a
// FIFO. It is how the caller opens a Folder's Source beneath the folder root, or a
// subscription list.
func openBeneath(dirfd int, path string) (*os.File, error) {
	fd, err := safefs.Open(dirfd, path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, beneathError(path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("migrate: %s: %w: not a regular file", path, maildir.ErrUnsafe)
	}
	// Reads must block normally on a regular file; O_NONBLOCK only guarded the open.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_RDONLY); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openFolder opens, creating it when missing, the Maildir++ folder dirName (as returned by
// maildirFolderName) beneath the Maildir parent, with the empty "maildirfolder" file that
// marks a Maildir++ folder for Maildir++ deliverers (maildrop, Courier deliverquota).
func openFolder(parent *maildir.Dir, dirName string) (*maildir.Dir, error) {
	if len(dirName) < 2 || dirName[0] != '.' || dirName == ".." || strings.ContainsAny(dirName, "/\x00") {
		return nil, fmt.Errorf("migrate: %q is not a Maildir++ folder name", dirName)
	}
	d, err := maildir.OpenAt(parent.FD(), dirName, true)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.FD(), "maildirfolder", unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			err = fmt.Errorf("%w: not a regular file", maildir.ErrUnsafe)
		}
		unix.Close(fd)
	} else if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w: a symlink", maildir.ErrUnsafe)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("migrate: %s/maildirfolder: %w", d.Path(), err)
	}
	return d, nil
}

// subscriptionsV2 is the header of Dovecot's subscription files since 2.2.
const subscriptionsV2 = "V\t2\n\n"

// readSubscriptions reads Dovecot's mbox subscription file (~/mail/.subscriptions) and
// returns the subscribed IMAP names, in UTF-8 with '/' between hierarchy levels, in file
// order. Files older than the "V 2" header hold names with mbox's separator, '/'.
func readSubscriptions(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("migrate: subscriptions: %w", err)
	}
	sep := "/"
	if rest, ok := bytes.CutPrefix(data, []byte(subscriptionsV2)); ok {
		data, sep = rest, "\t"
	} else if rest, ok := bytes.CutPrefix(data, []byte("V\t2\n")); ok {
		data, sep = rest, "\t"
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		levels := strings.Split(line, sep)
		for i, l := range levels {
			levels[i], _ = folderLevel(l)
		}
		names = append(names, strings.Join(levels, "/"))
	}
	return names, nil
}

// readMailboxList reads UW-IMAP's ~/.mailboxlist and returns the subscribed names that lie
// beneath the folder root prefix (relative to the home directory, for instance "mail"),
// without it, plus INBOX, in UTF-8 with '/' between levels. Names outside the root are
// returned in others.
func readMailboxList(r io.Reader, prefix string) (names, others []string, err error) {
	prefix = strings.Trim(prefix, "/") + "/"
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		name := strings.TrimPrefix(line, "~/")
		switch {
		case line == "":
		case strings.EqualFold(name, "INBOX"):
			names = append(names, "INBOX")
		case strings.HasPrefix(name, prefix) && len(name) > len(prefix):
			levels := strings.Split(name[len(prefix):], "/")
			for i, l := range levels {
				levels[i], _ = folderLevel(l)
			}
			names = append(names, strings.Join(levels, "/"))
		default:
			others = append(others, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("migrate: mailboxlist: %w", err)
	}
	return names, others, nil
}

// subscriptionLine is the line of a Maildir++ subscriptions file for the IMAP name name: its
// Maildir++ levels in modified UTF-7, tab-separated. ok is false for a name no Maildir++
// folder can have.
func subscriptionLine(name string) (string, bool) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", true
	}
	dir, err := maildirFolderName(name)
	if err != nil {
		return "", false
	}
	return strings.ReplaceAll(dir[1:], ".", "\t"), true
}

// writeSubscriptions gives the Maildir d the subscriptions names (IMAP names, '/' between
// levels), in Dovecot's format: exactly those, or with merge (a Maildir its user has) added
// to every subscription it holds already. The file is replaced atomically (written beside it,
// synced, renamed) through d's descriptor and never through a symlink, and only when that
// changes it. Names that no Maildir++ folder can have are left out.
func writeSubscriptions(d *maildir.Dir, names []string, exact bool) error {
	var lines, had []string
	seen := make(map[string]bool)
	add := func(line string) {
		if line != "" && !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	old, err := openBeneath(d.FD(), "subscriptions")
	switch {
	case err == nil:
		data, err := io.ReadAll(io.LimitReader(old, 16<<20))
		old.Close()
		if err != nil {
			return fmt.Errorf("migrate: %s/subscriptions: %w", d.Path(), err)
		}
		if rest, ok := bytes.CutPrefix(data, []byte(subscriptionsV2)); ok {
			for _, line := range strings.Split(string(rest), "\n") {
				add(line)
			}
		} else {
			for _, line := range strings.Split(string(data), "\n") {
				// A pre-"V 2" Maildir++ file separates levels with '.', as the namespace did.
				add(strings.ReplaceAll(line, ".", "\t"))
			}
		}
	case errors.Is(err, unix.ENOENT):
		if exact && len(names) == 0 {
			return nil
		}
	default:
		return fmt.Errorf("migrate: %s: %w", d.Path(), err)
	}
	if exact {
		had, lines = lines, nil
		clear(seen)
	}
	before := len(lines)
	for _, name := range names {
		if line, ok := subscriptionLine(name); ok {
			add(line)
		}
	}
	if !exact && len(lines) == before || exact && slices.Equal(lines, had) {
		return nil
	}
	var buf bytes.Buffer
	buf.WriteString(subscriptionsV2)
	for _, line := range lines {
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	return replaceFile(d, "subscriptions", buf.Bytes())
}

// replaceFile writes data to a new file beside name in d and renames it over name.
func replaceFile(d *maildir.Dir, name string, data []byte) error {
	tmp := fmt.Sprintf(".%s.maildirmig.%d", name, os.Getpid())
	fd, err := unix.Openat(d.FD(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		// Left by a run that died: ours by its name, and a symlink is only unlinked, never followed.
		if err = unix.Unlinkat(d.FD(), tmp, 0); err == nil {
			fd, err = unix.Openat(d.FD(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: %s/%s: %w", d.Path(), tmp, err)
	}
	f := os.NewFile(uintptr(fd), d.Path()+"/"+tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.FD(), tmp, d.FD(), name)
	}
	if err != nil {
		unix.Unlinkat(d.FD(), tmp, 0)
		return fmt.Errorf("migrate: %s/%s: %w", d.Path(), name, err)
	}
	if err := unix.Fsync(d.FD()); err != nil {
		return fmt.Errorf("migrate: %s: %w", d.Path(), err)
	}
	return nil
}

// String names a folder for the plan and the audit log: "Archive/2019 (Archive/2019, 1234 bytes)".
func (f Folder) String() string {
	return f.Name + " (" + f.Source + ", " + strconv.FormatInt(f.Size, 10) + " bytes)"
}
