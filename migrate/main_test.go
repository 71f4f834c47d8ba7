package migrate

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if IsWorker() {
		os.Exit(WorkerMain())
	}
	if dir := os.Getenv(stateHelperEnv); dir != "" {
		os.Exit(stateWriteHelper(dir))
	}
	os.Exit(m.Run())
}
