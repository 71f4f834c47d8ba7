// Package host is the system whose mail is migrated, as one value: the root it lives under
// (--root), where its accounts are read from, its mail spool, and maildirmig's own state and
// audit log on it. Each command builds one Host from its flags and hands it to migrate, check,
// preflight, verify and record; the defaults, and what a path means under a root, are written
// here and nowhere else.
package host

import (
	"os"
	"path/filepath"
	"runtime"
)

// Defaults of the paths maildirmig keeps on the host, before resolution under Root.
const (
	DefaultStateDir = "/var/lib/maildirmig"
	DefaultAuditLog = "/var/log/maildirmig/audit.jsonl"
	// DefaultSpoolDir is where Postfix delivers by default; Debian makes it a link to
	// /var/mail, and Spool then takes the real directory.
	DefaultSpoolDir = "/var/spool/mail"
	otherSpoolDir   = "/var/mail"
)

// Host is the system being migrated. Its zero value is this machine with the defaults.
type Host struct {
	// Root is a directory that stands for /: a mounted system, or a demo tree. "" is /.
	Root string
	// Passwd is a passwd file read instead of the accounts of Root (or NSS): a path on this
	// machine, not under Root.
	Passwd string
	// SpoolDir, StateDir and AuditLog are paths on the host ("" for the defaults), resolved
	// under Root.
	SpoolDir, StateDir, AuditLog string
}

// Abs returns h with its paths absolute, so that they name the same files whatever the
// working directory of whoever uses them (a worker starts in /, and the state is keyed on
// the path of each source). Root and Passwd are taken from the working directory; so are the
// other paths when there is no Root, and beneath Root otherwise.
func (h Host) Abs() (Host, error) {
	var err error
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || err != nil {
			return p
		}
		var a string
		a, err = filepath.Abs(p)
		return a
	}
	h.Root, h.Passwd = abs(h.Root), abs(h.Passwd)
	if h.Root == "" {
		h.SpoolDir, h.StateDir, h.AuditLog = abs(h.SpoolDir), abs(h.StateDir), abs(h.AuditLog)
	}
	return h, err
}

// Under returns where the host's path p is on this machine: p itself without a Root, else
// p beneath Root.
func (h Host) Under(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// Spool returns the spool directory on this machine: SpoolDir when given, else
// /var/spool/mail where it is a real directory and /var/mail where it is not (Debian links
// the first to the second), so that a dotlock is made next to the file the MTA locks.
func (h Host) Spool() string {
	if h.SpoolDir != "" {
		return h.Under(h.SpoolDir)
	}
	p := h.Under(DefaultSpoolDir)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return p
	}
	return h.Under(otherSpoolDir)
}

// StatePath returns the state directory as given or by default, on the host (not resolved):
// audit.MkdirUnder resolves it under Root itself, refusing symlinks on the way.
func (h Host) StatePath() string {
	if h.StateDir == "" {
		return DefaultStateDir
	}
	return h.StateDir
}

// State returns the state directory on this machine.
func (h Host) State() string { return h.Under(h.StatePath()) }

// AuditPath returns the audit log as given or by default, on the host (not resolved).
func (h Host) AuditPath() string {
	if h.AuditLog == "" {
		return DefaultAuditLog
	}
	return h.AuditLog
}

// Audit returns the audit log on this machine.
func (h Host) Audit() string { return h.Under(h.AuditPath()) }

// DefaultJobs is how many users are worked on at a time unless told otherwise: the number of
// CPUs, at least 2 (a user waiting on a lock or a slow home leaves the other busy) and at most
// 8 (beyond, the disk is the limit).
func DefaultJobs() int {
	return min(max(runtime.GOMAXPROCS(0), 2), 8)
}
