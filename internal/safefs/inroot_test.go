package safefs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenInRoot resolves names beneath a root full of symlinks, through openat2 and through
// the user-space fallback, with the same expectations: the kernel is the fallback's oracle.
// Beside the root lies "outside", which a lookup that left the root would read.
func TestOpenInRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	for _, d := range []string{root + "/var/log/real", root + "/outside", base + "/outside", root + "/srv"} {
		must(t, os.MkdirAll(d, 0o700))
	}
	must(t, os.WriteFile(root+"/var/log/real/f", []byte("inside"), 0o600))
	must(t, os.WriteFile(root+"/outside/f", []byte("root's outside"), 0o600))
	must(t, os.WriteFile(base+"/outside/f", []byte("escaped"), 0o600))
	must(t, os.WriteFile(root+"/srv/file", []byte("a file"), 0o600))
	for link, target := range map[string]string{
		"var/log/abs":    "/var/log/real",                // absolute: taken from the root
		"var/log/rel":    "real",                         // relative to its directory
		"var/log/up":     "../../../../../var/log/real",  // ".." stops at the root
		"var/log/escape": "../../../outside",             // would leave the root but for that
		"var/log/chain":  "abs",                          // a symlink to a symlink
		"var/log/loop":   "loop",                         // never resolves
		"var/log/file":   "/srv/file",                    // not a directory
		"var/log/to-abs": "/var/log/abs/../../log/real/", // ".." after a symlink: from where it led
		"var/log/empty":  "/var/log/missing",             // dangling
		"var/log/rootln": "/",                            // the root itself
	} {
		must(t, os.Symlink(target, filepath.Join(root, link)))
	}
	tests := []struct {
		name  string
		flags int
		want  string // the content of the file opened, or "" with err
		err   unix.Errno
	}{
		{"var/log/real/f", unix.O_RDONLY, "inside", 0},
		{"/var/log/real/f", unix.O_RDONLY, "inside", 0},
		{"../../var/log/real/f", unix.O_RDONLY, "inside", 0},
		{"var/log/abs/f", unix.O_RDONLY, "inside", 0},
		{"var/log/rel/f", unix.O_RDONLY, "inside", 0},
		{"var/log/up/f", unix.O_RDONLY, "inside", 0},
		{"var/log/chain/f", unix.O_RDONLY, "inside", 0},
		{"var/log/to-abs/f", unix.O_RDONLY, "inside", 0},
		{"var/log/escape/f", unix.O_RDONLY, "root's outside", 0},
		{"var/log/rootln/outside/f", unix.O_RDONLY, "root's outside", 0},
		{"var/log/real/../../../../outside/f", unix.O_RDONLY, "root's outside", 0},
		{"var/log/loop/f", unix.O_RDONLY, "", unix.ELOOP},
		{"var/log/loop", unix.O_RDONLY, "", unix.ELOOP},
		{"var/log/file/x", unix.O_RDONLY, "", unix.ENOTDIR},
		{"var/log/file", unix.O_RDONLY | unix.O_DIRECTORY, "", unix.ENOTDIR},
		{"var/log/file", unix.O_RDONLY, "a file", 0},
		{"var/log/file", unix.O_RDONLY | unix.O_NOFOLLOW, "", unix.ELOOP},
		{"var/log/empty", unix.O_RDONLY, "", unix.ENOENT},
		{"var/log/missing/f", unix.O_RDONLY, "", unix.ENOENT},
		{"", unix.O_RDONLY, "", unix.ENOENT},
	}
	modes(t, func(t *testing.T) {
		fd := openRoot(t, root)
		for _, tt := range tests {
			f, err := OpenInRoot(fd, tt.name, tt.flags, 0)
			if tt.err != 0 {
				if err != tt.err {
					t.Errorf("OpenInRoot(%q, %#x) = %v, want %v", tt.name, tt.flags, err, tt.err)
				}
				if err == nil {
					unix.Close(f)
				}
				continue
			}
			if err != nil {
				t.Errorf("OpenInRoot(%q, %#x): %v", tt.name, tt.flags, err)
				continue
			}
			buf := make([]byte, 32)
			n, _ := unix.Read(f, buf)
			unix.Close(f)
			if string(buf[:n]) != tt.want {
				t.Errorf("OpenInRoot(%q) read %q, want %q", tt.name, buf[:n], tt.want)
			}
		}
		// A directory reached through symlinks, and a file created beneath it.
		for _, name := range []string{"var/log/abs", "var/log/up/", "var/log/real/..", ".", "/", "var/log/rootln"} {
			d, err := OpenInRoot(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Errorf("OpenInRoot(%q, O_DIRECTORY): %v", name, err)
				continue
			}
			unix.Close(d)
		}
		f, err := OpenInRoot(fd, "var/log/abs/new", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		must(t, err)
		unix.Close(f)
		must(t, os.Remove(root+"/var/log/real/new"))
	})
}

// TestOpenInRootMagicLink: a magic link is refused, as RESOLVE_NO_MAGICLINKS refuses it, when
// the root is "/" and the lookup goes through /proc.
func TestOpenInRootMagicLink(t *testing.T) {
	modes(t, func(t *testing.T) {
		if _, err := os.Stat("/proc/self/fd"); err != nil {
			t.Skip("no /proc:", err)
		}
		root := openRoot(t, "/")
		f, err := os.Open(filepath.Join(t.TempDir()))
		must(t, err)
		defer f.Close()
		name := "proc/self/fd/" + strconv.Itoa(int(f.Fd()))
		fd, err := OpenInRoot(root, name, unix.O_RDONLY, 0)
		if err == nil {
			unix.Close(fd)
			t.Fatalf("opened the magic link %s", name)
		}
		if err != unix.ELOOP {
			t.Errorf("OpenInRoot(%q) = %v, want ELOOP", name, err)
		}
	})
}
