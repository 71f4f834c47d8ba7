package main

import (
	"bytes"
	"strings"
	"testing"
)

const stream = `{"Action":"run","Package":"github.com/maildirmig/maildirmig/check","Test":"TestA"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"github.com/maildirmig/maildirmig/check","Test":"TestA"}
{"Action":"run","Package":"github.com/maildirmig/maildirmig/check","Test":"TestRoot"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Test":"TestRoot","Output":"    check_test.go:12: needs root: chown\n"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Test":"TestRoot","Output":"--- SKIP: TestRoot (0.00s)\n"}
{"Action":"skip","Package":"github.com/maildirmig/maildirmig/check","Test":"TestRoot"}
{"Action":"run","Package":"github.com/maildirmig/maildirmig/check","Test":"TestSELinux"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Test":"TestSELinux","Output":"    selinux_test.go:40: SELinux is not enabled on this machine\n"}
{"Action":"skip","Package":"github.com/maildirmig/maildirmig/check","Test":"TestSELinux"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/check","Output":"ok  \tgithub.com/maildirmig/maildirmig/check\t0.01s\n"}
{"Action":"pass","Package":"github.com/maildirmig/maildirmig/check"}
{"Action":"run","Package":"github.com/maildirmig/maildirmig/e2e","Test":"TestJQ"}
{"Action":"output","Package":"github.com/maildirmig/maildirmig/e2e","Test":"TestJQ","Output":"    readme_test.go:9: jq not installed\n"}
{"Action":"skip","Package":"github.com/maildirmig/maildirmig/e2e","Test":"TestJQ"}
`

// TestSummary: the output is passed on, tests are counted, and each skip is listed with its
// reason; in CI a skip for want of root or of an installed program fails the run, and one the
// CI machine may have (no SELinux) does not.
func TestSummary(t *testing.T) {
	for _, ci := range []bool{false, true} {
		var out bytes.Buffer
		s, err := Summarize(strings.NewReader(stream), &out, ci)
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != "ok  \tgithub.com/maildirmig/maildirmig/check\t0.01s\n" {
			t.Errorf("the output of tests that passed or skipped was printed, or the package's line was not: %q", out.String())
		}
		out.Reset()
		ok := s.Report(&out)
		report := out.String()
		for _, want := range []string{
			"  check.TestRoot: needs root: chown",
			"  check.TestSELinux: SELinux is not enabled on this machine\n",
			"  e2e.TestJQ: jq not installed",
			"\n1 passed, 0 failed, 3 skipped\n",
		} {
			if !strings.Contains(report, want) {
				t.Errorf("CI %v: the report lacks %q:\n%s", ci, want, report)
			}
		}
		if marked := strings.Count(report, "<- must run in CI"); ok == ci || (ci && marked != 2) || (!ci && marked != 0) {
			t.Errorf("CI %v: ok %v, %d skips marked:\n%s", ci, ok, marked, report)
		}
	}
}

// TestSummaryFailures: a failed test, whose output is printed whole, a package that fails
// outside a test (a build error) and a run with no test fail the summary.
func TestSummaryFailures(t *testing.T) {
	for name, in := range map[string]string{
		"test": `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n" +
			`{"Action":"output","Package":"p","Test":"TestB","Output":"WARNING: DATA RACE\n"}` + "\n" +
			`{"Action":"fail","Package":"p","Test":"TestB"}` + "\n",
		"build": `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n" + `{"ImportPath":"q [q.test]","Action":"build-output","Output":"q.go:1: syntax error\n"}` + "\n" + `{"ImportPath":"q [q.test]","Action":"build-fail"}` + "\n# q\nq.go:1: syntax error\n",
		"none":  `{"Action":"skip","Package":"p"}` + "\n",
	} {
		var out bytes.Buffer
		s, err := Summarize(strings.NewReader(in), &out, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Report(&out) {
			t.Errorf("%s: the summary says success:\n%s", name, out.String())
		}
		if name == "test" && !strings.Contains(out.String(), "WARNING: DATA RACE\n") {
			t.Errorf("the failed test's output was not printed:\n%s", out.String())
		}
		if name == "build" && (!strings.Contains(out.String(), "q.go:1: syntax error\n") || !strings.Contains(out.String(), "package failed: q [q.test]\n")) {
			t.Errorf("the build failure was not printed, or not named:\n%s", out.String())
		}
	}
}
