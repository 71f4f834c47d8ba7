package mbox

import (
	"bytes"
	"time"
)

var fromPrefix = []byte("From ")

// ParseFromLine parses a From_ line (with or without its line end). ok is false when the line
// is not "From " + sender + asctime date, as Postfix, Dovecot, UW c-client and sendmail write
// it: "Www Mmm dd hh:mm[:ss] [zone] yyyy [extra]" with one or more spaces between fields, and
// any text after the year ignored ("remote from x"). Dovecot's alternative form "Www, dd Mmm
// yyyy hh:mm:ss" is accepted too. The date is read in loc (nil means time.Local) unless a
// numeric offset ("+0200") follows the year, or the time of the alternative form. A zone
// before the year, a name ("MET", "PST") or even a number, is ignored: Dovecot ignores it and
// shows the time as local time, and users must see the received dates Dovecot showed them.
//
// The sender is the first word after "From ", or a quoted string and what follows it up to the
// next space, as Dovecot reads it; it may be empty when two spaces follow "From".
func ParseFromLine(line []byte, loc *time.Location) (sender string, date time.Time, ok bool) {
	end, date, ok := parseFrom(line, loc)
	if !ok {
		return "", time.Time{}, false
	}
	return string(line[len(fromPrefix):end]), date, true
}

// parseFrom is ParseFromLine without the allocation of the sender: it returns where the sender
// ends in line.
func parseFrom(line []byte, loc *time.Location) (senderEnd int, date time.Time, ok bool) {
	line = trimEOL(line)
	if !bytes.HasPrefix(line, fromPrefix) {
		return 0, time.Time{}, false
	}
	i := len(fromPrefix)
	if i < len(line) && line[i] == '"' {
		i++
		for esc := false; ; i++ {
			if i >= len(line) {
				return 0, time.Time{}, false
			}
			if line[i] == '"' && !esc {
				i++
				break
			}
			esc = line[i] == '\\' && !esc
		}
	}
	for i < len(line) && line[i] != ' ' {
		i++
	}
	date, ok = parseAsctime(line[i:], loc)
	return i, date, ok
}

func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// fields splits s at runs of spaces into at most len(dst) words.
func fields(s []byte, dst [][]byte) int {
	n := 0
	for n < len(dst) {
		for len(s) > 0 && s[0] == ' ' {
			s = s[1:]
		}
		if len(s) == 0 {
			break
		}
		j := bytes.IndexByte(s, ' ')
		if j < 0 {
			j = len(s)
		}
		dst[n] = s[:j]
		n++
		s = s[j:]
	}
	return n
}

func parseAsctime(s []byte, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.Local
	}
	var buf [8][]byte
	f := buf[:fields(s, buf[:])]
	if len(f) < 4 {
		return time.Time{}, false
	}
	wd := f[0]
	if len(wd) == 4 && wd[3] == ',' {
		return parseAltStamp(f, loc)
	}
	if len(wd) != 3 || lookup3(weekdays, wd) < 0 {
		return time.Time{}, false
	}
	mon := lookup3(months, f[1])
	if len(f[1]) != 3 || mon < 0 {
		return time.Time{}, false
	}
	day, ok := number(f[2], 1, 2)
	if !ok || day < 1 || day > 31 {
		return time.Time{}, false
	}
	h, m, sec, ok := clock(f[3])
	if !ok {
		return time.Time{}, false
	}
	rest := f[4:]
	if len(rest) == 0 {
		return time.Time{}, false
	}
	if _, isYear := number(rest[0], 4, 4); !isYear {
		// The zone before the year, which Dovecot ignores.
		rest = rest[1:]
		if len(rest) == 0 {
			return time.Time{}, false
		}
	}
	year, ok := number(rest[0], 4, 4)
	if !ok {
		return time.Time{}, false
	}
	zone := loc
	if len(rest) > 1 {
		if z, ok := numericZone(rest[1]); ok {
			zone = z
		}
	}
	return time.Date(year, time.Month(mon+1), day, h, m, sec, 0, zone), true
}

// parseAltStamp reads "Www, dd Mmm yyyy hh:mm:ss", which Dovecot also accepts.
func parseAltStamp(f [][]byte, loc *time.Location) (time.Time, bool) {
	if len(f) < 5 || lookup3(weekdays, f[0][:3]) < 0 {
		return time.Time{}, false
	}
	day, ok := number(f[1], 1, 2)
	if !ok || day < 1 || day > 31 {
		return time.Time{}, false
	}
	mon := lookup3(months, f[2])
	if len(f[2]) != 3 || mon < 0 {
		return time.Time{}, false
	}
	year, ok := number(f[3], 4, 4)
	if !ok {
		return time.Time{}, false
	}
	h, m, sec, ok := clock(f[4])
	if !ok {
		return time.Time{}, false
	}
	zone := loc
	if len(f) > 5 {
		if z, ok := numericZone(f[5]); ok {
			zone = z
		}
	}
	return time.Date(year, time.Month(mon+1), day, h, m, sec, 0, zone), true
}

var (
	weekdays = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	months   = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func lookup3(names []string, b []byte) int {
	if len(b) != 3 {
		return -1
	}
	for i, n := range names {
		if bytes.EqualFold([]byte(n), b) {
			return i
		}
	}
	return -1
}

// number parses a decimal of min to max digits.
func number(b []byte, min, max int) (int, bool) {
	if len(b) < min || len(b) > max {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// clock parses h:mm or hh:mm with optional :ss.
func clock(b []byte) (h, m, s int, ok bool) {
	parts := bytes.Split(b, []byte{':'})
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, false
	}
	if h, ok = number(parts[0], 1, 2); !ok || h > 23 {
		return 0, 0, 0, false
	}
	if m, ok = number(parts[1], 2, 2); !ok || m > 59 {
		return 0, 0, 0, false
	}
	if len(parts) == 3 {
		if s, ok = number(parts[2], 2, 2); !ok || s > 60 {
			return 0, 0, 0, false
		}
	}
	return h, m, s, true
}

func isNumericZone(b []byte) bool {
	if len(b) != 5 || (b[0] != '+' && b[0] != '-') {
		return false
	}
	_, ok := number(b[1:], 4, 4)
	return ok
}

// numericZone reads a numeric offset such as "+0200" or "-0700".
func numericZone(b []byte) (*time.Location, bool) {
	if !isNumericZone(b) {
		return nil, false
	}
	hh, _ := number(b[1:3], 2, 2)
	mm, _ := number(b[3:5], 2, 2)
	off := (hh*60 + mm) * 60
	if b[0] == '-' {
		off = -off
	}
	if off == 0 {
		return time.UTC, true
	}
	return time.FixedZone(string(b), off), true
}
