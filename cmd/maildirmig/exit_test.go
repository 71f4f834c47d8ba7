package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestExitCodesDocumented: the exit codes are written once, in exitCodes, checkExitCodes and
// compareExitCodes; the README's table, the manual in doc.go, --help and the man page say
// exactly those, in those words.
func TestExitCodesDocumented(t *testing.T) {
	t.Parallel()
	want := map[int]string{}
	for _, e := range exitCodes {
		want[e.code] = e.meaning
	}
	for _, c := range []int{exitOK, exitFatal, exitUsage, exitUsersFailed, exitTempFail, exitInterrupted} {
		if _, ok := want[c]; !ok {
			t.Errorf("exit code %d is used but not in exitCodes", c)
		}
	}
	checkLine, compareLine := checkExitStatusLine(), compareExitStatusLine()

	table := section(t, "README.md", readme(t), "## Exit codes\n", "\n## ")
	compareCodes(t, "README.md", parseCodes(regexp.MustCompile(`(?m)^\| (\d+) \| (.+) \|$`), table), want)
	if !strings.Contains(squash(table), checkLine) {
		t.Errorf("README.md's exit codes do not say check's: %q", checkLine)
	}
	if !strings.Contains(squash(table), compareLine) {
		t.Errorf("README.md's exit codes do not say compare's: %q", compareLine)
	}

	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	manual := section(t, "doc.go", string(doc), "# Exit codes\n", "\n# ")
	compareCodes(t, "doc.go", parseCodes(regexp.MustCompile(`(?m)^\t(\d+) +(.+)$`), manual), want)
	if !strings.Contains(squash(manual), checkLine) {
		t.Errorf("doc.go's exit codes do not say check's: %q", checkLine)
	}
	if !strings.Contains(squash(manual), compareLine) {
		t.Errorf("doc.go's exit codes do not say compare's: %q", compareLine)
	}

	for _, args := range [][]string{{"--help"}, {"man"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"maildirmig"}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("maildirmig %s: exit %d, stderr %q", args[0], code, errb.String())
		}
		text := squash(strings.ReplaceAll(out.String(), `\-`, "-"))
		for _, e := range exitCodes {
			if line := strconv.Itoa(e.code) + " " + e.meaning; !strings.Contains(text, line) {
				t.Errorf("maildirmig %s does not say %q", args[0], line)
			}
		}
		if !strings.Contains(text, checkLine) {
			t.Errorf("maildirmig %s does not say check's exit codes %q", args[0], checkLine)
		}
		if !strings.Contains(text, compareLine) {
			t.Errorf("maildirmig %s does not say compare's exit codes %q", args[0], compareLine)
		}
	}
}

// section returns the text of doc from start up to the next end.
func section(t *testing.T, name, doc, start, end string) string {
	t.Helper()
	i := strings.Index(doc, start)
	if i < 0 {
		t.Fatalf("%s has no %q", name, strings.TrimSpace(start))
	}
	s := doc[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		s = s[:j]
	}
	return s
}

func parseCodes(re *regexp.Regexp, text string) map[int]string {
	got := map[int]string{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		got[n] = strings.TrimSpace(m[2])
	}
	return got
}

func compareCodes(t *testing.T, name string, got, want map[int]string) {
	t.Helper()
	for c, m := range want {
		if got[c] != m {
			t.Errorf("%s: exit code %d says %q, want %q", name, c, got[c], m)
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok {
			t.Errorf("%s documents exit code %d, which no command uses", name, c)
		}
	}
}

// squash joins lines and runs of spaces, as text wrapped for a terminal or a page reads.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestReport: each kind of error becomes its console text and exit code in one place.
func TestReport(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		code   int
		stderr string
	}{
		{"nil", context.Background(), nil, 0, ""},
		{"usage in a command", context.Background(), inCommand("mbox", usagef("--after %q: want keep", "x")),
			2, "maildirmig: error: --after \"x\": want keep\nmaildirmig: hint: see 'maildirmig mbox --help'\n"},
		{"usage with a hint", context.Background(), &usageError{msg: "unknown command \"x\".", hint: "did you mean"},
			2, "maildirmig: error: unknown command \"x\"\nmaildirmig: hint: did you mean\nmaildirmig: hint: see 'maildirmig --help'\n"},
		{"code with a message", context.Background(), exitCode(exitTempFail, errBoom), 75, "maildirmig: error: boom\n"},
		{"code alone", context.Background(), exitCode(exitUsersFailed, nil), 3, ""},
		{"interrupted", cancelled, context.Canceled, 130, "maildirmig: error: interrupted\n"},
		{"anything else", context.Background(), errBoom, 1, "maildirmig: error: boom\n"},
	}
	for _, tt := range tests {
		var errb bytes.Buffer
		u := newUI(strings.NewReader(""), &bytes.Buffer{}, &errb)
		if code := report(tt.ctx, u, tt.err); code != tt.code || errb.String() != tt.stderr {
			t.Errorf("%s: report = %d, stderr %q; want %d, %q", tt.name, code, errb.String(), tt.code, tt.stderr)
		}
	}
}

var errBoom = bytesError("boom")

type bytesError string

func (e bytesError) Error() string { return string(e) }

// TestReadmeHelp: the README's usage block is --help verbatim, but for the VERSION section,
// which depends on how the binary was built.
func TestReadmeHelp(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"maildirmig", "--help"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d, %s", code, errb.String())
	}
	help := regexp.MustCompile(`(?s)VERSION:\n.*?\n\n`).ReplaceAllString(out.String(), "")
	block := section(t, "README.md", readme(t), "## Usage\n\n```\n", "```")
	if block != help {
		t.Errorf("README.md's usage block is not --help (less VERSION); --help says:\n%s", help)
	}
}
