package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/maildirmig/maildirmig/migrate"
)

func TestMain(m *testing.M) {
	// The worker the scripts' migrations start is this test binary again, as main does it.
	if migrate.IsWorker() {
		os.Exit(migrate.WorkerMain())
	}
	testscript.Main(m, map[string]func(){
		"maildirmig": func() { os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the end-to-end scripts in testdata/script: each drives the real binary
// (through testscript's re-exec) in a scratch directory.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/script"))
}

// scriptParams are the settings every script run shares: custom commands, conditions, and a
// fixed time zone other than UTC so that zone handling is exercised.
func scriptParams(t *testing.T, dir string) testscript.Params {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(filepath.Dir(wd))
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("TZ", "America/New_York")
			env.Setenv("REPO", repo)
			env.Setenv("CORPORA", filepath.Join(filepath.Dir(repo), "shared", "corpora"))
			if scriptGORACE != "" {
				env.Setenv("GORACE", scriptGORACE)
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			case "corpora":
				_, err := os.Stat(filepath.Join(filepath.Dir(repo), "shared", "corpora"))
				return err == nil, nil
			case "linux":
				return runtime.GOOS == "linux", nil
			}
			if strings.HasPrefix(cond, "exe:") {
				_, err := os.Stat(strings.TrimPrefix(cond, "exe:"))
				return err == nil, nil
			}
			return false, nil
		},
		Cmds: scriptCmds,
	}
}
