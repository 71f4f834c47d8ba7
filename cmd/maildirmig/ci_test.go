package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeCIPackages: the packages the README tells a newcomer to install are exactly those
// .ci/run installs, in the same order.
func TestReadmeCIPackages(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	ci := regexp.MustCompile(`(?m)^packages=\(([^)]*)\)$`).FindAllStringSubmatch(string(b), -1)
	if len(ci) != 1 {
		t.Fatalf(".ci/run has %d packages=(...) lines, want 1", len(ci))
	}
	readmeLines := regexp.MustCompile(`(?m)^    apt-get install (.*)$`).FindAllStringSubmatch(readmeSection(t, "Run it, test it"), -1)
	if len(readmeLines) != 1 {
		t.Fatalf("the README's \"Run it, test it\" has %d apt-get install lines, want 1", len(readmeLines))
	}
	want, got := strings.Fields(ci[0][1]), strings.Fields(readmeLines[0][1])
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the README installs\n  %s\n.ci/run installs\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

// TestReadmeTestCommand: the command the README gives to run the whole suite is the one .ci/run
// runs, last.
func TestReadmeTestCommand(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			last = l
		}
	}
	m := regexp.MustCompile("Run the whole test suite:\n\n```\n([^\n]*)\n```").FindStringSubmatch(readmeSection(t, "Run it, test it"))
	if m == nil {
		t.Fatal("the README's \"Run it, test it\" gives no command after \"Run the whole test suite:\"")
	}
	if m[1] != last {
		t.Errorf("the README runs the suite with %q, .ci/run with %q", m[1], last)
	}
}
