package check_test

import (
	"os"

	"github.com/maildirmig/maildirmig/check"
	"github.com/maildirmig/maildirmig/migrate"
)

// The test binary is also the workers its tests start, as maildirmig is its own: a worker
// serves its request before any test runs.
func init() {
	if migrate.IsWorker() {
		os.Exit(migrate.WorkerMain())
	}
	check.UseAsUser(migrate.AsUser{})
}
