package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreremoveKeepsTimerOnUpgrade runs the package's preremove script as dpkg and RPM run it,
// on a systemd host, with a systemctl that records what it is asked: the nightly check's timer
// is disabled when the package is removed (dpkg's prerm "remove", RPM's %preun 0), and left as
// the administrator set it on every form of an upgrade (dpkg's "upgrade", "failed-upgrade" and
// "deconfigure", RPM's %preun 1 or more), since nothing enables it again. The host's /run is
// never touched: the script sees a /run of its own, in a mount namespace of its own.
func TestPreremoveKeepsTimerOnUpgrade(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace with a /run of its own")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "packaging", "scripts", "preremove.sh"))
	if err != nil {
		t.Fatal(err)
	}
	const disable = "disable --now maildirmig-check.timer"
	for _, tc := range []struct {
		name    string
		args    []string
		systemd bool
		want    string // what systemctl was asked, "" for nothing
	}{
		{"dpkg remove", []string{"remove"}, true, disable},
		{"dpkg upgrade", []string{"upgrade", "1.2.0"}, true, ""},
		{"dpkg failed-upgrade", []string{"failed-upgrade", "1.1.0"}, true, ""},
		{"dpkg deconfigure", []string{"deconfigure", "in-favour", "other", "1.0", "removing", "maildirmig", "1.1.0"}, true, ""},
		{"rpm erase", []string{"0"}, true, disable},
		{"rpm upgrade", []string{"1"}, true, ""},
		{"rpm upgrade with two installed", []string{"2"}, true, ""},
		{"dpkg remove without systemd", []string{"remove"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			stub := filepath.Join(dir, "bin")
			if err := os.Mkdir(stub, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(stub, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			setup := "mount -t tmpfs tmpfs /run"
			if tc.systemd {
				setup += " && mkdir -p /run/systemd/system"
			}
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
				setup + ` && exec sh "$0" "$@"`, script}, tc.args...)...)
			cmd.Env = append(os.Environ(), "PATH="+stub+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("preremove.sh %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			got, err := os.ReadFile(calls)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("preremove.sh %s asked systemctl %q, want %q", strings.Join(tc.args, " "), got, tc.want)
			}
		})
	}
}
