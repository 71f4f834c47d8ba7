//go:build race

package check_test

import "os"

func init() {
	// A process built with the race detector sleeps a second as it exits (GORACE's
	// atexit_sleep_ms, 1000 by default): the workers this binary starts exit at once.
	os.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
}
