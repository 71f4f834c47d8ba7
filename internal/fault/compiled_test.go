package fault

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHooksCompiledAway shows that the hooks cost a normal build nothing: a program that
// passes every kind of hook has, built normally, not one symbol of this package (each hook
// was inlined to nothing), while its faultinject build has them.
func TestHooksCompiledAway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program twice")
	}
	symbols := func(tags ...string) int {
		bin := filepath.Join(t.TempDir(), "hooks")
		args := append([]string{"build"}, tags...)
		if out, err := exec.Command("go", append(args, "-o", bin, "./testdata/hooks")...).CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", tags, err, out)
		}
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm: %v", err)
		}
		return strings.Count(string(out), "maildirmig/internal/fault.")
	}
	if n := symbols(); n != 0 {
		t.Errorf("the normal build has %d symbols of internal/fault, want none", n)
	}
	if n := symbols("-tags", "faultinject"); n == 0 {
		t.Errorf("the faultinject build has no symbol of internal/fault: the test cannot tell")
	}
}
