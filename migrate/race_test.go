//go:build race

package migrate

import "os"

// raceSlowdown stretches the stall timeouts of the watchdog tests in a build with the race
// detector, whose workers (this test binary) run several times slower: a gap between two
// progress reports that is nothing without it can pass a short stall timeout with it.
const raceSlowdown = 5

func init() {
	// A process built with the race detector sleeps a second as it exits (GORACE's
	// atexit_sleep_ms, 1000 by default), and root gives a worker that released its lock no
	// more than the stall timeout to be gone: the workers this binary starts exit at once.
	os.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
}
