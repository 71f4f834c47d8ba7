package migrate

import (
	"context"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The test operations first: this binary is also the workers the tests start.
	addWatchdogOps()
	addSlowVerifyOp()
	addSelfOp()
	addRecordsOp()
	if IsWorker() {
		os.Exit(WorkerMain())
	}
	if dir := os.Getenv(stateHelperEnv); dir != "" {
		os.Exit(stateWriteHelper(dir))
	}
	os.Exit(m.Run())
}

// testOp makes a worker operation of a test's function, which needs no source.
func testOp(serve func(req *workerRequest, emit func(workerMsg)) error) workerOp {
	return workerOp{serve: func(_ context.Context, req *workerRequest, _ *os.File, emit func(workerMsg)) error {
		return serve(req, emit)
	}}
}
