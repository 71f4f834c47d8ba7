package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCheckOutputEveryExit: whatever check's exit status, 0 to 3 (a usage error is 3, "could
// not check", as the Nagios plugin guidelines want), every format gives a whole,
// valid report whose status is that exit status: prometheus text that parses and carries
// maildirmig_check_status and the time of the run, a JSON object (with the error when the
// check could not run), a Nagios summary line. A check that cannot run must not leave an
// empty .prom file behind a cron line.
func TestCheckOutputEveryExit(t *testing.T) {
	tests := []struct {
		name  string
		code  int
		setup func(root string) error
		args  []string
		err   string // in the report of a check that could not run
	}{
		{name: "healthy", code: 0},
		{name: "warning", code: 1, setup: func(root string) error {
			return os.Chmod(filepath.Join(root, "home/alice/Maildir/cur"), 0o755)
		}},
		{name: "critical", code: 2, setup: func(root string) error {
			return os.Remove(filepath.Join(root, "home/alice/Maildir/.Sent/tmp"))
		}},
		{name: "no passwd", code: 3, setup: func(root string) error {
			return os.Remove(filepath.Join(root, "etc/passwd"))
		}, err: "passwd"},
		{name: "unknown user", code: 3, args: []string{"carol"}, err: "no such user: carol"},
		{name: "usage error", code: 3, args: []string{"--max-listed", "0"}, err: "--max-listed 0"},
		{name: "unknown flag", code: 3, args: []string{"--no-such-flag"}, err: "flag provided but not defined: -no-such-flag"},
		{name: "flag after a user", code: 3, args: []string{"alice", "--fix"}, err: "flag --fix after the arguments"},
		{name: "audit log unwritable", code: 3, setup: func(root string) error {
			return os.WriteFile(filepath.Join(root, "var/log"), nil, 0o600)
		}, args: []string{"--fix"}, err: "var/log"},
	}
	for _, tt := range tests {
		for _, format := range []string{"text", "json", "prometheus"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				root := filepath.Join(t.TempDir(), "root")
				makeCheckTree(t, root)
				if tt.setup != nil {
					if err := tt.setup(root); err != nil {
						t.Fatal(err)
					}
				}
				args := append([]string{"maildirmig", "check", "--root", root, "--format", format}, tt.args...)
				before := time.Now().Add(-time.Second)
				var out, errb bytes.Buffer
				code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
				if code != tt.code {
					t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
				}
				if tt.err != "" && !strings.Contains(errb.String(), "maildirmig: error: ") {
					t.Errorf("stderr %q: want the error", errb.String())
				}
				switch format {
				case "text":
					names := []string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}
					lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
					last := lines[len(lines)-1]
					if !strings.HasPrefix(last, names[tt.code]+": ") || !strings.HasSuffix(out.String(), "\n") {
						t.Errorf("last line %q: want it to start with %s:", last, names[tt.code])
					}
					if tt.err != "" && !strings.Contains(last, tt.err) {
						t.Errorf("last line %q: want the error %q", last, tt.err)
					}
				case "json":
					var r struct {
						Status string         `json:"status"`
						Exit   *int           `json:"exit"`
						Error  string         `json:"error"`
						Counts map[string]int `json:"counts"`
					}
					if err := json.Unmarshal(out.Bytes(), &r); err != nil {
						t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
					}
					if r.Exit == nil || *r.Exit != tt.code {
						t.Errorf("exit field %v, want %d", r.Exit, tt.code)
					}
					if want := []string{"ok", "warning", "critical", "unknown"}[tt.code]; r.Status != want {
						t.Errorf("status %q, want %q", r.Status, want)
					}
					if (tt.err == "") != (r.Error == "") || !strings.Contains(r.Error, tt.err) {
						t.Errorf("error field %q, want one with %q", r.Error, tt.err)
					}
				case "prometheus":
					samples, err := parsePrometheus(out.String())
					if err != nil {
						t.Fatalf("stdout is not the prometheus text format: %v\n%s", err, out.String())
					}
					if v, ok := samples["maildirmig_check_status"]; !ok || v != float64(tt.code) {
						t.Errorf("maildirmig_check_status = %v (present %v), want %d", v, ok, tt.code)
					}
					ts, ok := samples["maildirmig_check_last_run_timestamp_seconds"]
					if !ok || ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
						t.Errorf("maildirmig_check_last_run_timestamp_seconds = %v (present %v), want the time of the run", ts, ok)
					}
					// A check that ran counts every kind, zero included; one that could not run
					// claims no count at all.
					if _, ok := samples[`maildirmig_check_problems{kind="missing"}`]; ok != (tt.code < 3) {
						t.Errorf("problems by kind present: %v, want %v", ok, tt.code < 3)
					}
					if tt.code == 3 && len(samples) != 2 {
						t.Errorf("a check that could not run gives %d samples, want status and time only", len(samples))
					}
				}
			})
		}
	}
}

var (
	promMetric = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (\S+)(?: (-?[0-9]+))?$`)
)

// parsePrometheus reads the Prometheus text exposition format as node_exporter's textfile
// collector does, strictly: HELP and TYPE comments naming valid metrics, TYPE at most once
// per metric and before its samples, samples with valid names, labels and float values, no
// sample twice, and a final newline. It returns the samples by name and labels.
func parsePrometheus(text string) (map[string]float64, error) {
	if text == "" || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("empty, or no final newline")
	}
	samples := map[string]float64{}
	typed := map[string]bool{}
	sampled := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE "):
			f := strings.SplitN(line[len("# HELP "):], " ", 2)
			if !promMetric.MatchString(f[0]) || len(f) != 2 {
				return nil, fmt.Errorf("line %d: %q", n, line)
			}
			if strings.HasPrefix(line, "# TYPE ") {
				switch {
				case typed[f[0]]:
					return nil, fmt.Errorf("line %d: second TYPE for %s", n, f[0])
				case sampled[f[0]]:
					return nil, fmt.Errorf("line %d: TYPE for %s after its samples", n, f[0])
				case !strings.Contains(" counter gauge histogram summary untyped ", " "+f[1]+" "):
					return nil, fmt.Errorf("line %d: type %q", n, f[1])
				}
				typed[f[0]] = true
			}
		case strings.HasPrefix(line, "#"):
			continue
		default:
			m := promSample.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: not a sample: %q", n, line)
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value: %v", n, err)
			}
			key := m[1] + m[2]
			if _, dup := samples[key]; dup {
				return nil, fmt.Errorf("line %d: %s twice", n, key)
			}
			samples[key] = v
			sampled[m[1]] = true
		}
	}
	return samples, sc.Err()
}

// TestParsePrometheus: the test's parser refuses what the textfile collector refuses.
func TestParsePrometheus(t *testing.T) {
	t.Parallel()
	good := "# HELP a_b A.\n# TYPE a_b gauge\na_b 1\na_c{kind=\"x\"} 2.5\n"
	if s, err := parsePrometheus(good); err != nil || s[`a_c{kind="x"}`] != 2.5 || s["a_b"] != 1 {
		t.Errorf("parsePrometheus(%q) = %v, %v", good, s, err)
	}
	for _, bad := range []string{"", "a_b 1", "a-b 1\n", "a_b one\n", "a_b{kind=x} 1\n", "a_b 1\na_b 2\n",
		"a_b 1\n# TYPE a_b gauge\n", "# TYPE a_b gauge\n# TYPE a_b gauge\n", "# TYPE a_b thing\n"} {
		if _, err := parsePrometheus(bad); err == nil {
			t.Errorf("parsePrometheus(%q) accepted it", bad)
		}
	}
}

// TestCheckOutputFile: with --output the report goes to the file, whole, and stdout stays
// empty, whatever the exit status (a usage error too, which monitoring must see as status 3);
// a directory others may write to is refused and the old report left as it was.
func TestCheckOutputFile(t *testing.T) {
	for _, tt := range []struct {
		name string
		code int
		args []string
	}{
		{"healthy", 0, nil},
		{"unknown user", 3, []string{"carol"}},
		{"usage error", 3, []string{"--max-listed", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			makeCheckTree(t, root)
			dir := filepath.Join(t.TempDir(), "textfile")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			prom := filepath.Join(dir, "maildirmig.prom")
			if err := os.WriteFile(prom, []byte("maildirmig_check_status 2\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"maildirmig", "check", "-q", "--root", root, "--format", "prometheus", "--output", prom}, tt.args...)
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout got %q, want nothing", out.String())
			}
			b, err := os.ReadFile(prom)
			if err != nil {
				t.Fatal(err)
			}
			samples, err := parsePrometheus(string(b))
			if err != nil {
				t.Fatalf("the file is not the prometheus text format: %v\n%s", err, b)
			}
			if samples["maildirmig_check_status"] != float64(tt.code) {
				t.Errorf("maildirmig_check_status = %v, want %d", samples["maildirmig_check_status"], tt.code)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("the directory holds %v, want the report alone", entries)
			}
		})
	}

	t.Run("shared directory", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "root")
		makeCheckTree(t, root)
		dir := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		prom := filepath.Join(dir, "maildirmig.prom")
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"maildirmig", "check", "--root", root, "--format", "prometheus", "--output", prom}, strings.NewReader(""), &out, &errb)
		if code != 3 || !strings.Contains(errb.String(), "maildirmig: error: writing the report: ") || !strings.Contains(errb.String(), "writable by others") {
			t.Errorf("exit %d, stderr %q: want 3 and the directory refused", code, errb.String())
		}
		if _, err := os.Lstat(prom); err == nil {
			t.Error("the report was written into a directory others may write to")
		}
	})
}
