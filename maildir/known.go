package maildir

import (
	"crypto/sha256"
	"strconv"
	"strings"
)

// What a Writer knows of the messages a Maildir holds: every base name in cur/
// and new/, found by NewWriter or added since, so that a message written by an
// earlier run is recognised instead of written twice, also when its position
// in the source moved (Options.AnyPosition) or an earlier version named it
// after the source's mtime (undatedFile).

// baseKey identifies a base name: the first 16 bytes of its SHA-256. Two
// names that differ collide with probability 2^-128 per pair.
type baseKey [16]byte

func keyOf(base string) baseKey {
	sum := sha256.Sum256([]byte(base))
	return baseKey(sum[:16])
}

// knownFile is a message file of the Maildir, its base name aside.
type knownFile struct {
	uid    uint32 // its UID in the uidlist, 0 while it is not listed
	suffix uint32 // index in Writer.suffixes of the name after the base, inNew set when in new/
}

const inNew = 1 << 31

// file describes a file named base+suffix in subdirectory s, not yet listed.
func (w *Writer) file(suffix string, s int) knownFile {
	i, ok := w.suffixAt[suffix]
	if !ok {
		i = uint32(len(w.suffixes))
		w.suffixes = append(w.suffixes, suffix)
		w.suffixAt[suffix] = i
	}
	if s == subNew {
		i |= inNew
	}
	return knownFile{suffix: i}
}

// undatedFile returns the base name of a file in cur/ or new/ that differs
// from base, a name with the time part 0, only by its time part
// ("<secs>.M<usecs>"), or "" when there is none. The first call lists cur/
// and new/ once more: only a source with messages without a date of their
// own pays for it.
func (w *Writer) undatedFile(base string) (string, error) {
	const undatedHead = "0.M0"
	head, rest, ok := splitTime(base)
	if !ok || head != undatedHead {
		return "", nil
	}
	if w.undated == nil {
		w.undated = map[baseKey]string{}
		for _, s := range []int{subCur, subNew} {
			err := w.d.eachName(s, func(n string) {
				if head, rest, ok := splitTime(baseOf(n)); ok && head != undatedHead {
					// A copy: the head alone, not the whole name it is cut from.
					w.undated[keyOf(rest)] = strings.Clone(head)
				}
			})
			if err != nil {
				return "", err
			}
		}
	}
	if head, ok := w.undated[keyOf(rest)]; ok {
		return head + rest, nil
	}
	return "", nil
}

// splitTime splits a base name this Writer makes after its time part: head
// is "<secs>.M<usecs>", rest starts with "Q". ok is false for a name of
// another form.
func splitTime(base string) (head, rest string, ok bool) {
	digits := func(i int) int {
		for i < len(base) && '0' <= base[i] && base[i] <= '9' {
			i++
		}
		return i
	}
	dot := digits(0)
	if dot == 0 || !strings.HasPrefix(base[dot:], ".M") {
		return "", "", false
	}
	q := digits(dot + 2)
	if q == dot+2 || q == len(base) || base[q] != 'Q' {
		return "", "", false
	}
	return base[:q], base[q:], true
}

// splitPosition splits a base name this Writer makes around its position:
// head ends with "Q", rest starts with "X". ok is false for a name of
// another form.
func splitPosition(base string) (head string, pos int64, rest string, ok bool) {
	m := strings.Index(base, ".M")
	if m < 1 {
		return "", 0, "", false
	}
	q := m + 2
	for q < len(base) && '0' <= base[q] && base[q] <= '9' {
		q++
	}
	if q == m+2 || q == len(base) || base[q] != 'Q' {
		return "", 0, "", false
	}
	x := q + 1
	for x < len(base) && ('0' <= base[x] && base[x] <= '9' || x == q+1 && base[x] == '-') {
		x++
	}
	if x == len(base) || base[x] != 'X' {
		return "", 0, "", false
	}
	pos, err := strconv.ParseInt(base[q+1:x], 10, 64)
	if err != nil || strconv.FormatInt(pos, 10) != base[q+1:x] {
		return "", 0, "", false
	}
	return base[:q+1], pos, base[x:], true
}
