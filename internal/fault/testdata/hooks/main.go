// Command hooks passes every kind of fault hook, for TestHooksCompiledAway: built without the
// faultinject tag it must hold no symbol of package fault.
package main

import (
	"os"

	"github.com/maildirmig/maildirmig/internal/fault"
)

func main() {
	f := os.Stdout
	n, err := fault.Write.On(f, "write").N(f.Write([]byte("x\n")))
	err = fault.Fsync.On(f, "fsync").Err(err)
	err = fault.Move.Err(err)
	fault.Locked.Hit()
	if n != 2 || err != nil {
		os.Exit(1)
	}
}
