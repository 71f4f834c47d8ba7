// Command maildirmig migrates mbox spools to Maildir and keeps Maildirs healthy.
// See doc.go for the manual.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/maildirmig/maildirmig/migrate"
)

func main() {
	// The per-user worker is this same program started again as the user (see package
	// migrate): it serves its one request and exits before any command line is parsed.
	if migrate.IsWorker() {
		os.Exit(migrate.WorkerMain())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
