package maildir

import (
	"fmt"
	"strconv"
	"strings"
)

// Name is a parsed Maildir message file name.
type Name struct {
	Base    string // before ":" (the whole name when there is no info)
	Time    int64  // leading decimal seconds, -1 if the name does not start with digits
	Size    int64  // S= value, -1 when absent
	VSize   int64  // W= value, -1 when absent
	Info    string // after ':' ("2,FS" ...), "" when none
	HasInfo bool
	Flags   string // letters after "2,"
}

// ParseName parses a message file name; the error says why a name is invalid
// (empty, starts with '.', contains '/' or a control character, more than one
// ':', info not "2,..." or "1,...", flags not in ASCII order or repeated, S=/W=
// not a number...).
func ParseName(name string) (Name, error) {
	n := Name{Time: -1, Size: -1, VSize: -1}
	switch {
	case name == "":
		return n, fmt.Errorf("maildir: invalid name: empty")
	case name[0] == '.':
		return n, fmt.Errorf("maildir: invalid name %q: starts with '.'", name)
	case strings.Contains(name, "/"):
		return n, fmt.Errorf("maildir: invalid name %q: contains '/'", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return n, fmt.Errorf("maildir: invalid name %q: contains control character %#02x", name, name[i])
		}
	}
	if strings.Count(name, ":") > 1 {
		return n, fmt.Errorf("maildir: invalid name %q: more than one ':'", name)
	}
	n.Base = name
	if i := strings.IndexByte(name, ':'); i >= 0 {
		n.Base, n.Info, n.HasInfo = name[:i], name[i+1:], true
		if n.Base == "" {
			return n, fmt.Errorf("maildir: invalid name %q: empty before ':'", name)
		}
		switch {
		case strings.HasPrefix(n.Info, "2,"):
			n.Flags = n.Info[2:]
			for j := 0; j < len(n.Flags); j++ {
				c := n.Flags[j]
				if c == ',' {
					return n, fmt.Errorf("maildir: invalid name %q: ',' among the flags", name)
				}
				if j > 0 && c <= n.Flags[j-1] {
					if c == n.Flags[j-1] {
						return n, fmt.Errorf("maildir: invalid name %q: flag %c repeated", name, c)
					}
					return n, fmt.Errorf("maildir: invalid name %q: flags %q not in ASCII order", name, n.Flags)
				}
			}
		case strings.HasPrefix(n.Info, "1,"):
		default:
			return n, fmt.Errorf("maildir: invalid name %q: info %q is not \"2,<flags>\" or \"1,...\"", name, n.Info)
		}
	}
	digits := 0
	for digits < len(n.Base) && n.Base[digits] >= '0' && n.Base[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		t, err := strconv.ParseInt(n.Base[:digits], 10, 64)
		if err != nil {
			return n, fmt.Errorf("maildir: invalid name %q: time %s out of range", name, n.Base[:digits])
		}
		n.Time = t
	}
	// Size fields follow the first ',' of the base, as Dovecot reads them.
	if i := strings.IndexByte(n.Base, ','); i >= 0 {
		for _, f := range strings.Split(n.Base[i+1:], ",") {
			var dst *int64
			switch {
			case strings.HasPrefix(f, "S="):
				dst = &n.Size
			case strings.HasPrefix(f, "W="):
				dst = &n.VSize
			default:
				continue
			}
			if *dst >= 0 {
				return n, fmt.Errorf("maildir: invalid name %q: %c= given twice", name, f[0])
			}
			v, err := parseDecimal(f[2:])
			if err != nil {
				return n, fmt.Errorf("maildir: invalid name %q: %c=%s is not a number", name, f[0], f[2:])
			}
			*dst = v
		}
	}
	if n.Size >= 0 && n.VSize >= 0 && n.VSize < n.Size {
		return n, fmt.Errorf("maildir: invalid name %q: W=%d smaller than S=%d", name, n.VSize, n.Size)
	}
	return n, nil
}

// parseDecimal accepts only plain decimal digits (no sign, no spaces).
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// escapeHost makes a host name safe inside a Maildir name: '/' becomes
// `\057` and ':' becomes `\072`, as the Maildir convention asks, and ',' becomes
// `\054` so that a host name can never fake an S= or W= field.
func escapeHost(host string) string {
	if !strings.ContainsAny(host, "/:,") {
		return host
	}
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		switch c := host[i]; c {
		case '/':
			b.WriteString(`\057`)
		case ':':
			b.WriteString(`\072`)
		case ',':
			b.WriteString(`\054`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// flagString validates system flags and maps keywords to letters, giving the
// info flags in ASCII order; keywords not yet in dovecot-keywords get a letter.
func (w *Writer) flagString(m *Message) (string, error) {
	return infoFlags(m, w.keywordIndex)
}

// infoFlags validates m's system flags and maps its keywords to letters
// through letter, giving the info flags in ASCII order. A keyword letter has
// no letter for is left out.
func infoFlags(m *Message, letter func(string) (int, bool)) (string, error) {
	var set [128]bool
	for i := 0; i < len(m.Flags); i++ {
		c := m.Flags[i]
		if !strings.ContainsRune("DFPRST", rune(c)) {
			return "", fmt.Errorf("maildir: flag %q is not one of DFPRST", c)
		}
		set[c] = true
	}
	for _, k := range m.Keywords {
		i, ok := letter(k)
		if ok {
			set['a'+i] = true
		}
	}
	var b strings.Builder
	for c := range set {
		if set[c] {
			b.WriteByte(byte(c))
		}
	}
	return b.String(), nil
}
