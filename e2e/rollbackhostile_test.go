package e2e

// The way back against a hostile user, who owns their home (and their spool) and races root:
// a rollback must write nothing outside the user's home and spool, chown nothing, lose no
// mail, and refuse with the user and the file named. Each race is forced: the run stops
// itself at a fault point (fault action stop), the test does what the user would there, and
// the run carries on.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/internal/fault"
	"github.com/maildirmig/maildirmig/internal/mailtest"
)

// stopped is a process of a run that stopped itself at its fault point.
type stopped struct {
	pid, uid int
	n        int // 1 for the first process of the run that stopped, 2 for the next...
}

// runWithStop runs the faultinject binary as root with spec (POINT:N:stop) in fault.Env.
// Each time a process of the run (root or a worker) stops itself there, act is called with
// it, and the process is then continued; the run is killed if it is not over within a
// minute. It returns how the run ended and how many stops act saw.
func runWithStop(t *testing.T, spec string, act func(s stopped), args ...string) (result, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), fault.Env+"="+spec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stops := 0
	deadline := time.After(time.Minute)
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-deadline:
			kids, _ := runTree(root)
			_ = syscall.Kill(root, syscall.SIGKILL)
			for _, pid := range kids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("%s: the run did not end within a minute (%d stops seen); killed", spec, stops)
			err = <-done
			break wait
		case <-time.After(10 * time.Millisecond):
		}
		kids, _ := runTree(root)
		for _, pid := range append([]int{root}, kids...) {
			state, uid, ok := procState(pid)
			if !ok || state != 'T' {
				continue
			}
			stops++
			act(stopped{pid: pid, uid: uid, n: stops})
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("continue %d: %v", pid, err)
			}
		}
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", binary, err)
	}
	return r, stops
}

// procState returns the state letter and real uid of the process pid.
func procState(pid int) (byte, int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	var state byte
	uid := -1
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "State:":
			state = f[1][0]
		case len(f) > 1 && f[0] == "Uid:":
			uid, _ = strconv.Atoi(f[1])
		}
	}
	return state, uid, state != 0
}

// asUser runs a shell command as u, as the user's own process would act.
func asUser(t *testing.T, u mailtest.Account, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as %s: %s: %v: %s", u.Name, script, err, out)
	}
}

// victim is a directory and a file of root's that a hostile user points their files at: the
// directory writable by anyone, so that only the rollback's refusal to follow a symlink keeps
// it clean.
func victim(t *testing.T) (dir, file string) {
	t.Helper()
	base, err := os.MkdirTemp("", "mdmt-rbvictim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, file = filepath.Join(base, "dir"), filepath.Join(base, "file")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("From x@example.org Mon Jan  1 10:00:00 2024\nSubject: not for users\n\nroot's\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

// etcNames lists /etc, whose entries a rollback must never add to.
func etcNames(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/etc")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// errorLine returns the error line of user in stderr, failing the test unless there is one
// that names the user and matches what (a regexp).
func errorLine(t *testing.T, label, stderr string, u mailtest.Account, what string) string {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "maildirmig: error: user "+u.Name+": ") {
			if !regexp.MustCompile(what).MatchString(l) {
				t.Errorf("%s: %q does not say %q", label, l, what)
			}
			return l
		}
	}
	t.Errorf("%s: no error line for %s:\n%s", label, u.Name, stderr)
	return ""
}

// fileSum is the sha256 of the file p, "" when it cannot be read.
func fileSum(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return contentKey(b)
}

// TestRollbackHostileStatic: before the rollback, the user has replaced ~/mail with a symlink
// (to /etc, or to a directory anyone may write in), ~/Mailbox with a symlink to root's file or
// with a FIFO. Each is refused with the user and the file named; nothing is written through
// the symlink, nothing chowned, the run does not hang on the FIFO, the user's real files keep
// their mail, and the other users are rolled back.
func TestRollbackHostileStatic(t *testing.T) {
	vdir, vfile := victim(t)
	bystander := &rbUser{inbox: 3}
	folders := &rbUser{inbox: 3, folders: map[string]int{"Archive": 4}}
	mailbox := &rbUser{mailbox: true, inbox: 5}
	g := newRBRig(t, "rbs", bystander, folders, mailbox)
	for _, tc := range []struct {
		name    string
		u       *rbUser
		hostile string // a shell script run as the user after the migration, in the home
		fails   string // what the user's error line says
		kept    string // where the user's own file now is, which must be as it was
		orig    string // what it was, relative to the home
	}{
		{"mail is a symlink to /etc", folders, "mv mail mail.real && ln -s /etc mail", `/mail.*symlink|/mail.*too many levels`, "mail.real/Archive", "mail/Archive"},
		{"mail is a symlink to a directory anyone may write in", folders, "mv mail mail.real && ln -s " + vdir + " mail", `/mail.*symlink|/mail.*too many levels`, "mail.real/Archive", "mail/Archive"},
		{"Mailbox is a symlink to root's file", mailbox, "mv Mailbox Mailbox.real && ln -s " + vfile + " Mailbox", `/Mailbox is a symlink`, "Mailbox.real", "Mailbox"},
		{"Mailbox is a FIFO", mailbox, "mv Mailbox Mailbox.real && mkfifo Mailbox", `/Mailbox is not a regular file`, "Mailbox.real", "Mailbox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.prepare(t)
			before := fileSum(filepath.Join(tc.u.Home, tc.orig))
			etc := etcNames(t)
			asUser(t, tc.u.Account, "cd "+tc.u.Home+" && "+tc.hostile)
			r := runBinary(t, g.args("rollback", nil)...)
			if r.code != 3 {
				t.Errorf("exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
			}
			t.Logf("%s", r.stderr)
			errorLine(t, tc.name, r.stderr, tc.u.Account, tc.fails)
			if got := fileSum(filepath.Join(tc.u.Home, tc.kept)); got != before || got == "" {
				t.Errorf("%s: %s is %s, want %s as it was", tc.name, tc.kept, got, before)
			}
			if etcNames(t) != etc {
				t.Errorf("%s: /etc has other entries after the rollback", tc.name)
			}
			checkVictim(t, vdir, vfile)
			if !strings.Contains(r.stdout, bystander.Name+": 3 messages written back") {
				t.Errorf("%s: the bystander was not rolled back:\n%s", tc.name, r.stdout)
			}
			for _, p := range []string{g.spool, tc.u.Home} {
				if litter, _ := filepath.Glob(filepath.Join(p, ".maildirmig-rollback.*")); len(litter) > 0 {
					t.Errorf("%s: left behind: %v", tc.name, litter)
				}
			}
		})
	}
}

// TestRollbackHostileRace forces the races of a user against a rollback in progress: the run
// stops where the new mbox is being written (the first write of a worker), the user acts, the
// run carries on. The user replaces ~/mail/Lists or ~/mail with a symlink to a directory
// anyone may write in, ~/Mailbox or the spool with a symlink to root's file or a FIFO, or
// appends to or truncates the spool without taking its locks. Nothing may be written through
// a symlink or chowned; no mail may be lost (what the user's files held, and what they
// appended, is still there); a refusal names the user and the file; and once the user stops,
// one more rollback finishes.
func TestRollbackHostileRace(t *testing.T) {
	vdir, vfile := victim(t)
	spool := &rbUser{inbox: 30, late: true}
	folders := &rbUser{inbox: 3, folders: map[string]int{"Archive": 4, "Lists/Go": 3}}
	mailbox := &rbUser{mailbox: true, inbox: 5}
	g := newRBRig(t, "rbr", spool, folders, mailbox)
	// The spool directory is like /var/mail, where a user may reach their own spool.
	for _, p := range []string{filepath.Dir(g.spool), filepath.Dir(filepath.Dir(g.spool))} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	appended := fmt.Sprintf("From hostile@example.org Wed Jan  3 08:00:00 2024\nFrom: hostile@example.org\nSubject: appended without the locks\nMessage-ID: <appended.%s@mdmt.test>\n\nappended while the rollback ran\n\n", spool.Name)
	for _, tc := range []struct {
		name string
		u    *rbUser
		at   int    // act at the at-th stop: the spool's and ~/Mailbox's worker stop first, the folders worker second
		act  string // a shell script run as the user then, in the home
		// What must come of it: the user's error line ("" for none), and files of the user
		// (relative to the home, or "spool") with what they must hold: "old" as before the
		// rollback, "new" changed by it, "old+appended", "empty".
		fails string
		files map[string]string
		again string // what the user's files must hold after one more rollback (the same keys)
	}{
		{"mail/Lists becomes a symlink", folders, 2, "cd mail && mv Lists Lists.real && ln -s " + vdir + " Lists",
			`folder Lists/Go: .*/mail/Lists.*(symlink|too many levels)`,
			map[string]string{"mail/Archive": "new", "mail/Lists.real/Go": "old"}, ""},
		{"mail becomes a symlink", folders, 2, "mv mail mail.real && ln -s " + vdir + " mail",
			"", map[string]string{"mail.real/Archive": "new", "mail.real/Lists/Go": "new"}, ""},
		{"Mailbox becomes a symlink", mailbox, 1, "mv Mailbox Mailbox.real && ln -s " + vfile + " Mailbox",
			`/Mailbox was replaced while it was locked`, map[string]string{"Mailbox.real": "old"}, ""},
		{"Mailbox becomes a FIFO", mailbox, 1, "mv Mailbox Mailbox.real && mkfifo Mailbox",
			`/Mailbox was replaced while it was locked`, map[string]string{"Mailbox.real": "old"}, ""},
		{"spool becomes a symlink", spool, 1, "mv " + g.src(spool) + " " + g.src(spool) + ".real && ln -s " + vfile + " " + g.src(spool),
			`/` + spool.Name + ` was replaced while it was locked`, map[string]string{"spool.real": "old"}, ""},
		{"spool appended to", spool, 1, "cat >> " + g.src(spool) + " <<'EOF'\n" + appended + "EOF",
			`/` + spool.Name + `.*changed while it was locked`, map[string]string{"spool": "old+appended"}, "new+appended"},
		{"spool truncated", spool, 1, ": > " + g.src(spool),
			`/` + spool.Name + `.*changed while it was locked`, map[string]string{"spool": "empty"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.prepare(t)
			path := func(rel string) string {
				if strings.HasPrefix(rel, "spool") {
					return g.src(tc.u) + strings.TrimPrefix(rel, "spool")
				}
				return filepath.Join(tc.u.Home, rel)
			}
			old := map[string][]byte{}
			for rel := range tc.files {
				orig := strings.NewReplacer(".real", "").Replace(rel)
				b, err := os.ReadFile(path(orig))
				if err != nil {
					t.Fatal(err)
				}
				old[rel] = b
			}
			maildirs := snapshot(t, nil, g.maildirPaths()...)
			etc := etcNames(t)
			acted := false
			r, stops := runWithStop(t, "export:1:stop", func(s stopped) {
				if s.n != tc.at {
					return
				}
				if s.uid != tc.u.UID {
					t.Errorf("stop %d is of uid %d, not %s's worker", s.n, s.uid, tc.u.Name)
					return
				}
				asUser(t, tc.u.Account, "cd "+tc.u.Home+" && "+tc.act)
				acted = true
			}, g.args("rollback", []*rbUser{tc.u})...)
			t.Logf("%d stops; exit %d\n%s%s", stops, r.code, r.stdout, r.stderr)
			if !acted {
				t.Fatalf("the run never stopped where the user acts")
			}
			if tc.fails != "" {
				if r.code != 3 {
					t.Errorf("exit %d, want 3", r.code)
				}
				errorLine(t, tc.name, r.stderr, tc.u.Account, tc.fails)
			} else if r.code != 0 {
				t.Errorf("exit %d, want 0", r.code)
			}
			for rel, want := range tc.files {
				got, err := os.ReadFile(path(rel))
				ok := err == nil
				switch want {
				case "old":
					ok = ok && bytes.Equal(got, old[rel])
				case "new":
					ok = ok && !bytes.Equal(got, old[rel]) && bytes.HasPrefix(got, []byte("From "))
				case "old+appended":
					ok = ok && string(got) == string(old[rel])+appended
				case "empty":
					ok = ok && len(got) == 0
				}
				if !ok {
					t.Errorf("%s: %s: %d bytes (%v), want %s (%d bytes before)", tc.name, rel, len(got), err, want, len(old[rel]))
				}
			}
			checkVictim(t, vdir, vfile)
			if etcNames(t) != etc {
				t.Errorf("%s: /etc has other entries after the rollback", tc.name)
			}
			if d := snapDiff(snapshot(t, nil, g.maildirPaths()...), maildirs); len(d) > 0 {
				t.Errorf("%s: the rollback changed a Maildir:\n%s", tc.name, strings.Join(d, "\n"))
			}
			for _, p := range []string{g.spool, tc.u.Home, filepath.Join(tc.u.Home, "mail"), filepath.Join(tc.u.Home, "mail.real"), filepath.Join(tc.u.Home, "mail", "Lists.real")} {
				if litter, _ := filepath.Glob(filepath.Join(p, ".maildirmig-rollback.*")); len(litter) > 0 {
					t.Errorf("%s: left behind: %v", tc.name, litter)
				}
			}
			if tc.again == "" {
				return
			}
			again := runBinary(t, g.args("rollback", []*rbUser{tc.u})...)
			if again.code != 0 {
				t.Errorf("%s: the rollback after: exit %d\n%s%s", tc.name, again.code, again.stdout, again.stderr)
			}
			for rel := range tc.files {
				got, err := os.ReadFile(path(rel))
				if err != nil || bytes.Equal(got, old[rel]) || !bytes.HasSuffix(got, []byte(appended)) {
					t.Errorf("%s: after the rollback after: %s: %d bytes (%v), want it rolled back with what was appended at its end", tc.name, rel, len(got), err)
				}
			}
		})
	}
}

// TestRollbackHostileAfterExchange: a process of the user opened their spool before the
// rollback (without its locks) and appends through that descriptor just after root exchanged
// the new mbox with the old one, into the old one. Root must see it before removing the old
// one, put it back, and refuse: what was appended is in the spool, nothing is lost; once the
// user stops, one more rollback keeps it after the Maildir's messages.
func TestRollbackHostileAfterExchange(t *testing.T) {
	u := &rbUser{inbox: 20, late: true}
	g := newRBRig(t, "rbx", u)
	for _, p := range []string{filepath.Dir(g.spool), filepath.Dir(filepath.Dir(g.spool))} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g.prepare(t)
	old, err := os.ReadFile(g.src(u))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mdmt-rbfifo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	appended := "From hostile@example.org Wed Jan  3 08:00:00 2024\nSubject: through an old descriptor\n\nappended to the old spool\n\n"
	// The user's process: opens the spool for appending now, then waits for the word.
	perl := exec.Command("perl", "-e", `open(my $f, ">>", $ARGV[0]) or die "open: $!"; $| = 1; print "open\n"; open(my $q, "<", $ARGV[1]) or die "fifo: $!"; my $w = <$q>; print $f $ARGV[2] or die "write: $!"; close($f) or die "close: $!";`, g.src(u), fifo, appended)
	perl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	var perlErr bytes.Buffer
	perl.Stderr = &perlErr
	out, err := perl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := perl.Start(); err != nil {
		t.Skipf("no perl to stand in for the user: %v", err)
	}
	if line, _ := bytesReadLine(out); line != "open" {
		t.Fatalf("the user's process did not open the spool: %q %s", line, perlErr.String())
	}
	r, stops := runWithStop(t, "swap:1:stop", func(s stopped) {
		if s.n != 1 || s.uid != 0 {
			t.Errorf("stop %d of uid %d: want root at its exchange", s.n, s.uid)
			return
		}
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("now\n")
		f.Close()
		if err := perl.Wait(); err != nil {
			t.Errorf("the user's process: %v: %s", err, perlErr.String())
		}
	}, g.args("rollback", nil)...)
	t.Logf("%d stops; exit %d\n%s%s", stops, r.code, r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	errorLine(t, "appended after the exchange", r.stderr, u.Account, `/`+u.Name+` changed while it was locked`)
	if got, err := os.ReadFile(g.src(u)); err != nil || string(got) != string(old)+appended {
		t.Errorf("the spool: %d bytes (%v), want the old one with what was appended (%d bytes)", len(got), err, len(old)+len(appended))
	}
	if litter, _ := filepath.Glob(filepath.Join(g.spool, ".maildirmig-rollback.*")); len(litter) > 0 {
		t.Errorf("left behind: %v", litter)
	}
	again := runBinary(t, g.args("rollback", nil)...)
	got, err := os.ReadFile(g.src(u))
	if again.code != 0 || err != nil || string(got) == string(old)+appended || !strings.HasSuffix(string(got), appended) {
		t.Errorf("the rollback after: exit %d, spool of %d bytes (%v); want it rolled back with what was appended at its end\n%s%s", again.code, len(got), err, again.stdout, again.stderr)
	}
}

// bytesReadLine reads one line from r, without its newline.
func bytesReadLine(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 1 && one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[:n]...)
		if err != nil {
			return string(b), err
		}
	}
}

// TestRollbackHostileFolderNames: the user made Maildir++ folders whose names an mbox folder
// root cannot hold, or that try to climb out of it (an empty level, "..", a trailing dot, a
// leading '~', a name Dovecot keeps for itself, a folder beneath a folder that holds mail,
// '/' in modified UTF-7), and one that is a symlink to a directory anyone may write in. Each
// refused folder is named with the user; the others are rolled back; nothing is written
// outside ~/mail, nor anything in ~/mail but the mboxes of the folders rolled back and the
// subscriptions.
func TestRollbackHostileFolderNames(t *testing.T) {
	vdir, vfile := victim(t)
	u := &rbUser{inbox: 3, folders: map[string]int{"Archive": 4}}
	g := newRBRig(t, "rbn", u)
	g.prepare(t)
	md := filepath.Join(u.Home, "Maildir")
	refused := []string{"..Evil", ".a..b", ".Lists.", ".~x", ".dovecot-uidlist", ".Archive.Sub"}
	for _, d := range append(refused, ".&AC8-") {
		newFolder(t, u.Account, md, d, 1)
	}
	asUser(t, u.Account, "ln -s "+vdir+" "+filepath.Join(md, ".Link"))
	archive := fileSum(filepath.Join(u.Home, "mail", "Archive"))
	homeBefore := listDir(t, u.Home)
	etc := etcNames(t)

	r := runBinary(t, g.args("rollback", nil)...)
	t.Logf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 3 {
		t.Errorf("exit %d, want 3", r.code)
	}
	line := errorLine(t, "folder names", r.stderr, u.Account, ".")
	for _, d := range refused {
		if !strings.Contains(line, "folder "+d+": ") || !strings.Contains(line, filepath.Join(md, d)+": ") {
			t.Errorf("the error line does not refuse %s by its path: %q", d, line)
		}
	}
	if got := fileSum(filepath.Join(u.Home, "mail", "Archive")); got == archive || got == "" {
		t.Errorf("~/mail/Archive was not rolled back beside the refused folders")
	}
	if got, want := strings.Join(listDir(t, filepath.Join(u.Home, "mail")), " "), "&AC8- .subscriptions Archive"; got != want {
		t.Errorf("~/mail holds %q, want %q", got, want)
	}
	if got := listDir(t, u.Home); strings.Join(got, " ") != strings.Join(homeBefore, " ") {
		t.Errorf("the home holds %v, was %v", got, homeBefore)
	}
	checkVictim(t, vdir, vfile)
	if etcNames(t) != etc {
		t.Errorf("/etc has other entries after the rollback")
	}
}
