package escape

import (
	"bytes"
	"testing"
)

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"plain name", "plain name"},
		{"ünïcödé stays, ā too (c4 81)", "ünïcödé stays, ā too (c4 81)"},
		{"two\nlines", `two\nlines`},
		{"tab\there", `tab\there`},
		{"cr\rlf\r\n", `cr\x0dlf\x0d\n`},
		{"nul\x00 bel\a esc\x1b[2J", `nul\x00 bel\x07 esc\x1b[2J`},
		{"del\x7f", `del\x7f`},
		{"raw csi \x9b31m and \x80 \x9f", `raw csi \x9b31m and \x80 \x9f`},
		{"utf-8 csi \u009b31m and \u0085 \u0080", `utf-8 csi \u009b31m and \u0085 \u0080`},
		{"latin-1 \xe9t\xe9 kept", "latin-1 \xe9t\xe9 kept"},
		{"a lone \xc2 and \xc2\x41", "a lone \xc2 and \xc2\x41"},
		{"x\nOK: 1 users, 1 maildirs: no problems\n", `x\nOK: 1 users, 1 maildirs: no problems\n`},
	} {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriter(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"plain line\n", "plain line\n"},
		{"tab\tkept\n", "tab\tkept\n"},
		{"title \x1b]0;pwned\a here\n", `title \x1b]0;pwned\x07 here` + "\n"},
		{"clear \x1b[2J\r", `clear \x1b[2J\x0d`},
		{"del \x7f", `del \x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"raw c1 \x9b31m\n", `raw c1 \x9b31m` + "\n"},
		{"ünïcödé stays", "ünïcödé stays"},
	} {
		var b bytes.Buffer
		n, err := Writer(&b).Write([]byte(tt.in))
		if err != nil || n != len(tt.in) {
			t.Errorf("Write(%q) = %d, %v; want %d, nil", tt.in, n, err, len(tt.in))
		}
		if b.String() != tt.want {
			t.Errorf("Write(%q) wrote %q, want %q", tt.in, b.String(), tt.want)
		}
	}
}
