package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mirroredSpool is the plain spool of n messages (plainSpool) after a day of use through
// Dovecot: every seventh message expunged, every fifth read and flagged, three more
// delivered. It returns the spool, the key of each of its messages in order, and how many of
// them are flagged.
func mirroredSpool(owner string, n int) ([]byte, []string, int) {
	var b bytes.Buffer
	var keys []string
	flagged := 0
	for i := 0; i < n+3; i++ {
		if i < n && i%7 == 3 {
			continue
		}
		_, header, body := testMessage(owner, i)
		fmt.Fprintf(&b, "From sender@example.org Mon Jan  1 10:%02d:%02d 2024\n%s", (i/60)%60, i%60, header)
		switch {
		case i < n && i%5 == 0:
			b.WriteString("Status: RO\nX-Status: F\n")
			flagged++
		case i%3 == 0:
			b.WriteString("Status: RO\n")
		}
		b.WriteString("\n" + body + "\n")
		keys = append(keys, contentKey([]byte(header+"\n"+body)))
	}
	return b.Bytes(), keys, flagged
}

// mirrorKillPoints are the steps of a mirror pass: renaming files for their flags, removing
// those whose message is gone, writing the new ones, listing them all again in
// dovecot-uidlist, and root's state before and after.
var mirrorKillPoints = []killPoint{
	{"restate:1:kill-run", false, nil},
	{"restate:20:kill", false, nil},
	{"remove:1:kill-run", false, nil},
	{"remove:10:kill", false, nil},
	{"write:2:kill-run", false, nil},
	{"move:1:kill", false, nil},
	{"uidlist-rewrite:1:kill-run", false, nil},
	{"state:1:kill-run", false, nil},
	{"state:2:kill-run", false, nil},
	{"state-saved:2:kill-run", false, nil},
}

// TestKilledMirrorPass kills a mirror pass (the second pass over spools a day of Dovecot use
// rewrote) with SIGKILL at each of its steps, the whole run or one worker, and demands that one
// plain re-run leaves every Maildir the exact mirror of its spool: every message once, those
// gone removed, the flagged ones flagged, the uidlist in order, tmp/ empty, verify agreeing.
func TestKilledMirrorPass(t *testing.T) {
	points := mirrorKillPoints
	if testing.Short() {
		points = nil
		for i, p := range mirrorKillPoints {
			if i%2 == 0 {
				points = append(points, p)
			}
		}
	}
	g := newFaultRig(t, "fm", faultUser{kind: "plain", n: 300}, faultUser{kind: "plain", n: 40})
	for _, kp := range points {
		t.Run(kp.spec, func(t *testing.T) {
			label := "mirror pass killed at " + kp.spec
			g.reset(t)
			if r := runBinary(t, g.args("mbox")...); r.code != 0 {
				t.Fatalf("pass 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			flagged := map[string]int{}
			for _, u := range g.users {
				b, keys, f := mirroredSpool(u.Name, u.n)
				u.want, flagged[u.Name] = keys, f
				p := filepath.Join(g.spool, u.Name)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
			r := runWithFault(t, kp.spec, g.args("mbox")...)
			wholeRun := strings.HasSuffix(kp.spec, ":kill-run")
			switch {
			case wholeRun && !r.signaled:
				t.Errorf("%s: the run was not killed (exit %d, frozen %v): the point was not reached\n%s%s", label, r.code, r.frozen, r.stdout, r.stderr)
			case !wholeRun && (r.code != 3 || !strings.Contains(r.stderr, "killed")):
				t.Errorf("%s: exit %d, want 3 with a worker killed: the point was not reached\n%s%s", label, r.code, r.stdout, r.stderr)
			}
			again := runBinary(t, g.args("mbox")...)
			if again.code != 0 {
				t.Errorf("%s: re-run: exit %d, want 0\n%s%s", label, again.code, again.stdout, again.stderr)
			}
			g.checkExact(t, label)
			for _, u := range g.users {
				n := 0
				for _, f := range messageFiles(t, filepath.Join(u.Home, "Maildir")) {
					if _, info, ok := strings.Cut(f, ":2,"); ok && strings.Contains(info, "F") {
						n++
					}
				}
				if n != flagged[u.Name] {
					t.Errorf("%s: %s: %d flagged files, want %d", label, u.Name, n, flagged[u.Name])
				}
			}
			// A third pass finds nothing left to do.
			if third := runBinary(t, g.args("mbox")...); third.code != 0 || strings.Contains(third.stdout, "migrated,") && !strings.Contains(third.stdout, " 0 migrated,") {
				t.Errorf("%s: a third pass did something: exit %d\n%s%s", label, third.code, third.stdout, third.stderr)
			}
		})
	}
}
