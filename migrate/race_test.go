//go:build race

package migrate

// raceSlowdown stretches the stall timeouts of the watchdog tests in a build with the race
// detector, whose workers (this test binary) run several times slower: a gap between two
// progress reports that is nothing without it can pass a short stall timeout with it.
const raceSlowdown = 5
