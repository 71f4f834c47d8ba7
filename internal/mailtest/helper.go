package mailtest

import (
	"bufio"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// KillWhenSaid runs this test binary again as a helper process, with env added to its
// environment (the helper's TestMain reads it and does its part), waits until the helper
// prints the line said on stdout, then kills it with SIGKILL, as a power cut or the OOM
// killer would, and waits for it to be gone: a test of what a process killed in the middle
// of its work leaves behind. It returns the helper's pid.
func KillWhenSaid(t testing.TB, said string, env ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != said+"\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("mailtest: the helper said %q (%v), want %q", line, err, said)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return cmd.Process.Pid
}
