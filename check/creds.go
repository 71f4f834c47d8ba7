package check

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// asUser runs fn with u's filesystem identity: on one locked OS thread, the filesystem uid and
// gid (setfsuid, setfsgid) and the supplementary groups become u's, so every open, mkdir, chmod
// and unlink fn makes is checked by the kernel as if u made it, and what it creates is u's. A
// filesystem uid other than 0 also clears root's filesystem capabilities (CAP_DAC_OVERRIDE,
// CAP_FOWNER, CAP_CHOWN...) from the thread. These calls are per thread in Linux, and the Go
// runtime never clones a new thread from a locked one, so no other goroutine runs as u. If
// the thread cannot be made root again it is left locked and so ends with its goroutine.
//
// fn must not start goroutines: they would run as root. Outside root, fn simply runs.
func asUser(u User, fn func()) error {
	if os.Geteuid() != 0 || u.UID == 0 {
		fn()
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		saved, err := unix.Getgroups()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("check: getgroups: %w", err)
			return
		}
		groups := u.Groups
		if groups == nil {
			groups = []int{}
		}
		if err := setIdentity(u.UID, u.GID, groups); err != nil {
			if setIdentity(0, 0, saved) == nil {
				runtime.UnlockOSThread()
			}
			errc <- fmt.Errorf("check: acting as user %s: %w", u.Name, err)
			return
		}
		fn()
		if setIdentity(0, 0, saved) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

// setIdentity sets the calling thread's supplementary groups, filesystem gid and filesystem
// uid, and makes sure they took: setfsuid and setfsgid report failure only by not changing.
func setIdentity(uid, gid int, groups []int) error {
	// Root's filesystem uid first when going back, so that the group calls are allowed.
	if uid == 0 {
		unix.Setfsuid(0)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	unix.Setfsgid(gid)
	unix.Setfsuid(uid)
	if got, _ := unix.SetfsgidRetGid(-1); got != gid {
		return fmt.Errorf("setfsgid %d: still %d", gid, got)
	}
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		return fmt.Errorf("setfsuid %d: still %d", uid, got)
	}
	return nil
}
