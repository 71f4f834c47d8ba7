// Package selinux tells whether SELinux is enabled on this host, and relabels a Maildir as the
// policy says, as the Maildir's user.
//
// On Red Hat, CentOS and Fedora the policy gives ~/Maildir a mail type (mail_home_rw_t) that
// Postfix's and Dovecot's domains may use. A Maildir made by another program carries the label
// it inherits from its directory (the home's), and Dovecot is then denied. restorecon -RF sets
// every file beneath it to what the policy says for its path, and follows no symlink. Relabel
// runs it with the user's uid, gid and groups, so that it can change the labels of nothing
// but the user's own files (the kernel lets only a file's owner relabel it), whatever the
// user put in the Maildir.
package selinux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Mode is SELinux's mode.
type Mode string

const (
	Disabled   Mode = "disabled"
	Permissive Mode = "permissive"
	Enforcing  Mode = "enforcing"
)

// Host names where the kernel and the configuration say SELinux's mode: selinuxfs (mounted
// at /sys/fs/selinux when SELinux is enabled) and /etc/selinux/config. Tests point them at a
// tree of their own.
type Host struct {
	FS     string
	Config string
}

// System is this host's.
var System = Host{FS: "/sys/fs/selinux", Config: "/etc/selinux/config"}

// Status is SELinux's state on a host.
type Status struct {
	Mode Mode `json:"mode"`
	// Boot is the mode /etc/selinux/config sets from the next boot on, "" when the file is
	// missing or says nothing.
	Boot Mode `json:"boot,omitempty"`
}

// Enabled reports whether SELinux labels files now.
func (s Status) Enabled() bool { return s.Mode == Enforcing || s.Mode == Permissive }

// Detect reads the mode: from selinuxfs's enforce file (1 enforcing, 0 permissive) when
// SELinux is enabled, else disabled; and the mode of the next boot from the configuration.
func (h Host) Detect() (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(h.FS, "enforce"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.Mode = Disabled
	case err != nil:
		return s, fmt.Errorf("selinux: %w", err)
	default:
		switch strings.TrimSpace(string(b)) {
		case "1":
			s.Mode = Enforcing
		case "0":
			s.Mode = Permissive
		default:
			return s, fmt.Errorf("selinux: %s says %q, not 0 or 1", filepath.Join(h.FS, "enforce"), bytes.TrimSpace(b))
		}
	}
	if b, err := os.ReadFile(h.Config); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SELINUX="); ok {
				switch m := Mode(strings.ToLower(strings.Trim(strings.TrimSpace(v), `"'`))); m {
				case Disabled, Permissive, Enforcing:
					s.Boot = m
				}
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("selinux: %w", err)
	}
	return s, nil
}

// Restorecon returns the path of restorecon (policycoreutils): on PATH, else in /usr/sbin or
// /sbin, where it is and where root's PATH may not reach from cron; "" when it is missing.
func Restorecon() string {
	if p, err := exec.LookPath("restorecon"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, "restorecon")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Command is the command line that relabels the Maildirs paths, for an administrator.
func Command(paths ...string) string {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = shellQuote(p)
	}
	return "restorecon -RF " + strings.Join(quoted, " ")
}

// Credentials say whom restorecon runs as.
type Credentials struct {
	UID, GID int
	Groups   []int
}

// Relabel runs restorecon -RF path as cred, in a session of its own, killed if this process
// dies. Its error carries what restorecon said.
func Relabel(ctx context.Context, restorecon string, cred Credentials, path string) error {
	cmd := exec.CommandContext(ctx, restorecon, "-RF", path)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	if os.Geteuid() == 0 && cred.UID != 0 {
		groups := make([]uint32, len(cred.Groups))
		for i, g := range cred.Groups {
			groups[i] = uint32(g)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(cred.UID), Gid: uint32(cred.GID), Groups: groups}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		if msg != "" {
			return fmt.Errorf("selinux: %s: %w: %s", Command(path), err, msg)
		}
		return fmt.Errorf("selinux: %s: %w", Command(path), err)
	}
	return nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
