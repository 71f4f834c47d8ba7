// Package users decides whose mail to migrate: it reads the passwd and group databases (through
// NSS, so LDAP and SSSD users count, or from files under a mounted root) and selects users by
// uid range and name.
//
// A user is selected when their uid is at least MinUID and at most UID_MAX from login.defs
// (60000 when absent, which leaves out nobody), plus root unless NoRoot; users with a nologin
// shell are included, because mail is delivered to them all the same. Named users are taken
// whatever their uid. Which users actually have a mailbox is decided by the caller.
//
// LookupUID finds one user by uid the same way, for a caller that knows a file's owner and
// needs the account: convert, run as root, writes as the owner of the Maildir with the groups
// a login would give them.
package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maildirmig/maildirmig/host"
)

// User is one passwd entry with its supplementary groups.
type User struct {
	Name   string
	UID    int
	GID    int
	Home   string
	Shell  string
	Groups []int // supplementary groups, from the group database's member lists
}

// Options select where users are read from and which of them are listed.
type Options struct {
	// Host says where the accounts are: its Passwd file, else /etc/passwd, /etc/group and
	// /etc/login.defs under its Root, else (no Root) NSS and /etc/login.defs.
	Host   host.Host
	Group  string   // group file to read instead (already resolved; overrides NSS)
	MinUID int      // -1 = UID_MIN from login.defs (1000 when absent)
	Names  []string // only these users (an error names any that does not exist)
	NoRoot bool
}

// ErrNoSuchUser is wrapped by List's error when a name it was given is not in the passwd
// database: a mistyped name, which callers may treat as a usage error.
var ErrNoSuchUser = errors.New("no such user")

// Default uid bounds, as Debian's login.defs sets them.
const (
	defaultUIDMin = 1000
	defaultUIDMax = 60000
)

// List returns the selected users in passwd order, or in the order of Names when given.
func List(opts Options) ([]User, error) {
	all, err := readPasswd(opts)
	if err != nil {
		return nil, err
	}
	groups, err := readGroups(opts)
	if err != nil {
		return nil, err
	}
	var sel []User
	if len(opts.Names) > 0 {
		byName := make(map[string]User, len(all))
		for _, u := range all {
			byName[u.Name] = u
		}
		seen := make(map[string]bool)
		var missing []string
		for _, n := range opts.Names {
			if seen[n] {
				continue
			}
			seen[n] = true
			u, ok := byName[n]
			if !ok {
				missing = append(missing, n)
				continue
			}
			sel = append(sel, u)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("users: %w: %s", ErrNoSuchUser, strings.Join(missing, ", "))
		}
	} else {
		minUID, maxUID := loginDefs(opts.Host.Under("/etc/login.defs"))
		if opts.MinUID >= 0 {
			minUID = opts.MinUID
		}
		for _, u := range all {
			switch {
			case u.UID == 0 && u.Name == "root":
				if opts.NoRoot {
					continue
				}
			case u.UID < minUID || u.UID > maxUID:
				continue
			}
			sel = append(sel, u)
		}
	}
	for i := range sel {
		sel[i].Groups = groups[sel[i].Name]
	}
	return sel, nil
}

// readPasswd reads the passwd database; entries after the first with the same name are ignored,
// as NSS lookups by name would return the first.
func readPasswd(opts Options) ([]User, error) {
	data, err := database("passwd", opts.Host.Passwd, opts.Host)
	if err != nil {
		return nil, err
	}
	return parsePasswd(data)
}

// parsePasswd reads passwd lines, keeping the first entry of each name.
func parsePasswd(data []byte) ([]User, error) {
	var out []User
	seen := make(map[string]bool)
	err := eachLine(data, func(n int, line string) error {
		f := strings.Split(line, ":")
		if len(f) != 7 {
			return fmt.Errorf("users: passwd line %d: %d fields, want 7", n, len(f))
		}
		if isNSSCompat(f[0]) {
			return nil
		}
		uid, err := strconv.Atoi(f[2])
		if err != nil || uid < 0 {
			return fmt.Errorf("users: passwd line %d: user %s: bad uid %q", n, f[0], f[2])
		}
		gid, err := strconv.Atoi(f[3])
		if err != nil || gid < 0 {
			return fmt.Errorf("users: passwd line %d: user %s: bad gid %q", n, f[0], f[3])
		}
		if seen[f[0]] {
			return nil
		}
		seen[f[0]] = true
		out = append(out, User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
		return nil
	})
	return out, err
}

// readGroups maps a user name to the gids of the groups that list it as a member.
func readGroups(opts Options) (map[string][]int, error) {
	data, err := database("group", opts.Group, opts.Host)
	if err != nil {
		if opts.Group == "" && errors.Is(err, os.ErrNotExist) {
			// A mounted old disk or a demo tree may have no group file: no supplementary groups.
			return nil, nil
		}
		return nil, err
	}
	out := make(map[string][]int)
	err = eachLine(data, func(n int, line string) error {
		f := strings.Split(line, ":")
		if len(f) != 4 {
			return fmt.Errorf("users: group line %d: %d fields, want 4", n, len(f))
		}
		if isNSSCompat(f[0]) {
			return nil
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || gid < 0 {
			return fmt.Errorf("users: group line %d: group %s: bad gid %q", n, f[0], f[2])
		}
		if f[3] == "" {
			return nil
		}
		for _, m := range strings.Split(f[3], ",") {
			m = strings.TrimSpace(m)
			if m != "" && !containsInt(out[m], gid) {
				out[m] = append(out[m], gid)
			}
		}
		return nil
	})
	return out, err
}

// isNSSCompat reports lines of the +/- compat syntax, which getent has already resolved.
func isNSSCompat(name string) bool {
	return strings.HasPrefix(name, "+") || strings.HasPrefix(name, "-")
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// database returns the contents of the passwd or group database: the file given, the file under
// h's root, or getent's answer (falling back to /etc/db when getent is missing).
func database(db, file string, h host.Host) ([]byte, error) {
	switch {
	case file != "":
	case h.Root != "":
		file = h.Under("/etc/" + db)
	default:
		out, err := exec.Command("getent", db).Output()
		if err == nil {
			return out, nil
		}
		var ee *exec.Error
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("users: getent %s: %w", db, err)
		}
		file = filepath.Join("/etc", db)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return data, nil
}

func eachLine(data []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}

// loginDefs returns UID_MIN and UID_MAX from a login.defs file, with Debian's defaults for what
// it does not say.
func loginDefs(path string) (minUID, maxUID int) {
	minUID, maxUID = defaultUIDMin, defaultUIDMax
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return
	}
	_ = eachLine(data, func(_ int, line string) error {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil
		}
		v, err := strconv.Atoi(fields[1])
		if err != nil || v < 0 {
			return nil
		}
		switch fields[0] {
		case "UID_MIN":
			minUID = v
		case "UID_MAX":
			maxUID = v
		}
		return nil
	})
	return
}

// LookupUID returns the user whose uid is uid, found as a login would find them: through NSS
// (getent passwd UID, which finds LDAP and SSSD users even where they are not enumerated), or
// in the files Options.Host names. Groups are the user's groups as
// initgroups gives them (getent initgroups NAME; from the group file's member lists with
// files). A uid with no entry gives an error wrapping ErrNoSuchUser.
func LookupUID(uid int, opts Options) (User, error) {
	if opts.Host.Passwd == "" && opts.Host.Root == "" {
		u, err := getentUID(uid)
		if err == nil || !errors.Is(err, errNoGetent) {
			return u, err
		}
	}
	all, err := readPasswd(opts)
	if err != nil {
		return User{}, err
	}
	for _, u := range all {
		if u.UID == uid {
			groups, err := readGroups(opts)
			if err != nil {
				return User{}, err
			}
			u.Groups = groups[u.Name]
			return u, nil
		}
	}
	return User{}, fmt.Errorf("users: %w: uid %d", ErrNoSuchUser, uid)
}

// errNoGetent says getent is not installed: the files are read instead.
var errNoGetent = errors.New("users: no getent")

// getentUID asks NSS for uid's passwd entry and groups.
func getentUID(uid int) (User, error) {
	out, err := exec.Command("getent", "passwd", strconv.Itoa(uid)).Output()
	var ee *exec.Error
	if errors.As(err, &ee) {
		return User{}, errNoGetent
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) && xe.ExitCode() == 2 {
		// getent's "key not found".
		return User{}, fmt.Errorf("users: %w: uid %d", ErrNoSuchUser, uid)
	}
	if err != nil {
		return User{}, fmt.Errorf("users: getent passwd %d: %w", uid, err)
	}
	list, err := parsePasswd(out)
	if err != nil {
		return User{}, fmt.Errorf("%w (getent passwd %d)", err, uid)
	}
	if len(list) == 0 {
		return User{}, fmt.Errorf("users: %w: uid %d", ErrNoSuchUser, uid)
	}
	u := list[0]
	if u.UID != uid {
		return User{}, fmt.Errorf("users: getent passwd %d: answered for uid %d", uid, u.UID)
	}
	// "NAME  GID GID ...": the groups initgroups(3) would give, the primary one among them.
	out, err = exec.Command("getent", "initgroups", u.Name).Output()
	if err != nil {
		return User{}, fmt.Errorf("users: getent initgroups %s: %w", u.Name, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 || fields[0] != u.Name {
		return User{}, fmt.Errorf("users: getent initgroups %s: unexpected answer %q", u.Name, out)
	}
	for _, g := range fields[1:] {
		gid, err := strconv.Atoi(g)
		if err != nil || gid < 0 {
			return User{}, fmt.Errorf("users: getent initgroups %s: bad gid %q", u.Name, g)
		}
		if !containsInt(u.Groups, gid) {
			u.Groups = append(u.Groups, gid)
		}
	}
	return u, nil
}
