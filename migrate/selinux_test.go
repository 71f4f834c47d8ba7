package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRelabels: with Config.Restorecon, the Maildir of each user this run wrote into is
// relabelled by restorecon -RF run as the user, and logged; a user with nothing written is
// left alone; a failing restorecon fails its user, whose messages stay.
func TestRunRelabels(t *testing.T) {
	tr := newTree(t, "ann", "ben")
	tr.write("var/mail/ann", msgA+msgB, "ann")
	// The users' restorecon must reach the stub and its log.
	dir, err := os.MkdirTemp("", "relabel-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o777))
	log := filepath.Join(dir, "log")
	stub := func(name, extra string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte("#!/bin/sh\necho \"$(id -u) $*\" >>"+log+"\n"+extra), 0o755))
		return p
	}
	cfg := tr.config()
	cfg.Restorecon = stub("restorecon", "")
	sum, res := run(t, cfg)
	if sum.Failed != 0 || res["ann"].Outcome != OutcomeMigrated {
		t.Fatalf("%+v, ann %+v", sum, res["ann"])
	}
	uid := os.Getuid()
	if os.Geteuid() == 0 {
		uid = tr.UID("ann")
	}
	b, err := os.ReadFile(log)
	must(t, err)
	if got, want := string(b), fmt.Sprintf("%d -RF %s\n", uid, tr.path("home/ann/Maildir")); got != want {
		t.Errorf("restorecon ran as\n%s\nwant\n%s", got, want)
	}
	logged := 0
	for _, e := range tr.audit() {
		if e["event"] == EventNotice && e["kind"] == EventRelabelled && e["user"] == "ann" && e["detail"] == "restorecon -RF "+tr.path("home/ann/Maildir") {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("%d relabelling notices for ann in the audit log, want 1", logged)
	}

	tr.appendTo("var/mail/ann", msgC)
	cfg.Restorecon = stub("failing", "echo 'restorecon: lsetfilecon failed' >&2\nexit 1\n")
	sum, res = run(t, cfg)
	if sum.Failed != 1 || res["ann"].Err == nil || !strings.Contains(res["ann"].Err.Error(), "restorecon: lsetfilecon failed") {
		t.Errorf("a failing restorecon: %+v, ann %v", sum, res["ann"].Err)
	}
	if n := len(tr.files("ann")); n != 3 {
		t.Errorf("ann has %d messages, want 3", n)
	}
}
