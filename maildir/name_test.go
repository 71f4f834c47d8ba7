package maildir

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		want Name
	}{
		{"1700000000.M12Q3X0123456789abcdef.host,S=100,W=104:2,FS",
			Name{Base: "1700000000.M12Q3X0123456789abcdef.host,S=100,W=104", Time: 1700000000, Size: 100, VSize: 104, Info: "2,FS", HasInfo: true, Flags: "FS"}},
		{"1700000000.M12Q3X01.host,S=100,W=104", Name{Base: "1700000000.M12Q3X01.host,S=100,W=104", Time: 1700000000, Size: 100, VSize: 104}},
		{"1.2.h:2,", Name{Base: "1.2.h", Time: 1, Size: -1, VSize: -1, Info: "2,", HasInfo: true}},
		{"1.2.h:2,Sab", Name{Base: "1.2.h", Time: 1, Size: -1, VSize: -1, Info: "2,Sab", HasInfo: true, Flags: "Sab"}},
		{"1.2.h:1,anything", Name{Base: "1.2.h", Time: 1, Size: -1, VSize: -1, Info: "1,anything", HasInfo: true}},
		{"abc", Name{Base: "abc", Time: -1, Size: -1, VSize: -1}},
		{"12.h,S=5", Name{Base: "12.h,S=5", Time: 12, Size: 5, VSize: -1}},
		{"12.h,W=7,X=1", Name{Base: "12.h,W=7,X=1", Time: 12, Size: -1, VSize: 7}},
		{`12.a\057b\072c,S=5,W=5:2,T`, Name{Base: `12.a\057b\072c,S=5,W=5`, Time: 12, Size: 5, VSize: 5, Info: "2,T", HasInfo: true, Flags: "T"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseName(c.name)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseNameInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, why string }{
		{"", "empty"},
		{".hidden", "starts with '.'"},
		{"a/b", "contains '/'"},
		{"a:2,S:2,", "more than one ':'"},
		{"a:3,S", "info"},
		{"a:", "info"},
		{":2,S", "empty before"},
		{"a:2,SF", "ASCII order"},
		{"a:2,SS", "repeated"},
		{"a:2,S,T", "','"},
		{"1.h,S=x", "not a number"},
		{"1.h,S=", "not a number"},
		{"1.h,S=-1", "not a number"},
		{"1.h,W=1 ", "not a number"},
		{"1.h,S=5,S=6", "twice"},
		{"1.h,S=10,W=9", "smaller"},
		{"1.h\nx", "control"},
		{"99999999999999999999.h", "out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseName(c.name)
			if err == nil {
				t.Fatalf("ParseName(%q) succeeded", c.name)
			}
			if !strings.Contains(err.Error(), c.why) || !strings.HasPrefix(err.Error(), "maildir: ") {
				t.Errorf("error %q does not say %q", err, c.why)
			}
		})
	}
}

func TestEscapeHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"mail.example.org": "mail.example.org",
		"a/b:c,d":          `a\057b\072c\054d`,
		"a b\nc\x7f":       `a\040b\012c\177`,
	} {
		if got := escapeHost(in); got != want {
			t.Errorf("escapeHost(%q) = %q, want %q", in, got, want)
		}
		if _, err := ParseName("1.M1." + escapeHost(in) + ",S=1,W=1:2,S"); err != nil {
			t.Errorf("escaped host %q gives invalid name: %v", in, err)
		}
		name := "1.M1Q0X0123456789abcdef." + escapeHost(in) + ",S=1,W=1:2,S"
		if _, ok := ParseOwn(name); !ok {
			t.Errorf("ParseOwn does not take %q, a name a Writer on host %q gives", name, in)
		}
	}
}

// TestParseOwnRefusesWhitespace: a name of a Writer's form with a space, a line end or another
// control character in it was made by someone else (a user who wants it written as lines of
// dovecot-uidlist or of root's records), and is not taken for one of ours.
func TestParseOwnRefusesWhitespace(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"h\n7 7 forged\n8", "h 1 2", "h\t", "h\r", "h\x00", "h\x7f", "h\x1b[2J"} {
		name := "1704193200.M0Q0X0123456789abcdef." + host + ",S=89,W=94:2,S"
		if o, ok := ParseOwn(name); ok {
			t.Errorf("ParseOwn(%q) = %+v, true; want false", name, o)
		}
	}
	if _, ok := ParseOwn("1704193200.M0Q0X0123456789abcdef.h,S=89,W=94:2,S"); !ok {
		t.Error("ParseOwn refuses a plain name of ours")
	}
}

// FuzzParseName checks that ParseName never panics and that what it accepts
// splits the name without losing a byte.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"1700000000.M1Q2X0123.h,S=5,W=6:2,FS", "a:1,x", "1.h,S=1,W=", ".x", "a:2,ba"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		joined := n.Base
		if n.HasInfo {
			joined += ":" + n.Info
		}
		if joined != s {
			t.Errorf("ParseName(%q) splits into %q and %q", s, n.Base, n.Info)
		}
		if n.HasInfo && strings.HasPrefix(n.Info, "2,") && n.Flags != n.Info[2:] {
			t.Errorf("ParseName(%q): flags %q", s, n.Flags)
		}
		if strings.ContainsAny(s, "/\x00\n") || s[0] == '.' {
			t.Errorf("ParseName(%q) accepted", s)
		}
	})
}
