//go:build !faultinject

package fault

import "os"

// Enabled reports whether this binary was built with the faultinject tag.
const Enabled = false

// Err returns err: in a normal build nothing is injected.
func (Point) Err(err error) error { return err }

// On returns the point's hook for a call on f.
func (Point) On(f *os.File, op string) File { return File{} }

// File is a point's hook for a call on a file; in a normal build it holds nothing.
type File struct{}

// Err returns err unchanged.
func (File) Err(err error) error { return err }

// N returns n and err unchanged, for a Write-like call.
func (File) N(n int, err error) (int, error) { return n, err }

// N64 returns n and err unchanged, for a Copy-like call.
func (File) N64(n int64, err error) (int64, error) { return n, err }

// Hit marks a kill-only point; in a normal build it does nothing.
func (Point) Hit() {}

// Environ returns what a worker must inherit: nothing in a normal build.
func Environ() []string { return nil }
