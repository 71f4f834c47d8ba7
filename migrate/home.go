package migrate

import "golang.org/x/sys/unix"

// CheckHome reports why the worker would refuse the home directory of the user with uid (a
// symlink, not a directory, someone else's, writable by others), or why it cannot be opened
// (it is missing), by the very check the worker makes before it writes anything there. Run
// without root, the home must be the invoking user's, as for a migration.
func CheckHome(home string, uid int) error {
	if euid := unix.Geteuid(); euid != 0 {
		uid = euid
	}
	fd, err := openHome(&workerRequest{Home: home, Owner: uid})
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
