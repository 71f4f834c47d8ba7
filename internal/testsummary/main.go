// Command testsummary reads the events of go test -json on standard input (.ci/test pipes
// them in), prints what go test prints without -v (a line per package, and the whole output of
// each test that failed: its errors, a data race), and ends with how many tests passed, failed
// and skipped, and why each skipped test skipped.
//
// It exits 1 when a test or a package failed (a build failure too), or when no test ran. With
// CI=true in its environment, as on the project's CI machine (root, with Postfix, Dovecot and
// the other Debian packages .ci/run installs, and ../shared/corpora), a test that skipped for
// want of root, of an installed program or of the corpora is a failure as well: there, every
// such test must run.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // of a build event, which names no Package
	Test       string
	Output     string
}

// mustRunInCI matches the reasons of a skip that the CI machine has no excuse for.
var mustRunInCI = regexp.MustCompile(`(?i)\broot\b|not installed|executable file not found|corpora`)

// Skip is one skipped test.
type Skip struct {
	Test, Reason string
	MustRun      bool // in CI, this skip is a failure
}

// Summary counts the tests of a go test -json stream.
type Summary struct {
	Passed, Failed int
	Skips          []Skip
	PackageFails   []string // packages that failed outside any test (a build, a panic in TestMain)
}

// Summarize reads the events from r, writes to w the lines of each package and the output of
// each failed test, and counts the tests.
func Summarize(r io.Reader, w io.Writer, ci bool) (*Summary, error) {
	s := &Summary{}
	logs := map[string][]string{} // output of each running test, for its skip reason
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event: the go command's own words (a build error), passed on as they are.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output", "build-output":
			switch {
			case e.Test != "":
				logs[key] = append(logs[key], e.Output)
			case e.Output != "PASS\n":
				io.WriteString(w, e.Output)
			}
		case "pass":
			if e.Test != "" {
				s.Passed++
			}
			delete(logs, key)
		case "fail":
			if e.Test != "" {
				s.Failed++
				io.WriteString(w, strings.Join(logs[key], ""))
			} else {
				s.PackageFails = append(s.PackageFails, e.Package)
			}
			delete(logs, key)
		case "build-fail":
			s.PackageFails = append(s.PackageFails, e.ImportPath)
		case "skip":
			if e.Test != "" {
				reason := skipReason(logs[key])
				s.Skips = append(s.Skips, Skip{Test: short(e.Package) + "." + e.Test, Reason: reason, MustRun: ci && mustRunInCI.MatchString(reason)})
			}
			delete(logs, key)
		}
	}
	return s, sc.Err()
}

// skipReason is what a skipped test logged last: the t.Skip message, without the file:line
// that go test puts before it.
var logPrefix = regexp.MustCompile(`^\s*\S+\.go:\d+: `)

func skipReason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		l := strings.TrimSpace(out[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		return logPrefix.ReplaceAllString(l, "")
	}
	return "(no reason given)"
}

// short is a package path without the module's prefix.
func short(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/maildirmig/maildirmig"), "/")
}

// Report writes the closing lines and returns whether the run is a success.
func (s *Summary) Report(w io.Writer) bool {
	ok := s.Failed == 0 && len(s.PackageFails) == 0 && s.Passed > 0
	if len(s.Skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests, and why:\n")
		sort.SliceStable(s.Skips, func(i, j int) bool { return s.Skips[i].Test < s.Skips[j].Test })
		for _, sk := range s.Skips {
			mark := ""
			if sk.MustRun {
				mark = "  <- must run in CI"
				ok = false
			}
			fmt.Fprintf(w, "  %s: %s%s\n", sk.Test, sk.Reason, mark)
		}
	}
	for _, p := range s.PackageFails {
		fmt.Fprintf(w, "package failed: %s\n", p)
	}
	if s.Passed == 0 {
		fmt.Fprintf(w, "no test ran\n")
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", s.Passed, s.Failed, len(s.Skips))
	return ok
}

func main() {
	s, err := Summarize(os.Stdin, os.Stdout, os.Getenv("CI") == "true")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(1)
	}
	if !s.Report(os.Stdout) {
		os.Exit(1)
	}
}
