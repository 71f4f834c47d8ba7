package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the generated files under packaging/ instead of comparing them")

// generatedFiles are the files under packaging/ that maildirmig writes itself, with the
// command line that writes each.
var generatedFiles = map[string][]string{
	"man/maildirmig.8":           {"man"},
	"completion/maildirmig.bash": {"completion", "bash"},
	"completion/_maildirmig":     {"completion", "zsh"},
	"completion/maildirmig.fish": {"completion", "fish"},
}

func generate(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"maildirmig"}, args...), strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("maildirmig %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.Bytes()
}

// TestGeneratedFiles checks that the man page and the completions checked in under
// packaging/ are what the command definitions generate now; go test -run
// TestGeneratedFiles -update rewrites them.
func TestGeneratedFiles(t *testing.T) {
	for name, args := range generatedFiles {
		path := filepath.Join("..", "..", "packaging", name)
		got := generate(t, args...)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./cmd/maildirmig -run TestGeneratedFiles -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("packaging/%s is out of date: run go test ./cmd/maildirmig -run TestGeneratedFiles -update", name)
		}
	}
}

// TestManPage checks the man page has every section an administrator looks for and every
// visible command and option, that no hyphen in it is left for roff to break at or turn into
// a dash, and that groff renders it without a warning.
func TestManPage(t *testing.T) {
	page := string(generate(t, "man"))
	for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", `"EXIT STATUS"`, "FILES", `"AUDIT LOG"`, "EXAMPLES", "RUNBOOK", "ROLLBACK", `"SEE ALSO"`} {
		if !strings.Contains(page, "\n.SH "+section+"\n") {
			t.Errorf("no section %s", section)
		}
	}
	if !strings.Contains(page, "\n.nh\n") {
		t.Errorf("hyphenation is not turned off")
	}
	app := newApp(newUI(nil, &bytes.Buffer{}, &bytes.Buffer{}))
	for _, c := range docCommands(app) {
		if !strings.Contains(page, `.SS "maildirmig `+roff(c.name)) {
			t.Errorf("command %s is not described", c.name)
		}
		for _, f := range c.flags {
			if !strings.Contains(page, `\fB`+roff(flagSpelling(f.names[0]))+`\fR`) {
				t.Errorf("option %s of %s is not described", flagSpelling(f.names[0]), c.name)
			}
		}
	}
	for _, s := range exitCodes {
		if !strings.Contains(page, fmt.Sprintf(".TP\n.B %d\n", s.code)) {
			t.Errorf("exit status %d missing", s.code)
		}
	}
	bare := regexp.MustCompile(`(^|[^\\])-`)
	for i, line := range strings.Split(page, "\n") {
		if bare.MatchString(line) {
			t.Errorf("line %d: hyphen not written as \\-: %s", i+1, line)
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff not installed")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// TestBashCompletion runs the generated script in bash and completes what an administrator
// types: commands, options, enum values, user names for --user.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	script := filepath.Join(t.TempDir(), "maildirmig.bash")
	if err := os.WriteFile(script, generate(t, "completion", "bash"), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		sh := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_maildirmig\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "--norc", "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		sort.Strings(got)
		return got
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"maildirmig", "pre"}, []string{"preflight"}},
		{[]string{"maildirmig", "M"}, []string{"Mailbox"}},
		{[]string{"maildirmig", "check", "--format", ""}, []string{"json", "prometheus", "text"}},
		{[]string{"maildirmig", "mbox", "--progress", "a"}, []string{"always", "auto"}},
		{[]string{"maildirmig", "mbox", "--aft"}, []string{"--after"}},
		{[]string{"maildirmig", "mbox", "--user", "roo"}, []string{"root"}},
		{[]string{"maildirmig", "preflight", "--dovecot"}, []string{"--dovecot-config"}},
		{[]string{"maildirmig", "rec"}, []string{"record"}},
		{[]string{"maildirmig", "record", "--f"}, []string{"--force"}},
		{[]string{"maildirmig", "record", "readme_t"}, []string{"readme_test.go"}},
		{[]string{"maildirmig", "record", "before.jsonl", "roo"}, []string{"root"}},
		{[]string{"maildirmig", "compare", "--a"}, []string{"--all"}},
		{[]string{"maildirmig", "compare", "readme_t"}, []string{"readme_test.go"}},
	} {
		if got := complete(tc.words...); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("completing %q: %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestShellSyntax has each shell whose completion is generated parse it, where installed.
func TestShellSyntax(t *testing.T) {
	for shell, args := range map[string][]string{"bash": {"completion", "bash"}, "zsh": {"completion", "zsh"}, "fish": {"completion", "fish"}} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s not installed", shell)
			}
			file := filepath.Join(t.TempDir(), "script")
			if err := os.WriteFile(file, generate(t, args...), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(shell, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// TestFishCompletion asks fish itself for the completions of what an administrator types.
func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed")
	}
	script := filepath.Join(t.TempDir(), "maildirmig.fish")
	if err := os.WriteFile(script, generate(t, "completion", "fish"), 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"maildirmig pre":              "preflight",
		"maildirmig check --format ":  "json prometheus text",
		"maildirmig mbox --after ":    "keep rename truncate",
		"maildirmig mbox --user roo":  "root",
		"maildirmig preflight --dove": "--dovecot-config",
		"maildirmig record --ha":      "--hash",
		"maildirmig compare --a":      "--all",
	} {
		out, err := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C '"+line+"'").CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		sort.Strings(got)
		if strings.Join(got, " ") != want {
			t.Errorf("completing %q: %q, want %q", line, got, want)
		}
	}
}

// zshHarness types a line and two tabs into an interactive zsh with the generated completion
// on its fpath, and prints what zsh drew up to the first word expected (the test's timeout
// ends a wait for a word that never comes).
const zshHarness = `zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1=""; fpath=(%s $fpath); autoload -Uz compinit; compinit -u -D; unsetopt beep'
zpty -w z 'print MARK1'
zpty -r z line '*MARK1*'; zpty -r z line '*MARK1*'
zpty -n -w z $'%s\t\t'
zpty -r z out '*%s*'
print -r -- "$out"
zpty -d z
`

// TestZshCompletion has an interactive zsh complete what an administrator types.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "_maildirmig"), generate(t, "completion", "zsh"), 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string][]string{
		"maildirmig check --format ": {"json", "prometheus", "text"},
		"maildirmig prefl":           {"maildirmig preflight"},
		"maildirmig mbox --after ":   {"keep", "rename", "truncate"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, "zsh", "-f", "-c", fmt.Sprintf(zshHarness, dir, line, want[len(want)-1])).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("zsh: %v\n%s", err, out)
		}
		for _, w := range want {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("completing %q: no %q in what zsh drew:\n%q", line, w, out)
			}
		}
	}
}
