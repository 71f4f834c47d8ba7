package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeVersion(t *testing.T) {
	t.Parallel()
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-04T23:10:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name  string
		stamp string
		info  *debug.BuildInfo
		want  string
	}{
		{"stamped", "1.2.0", vcs, "1.2.0 (revision 0123456789ab with local changes of 2026-12-04, go1.26.8)"},
		{"checkout", "", vcs, "unreleased (revision 0123456789ab with local changes of 2026-12-04, go1.26.8)"},
		{"go install", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}}, "v1.3.0 (go1.26.8)"},
		{"nothing", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "unreleased (no version stamp and no VCS information: build with packaging/build.sh, go1.26.8)"},
	} {
		if got := describeVersion(tc.stamp, tc.info, true); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionStamp builds the binary as the package build does and asks it its version.
func TestVersionStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "maildirmig")
	build := exec.Command("go", "build", "-ldflags", "-X main.versionStamp=9.8.7-test", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "maildirmig version 9.8.7-test (") {
		t.Errorf("--version: %v: %q", err, out)
	}
}
