//go:build !race

package main

// scriptGORACE is "" without the race detector (see race_test.go).
const scriptGORACE = ""
