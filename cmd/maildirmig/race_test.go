//go:build race

package main

// scriptGORACE is the GORACE of the scripts' processes in a build with the race detector:
// each would sleep a second as it exits (atexit_sleep_ms, 1000 by default), maildirmig and
// every worker it starts for a user.
const scriptGORACE = "atexit_sleep_ms=0"
