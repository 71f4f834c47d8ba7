// Package escape makes text that users chose safe to print for root. File and folder names,
// spool contents quoted in errors and anything else a user decides reach root's terminal, the
// cron mail and the line-oriented outputs that scripts read one line at a time (check's report,
// the plan). There, a control character could rewrite the screen (ESC, or CSI as the single
// byte 0x9b a VT220 obeys) and a newline could add a line of the user's own, such as a forged
// "OK: ... no problems" or a fake user row. This package is the one place that decides what is
// escaped, and how:
//
//   - newline and tab as \n and \t;
//   - every other C0 control (0x00-0x1f) and DEL (0x7f) as \xNN;
//   - a C1 control: a raw byte 0x80-0x9f that is not part of a valid UTF-8 character as \xNN,
//     and U+0080..U+009F encoded in UTF-8 as \u00NN.
//
// Everything else is kept as it is, printable UTF-8 and other bytes alike.
package escape

import (
	"io"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// Line returns s escaped for a field of one line: whatever it holds, it is printed as one line
// with no control character in it.
func Line(s string) string {
	if clean(s, false) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, false))
}

// Writer returns a writer that writes to w what it is given, escaped as Line escapes it except
// for newlines and tabs, which are the program's own layout: a stream of lines the program
// formats, as a safety net under Line for the fields it formats.
func Writer(w io.Writer) io.Writer { return writer{w} }

type writer struct{ w io.Writer }

func (e writer) Write(p []byte) (int, error) {
	s := string(p)
	if clean(s, true) {
		return e.w.Write(p)
	}
	if _, err := e.w.Write(appendEscaped(make([]byte, 0, len(p)+16), s, true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// clean reports whether s has nothing to escape (layout: newlines and tabs are kept).
func clean(s string, layout bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && !(layout && (c == '\n' || c == '\t')) || c == 0x7f || c >= 0x80 && c <= 0x9f || c == 0xc2 {
			return false
		}
	}
	return true
}

// appendEscaped appends s to dst with what the package comment lists escaped; with layout,
// newlines and tabs are kept.
func appendEscaped(dst []byte, s string, layout bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n' && !layout:
			dst = append(dst, `\n`...)
		case c == '\t' && !layout:
			dst = append(dst, `\t`...)
		case c < 0x20 && c != '\n' && c != '\t', c == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case c < 0x80:
			dst = append(dst, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				// Not part of a valid UTF-8 character: a raw byte.
				if c <= 0x9f {
					dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
				} else {
					dst = append(dst, c)
				}
			case r >= 0x80 && r <= 0x9f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
			default:
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return dst
}
