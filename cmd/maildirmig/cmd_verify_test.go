package main

import (
	"testing"

	"github.com/maildirmig/maildirmig/migrate"
)

func TestDescribeVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    migrate.VerifyResult
		want string
	}{
		{migrate.VerifyResult{}, ""},
		{migrate.VerifyResult{Missing: []string{"a"}}, "missing: a"},
		{migrate.VerifyResult{Bad: []string{"b", "c", "d"}}, "different content: b and 2 more"},
		{
			migrate.VerifyResult{Missing: []string{"a", "b"}, Deleted: []string{"x", "y"}, Bad: []string{"c"}, Duplicate: []string{"d", "e"}},
			"missing: a and 1 more; 2 deleted by the user since; different content: c; stored more than once: d and 1 more",
		},
	} {
		if got := describeVerify(tc.r); got != tc.want {
			t.Errorf("describeVerify(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
