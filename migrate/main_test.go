package migrate

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a helper process instead of running tests.
const helperEnv = "MIGRATE_TEST_HELPER"

func TestMain(m *testing.M) {
	if IsWorker() {
		os.Exit(WorkerMain())
	}
	if dir := os.Getenv(stateHelperEnv); dir != "" {
		os.Exit(stateWriteHelper(dir))
	}
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(classicLockHelper(path))
	}
	os.Exit(m.Run())
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
