package maildir

import "testing"

func TestSplitPosition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base, head, rest string
		pos              int64
		ok               bool
	}{
		{"1614834367.M890123Q12X0123456789abcdef.mx,S=3,W=4", "1614834367.M890123Q", "X0123456789abcdef.mx,S=3,W=4", 12, true},
		{"0.M0Q0Xab.h,S=1,W=1", "0.M0Q", "Xab.h,S=1,W=1", 0, true},
		{"1614834367.M890123Q012X01.mx", "", "", 0, false},
		{"1614834367.M890123QX01.mx", "", "", 0, false},
		{"1614834367.M890123P7Q1X01.mx", "", "", 0, false},
		{"1614834367.12345_1.host", "", "", 0, false},
	} {
		head, pos, rest, ok := splitPosition(tc.base)
		if ok != tc.ok || head != tc.head || pos != tc.pos || rest != tc.rest {
			t.Errorf("splitPosition(%q) = %q, %d, %q, %v", tc.base, head, pos, rest, ok)
		}
	}
}

func TestSplitTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base, head, rest string
		ok               bool
	}{
		{"1614834367.M890123Q12X0123456789abcdef.mx,S=3,W=4", "1614834367.M890123", "Q12X0123456789abcdef.mx,S=3,W=4", true},
		{"0.M0Q0Xab.h,S=1,W=1", "0.M0", "Q0Xab.h,S=1,W=1", true},
		{"1614834367.MQ1X01.mx", "", "", false},
		{".M0Q1X01.mx", "", "", false},
		{"1614834367.M890123", "", "", false},
		{"1614834367.12345_1.host", "", "", false},
		{"1614834367.M890123P7Q1X01.mx", "", "", false},
	} {
		head, rest, ok := splitTime(tc.base)
		if ok != tc.ok || head != tc.head || rest != tc.rest {
			t.Errorf("splitTime(%q) = %q, %q, %v", tc.base, head, rest, ok)
		}
	}
}
