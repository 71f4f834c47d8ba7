package lock

import (
	"bufio"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv and markerEnv make the test binary act as a helper process instead of running
// tests: one that holds a classic fcntl lock, or one that holds a liveness marker.
const (
	helperEnv = "LOCK_TEST_HELPER"
	markerEnv = "LOCK_TEST_MARKER"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(classicLockHelper(path))
	}
	if dir := os.Getenv(markerEnv); dir != "" {
		os.Exit(markerHelper(dir))
	}
	os.Exit(m.Run())
}

// markerHelper creates the liveness marker "marker" in dir and holds it until it is killed.
func markerHelper(dir string) int {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := CreateMarker(fd, "marker", dir+"/marker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	fmt.Println("locked")
	time.Sleep(time.Hour) // until killed
	return 1
}

// classicLockHelper holds a classic (process-associated) fcntl write lock on path, as Postfix
// and procmail take one, until its stdin is closed.
func classicLockHelper(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
