package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// modes runs fn once through openat2 and once through the component-by-component fallback.
// Tests that use it are not parallel: the fallback is a package-wide switch.
func modes(t *testing.T, fn func(t *testing.T)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			was := SetFallback(fallback)
			defer SetFallback(was)
			fn(t)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// tree makes root/a/b/c/file ("inside") and root/../outside/{a,b,c,file} with "outside" content,
// so that a followed symlink is seen in what is read.
func tree(t *testing.T) (root, outside string) {
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root + "/a/b/c", outside + "/b/c", outside + "/c"} {
		must(t, os.MkdirAll(d, 0o700))
	}
	must(t, os.WriteFile(root+"/a/b/c/file", []byte("inside"), 0o600))
	for _, f := range []string{outside + "/file", outside + "/b/c/file", outside + "/c/file"} {
		must(t, os.WriteFile(f, []byte("outside"), 0o600))
	}
	return root, outside
}

func TestOpenBeneath(t *testing.T) {
	modes(t, func(t *testing.T) {
		root, _ := tree(t)
		fd := openRoot(t, root)
		f, err := Open(fd, "a/b/c/file", unix.O_RDONLY, 0)
		must(t, err)
		buf := make([]byte, 16)
		n, _ := unix.Read(f, buf)
		unix.Close(f)
		if string(buf[:n]) != "inside" {
			t.Fatalf("read %q, want inside", buf[:n])
		}
		for _, name := range []string{".", "a/./b", "a//b/"} {
			d, err := OpenDir(fd, name)
			if err != nil {
				t.Errorf("OpenDir(%q): %v", name, err)
				continue
			}
			unix.Close(d)
		}
	})
}

// TestOpenRefusesSymlinkInEveryComponent replaces each component of a/b/c/file in turn by a
// symlink to the same place outside the root: no open may follow it.
func TestOpenRefusesSymlinkInEveryComponent(t *testing.T) {
	modes(t, func(t *testing.T) {
		for _, comp := range []string{"a", "a/b", "a/b/c", "a/b/c/file"} {
			t.Run(comp, func(t *testing.T) {
				root, outside := tree(t)
				must(t, os.RemoveAll(filepath.Join(root, comp)))
				target := filepath.Join(outside, filepath.Base(comp))
				must(t, os.Symlink(target, filepath.Join(root, comp)))
				fd := openRoot(t, root)
				for _, flags := range []int{unix.O_RDONLY, unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, unix.O_RDONLY | unix.O_DIRECTORY} {
					f, err := Open(fd, "a/b/c/file", flags, 0o600)
					if err == nil {
						unix.Close(f)
						t.Fatalf("flags %#x: opened through a symlink at %s", flags, comp)
					}
					if err != unix.ELOOP && !(err == unix.ENOTDIR && flags&unix.O_DIRECTORY != 0 && comp == "a/b/c/file") {
						t.Errorf("flags %#x: err = %v, want ELOOP", flags, err)
					}
				}
				got, _ := os.ReadFile(filepath.Join(outside, "file"))
				if string(got) != "outside" {
					t.Errorf("file outside the root changed: %q", got)
				}
			})
		}
	})
}

func TestOpenRefusesDotDotAndAbsolute(t *testing.T) {
	modes(t, func(t *testing.T) {
		root, outside := tree(t)
		fd := openRoot(t, root)
		for _, name := range []string{"..", "../outside/file", "a/../../outside/file", "a/b/..", filepath.Join(outside, "file"), "/etc/passwd"} {
			f, err := Open(fd, name, unix.O_RDONLY, 0)
			if err == nil {
				unix.Close(f)
				t.Errorf("Open(%q) succeeded", name)
				continue
			}
			if err != unix.EXDEV {
				t.Errorf("Open(%q): err = %v, want EXDEV", name, err)
			}
		}
		if _, err := Open(fd, "", unix.O_RDONLY, 0); err != unix.ENOENT {
			t.Errorf("Open(\"\"): err = %v, want ENOENT", err)
		}
	})
}

// TestOpenMagicLink: /proc/self/fd/N reached through a descriptor on /proc/self/fd is a magic
// link, refused like any symlink.
func TestOpenMagicLink(t *testing.T) {
	modes(t, func(t *testing.T) {
		proc, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Skip("no /proc:", err)
		}
		defer unix.Close(proc)
		f, err := Open(proc, "0", unix.O_RDONLY, 0)
		if err == nil {
			unix.Close(f)
			t.Fatal("opened a magic link")
		}
		if err != unix.ELOOP {
			t.Errorf("err = %v, want ELOOP", err)
		}
	})
}

// race runs swap in a loop against open until open has both succeeded and failed a thousand
// times (a bound that only a race that never ran reaches fails the test). open reports whether
// it opened; a t.Fatal in it stops the swapping first.
func race(t *testing.T, swap func(), open func(i int) bool) {
	t.Helper()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			swap()
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	opened, refused := 0, 0
	for i := 0; i < 2000000 && (opened < 1000 || refused < 1000); i++ {
		if open(i) {
			opened++
		} else {
			refused++
		}
	}
	t.Logf("%d opens succeeded, %d were refused", opened, refused)
	if opened < 1000 || refused < 1000 {
		t.Error("the opens did not meet both sides of the swap often: the race did not run")
	}
}

// TestOpenRace swaps root/a between a directory and a symlink to the outside while
// a/b/c/file is opened: every open that succeeds must have read the inside file.
func TestOpenRace(t *testing.T) {
	modes(t, func(t *testing.T) {
		root, outside := tree(t)
		must(t, os.MkdirAll(outside+"/a/b/c", 0o700))
		must(t, os.WriteFile(outside+"/a/b/c/file", []byte("outside"), 0o600))
		must(t, os.Rename(root+"/a", root+"/real"))
		must(t, os.Symlink(outside+"/a", root+"/link"))
		fd := openRoot(t, root)
		buf := make([]byte, 16)
		race(t, func() {
			// a is the real directory, then the symlink, then the directory again.
			unix.Renameat(fd, "real", fd, "a")
			unix.Renameat(fd, "a", fd, "real")
			unix.Renameat(fd, "link", fd, "a")
			unix.Renameat(fd, "a", fd, "link")
		}, func(i int) bool {
			f, err := Open(fd, "a/b/c/file", unix.O_RDONLY, 0)
			if err != nil {
				return false
			}
			n, _ := unix.Read(f, buf)
			unix.Close(f)
			if string(buf[:n]) != "inside" {
				t.Fatalf("open %d followed the symlink: read %q", i, buf[:n])
			}
			return true
		})
	})
}

// TestFallbackWhenForced: the fallback walk goes through a directory component without read
// permission (search only), as openat2 does, and Open leaves a forced fallback set. Which of
// the two Open used is not observable here (that would take a seccomp filter), so walk is
// called directly.
func TestFallbackWhenForced(t *testing.T) {
	was := SetFallback(true)
	defer SetFallback(was)
	root, _ := tree(t)
	must(t, os.Chmod(root+"/a", 0o100))
	defer os.Chmod(root+"/a", 0o700)
	fd := openRoot(t, root)
	f, err := walk(fd, []string{"a", "b", "c", "file"}, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	must(t, err)
	unix.Close(f)
	f, err = Open(fd, "a/b/c/file", unix.O_RDONLY, 0)
	must(t, err)
	unix.Close(f)
	if !SetFallback(true) {
		t.Error("SetFallback(true) did not stay set")
	}
}

func TestOpenHome(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	me := os.Geteuid()
	good := filepath.Join(base, "good")
	must(t, os.Mkdir(good, 0o755))
	must(t, os.Chmod(good, 0o755))
	open := filepath.Join(base, "open")
	must(t, os.Mkdir(open, 0o700))
	must(t, os.Chmod(open, 0o777))
	must(t, os.Symlink(good, filepath.Join(base, "link")))
	must(t, os.WriteFile(filepath.Join(base, "file"), nil, 0o600))

	fd, err := OpenHome(good, me)
	must(t, err)
	unix.Close(fd)

	for _, tc := range []struct {
		path string
		uid  int
		want string
	}{
		{filepath.Join(base, "link"), me, "is a symlink or not a directory"},
		{filepath.Join(base, "file"), me, "is a symlink or not a directory"},
		{good, me + 1, "is owned by uid"},
		{open, me, "is group or world writable (mode 0777)"},
	} {
		fd, err := OpenHome(tc.path, tc.uid)
		if err == nil {
			unix.Close(fd)
			t.Errorf("OpenHome(%s, %d) succeeded", tc.path, tc.uid)
			continue
		}
		var ue *UnsafeError
		if !errors.Is(err, ErrUnsafe) || !errors.As(err, &ue) || ue.Path != tc.path {
			t.Errorf("OpenHome(%s): err = %v, want an UnsafeError for the path", tc.path, err)
			continue
		}
		if got := ue.Reason; len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
			t.Errorf("OpenHome(%s): reason %q, want %q", tc.path, got, tc.want)
		}
	}
	if _, err := OpenHome(filepath.Join(base, "missing"), me); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrUnsafe) {
		t.Errorf("missing home: err = %v, want not-exist", err)
	}
}

// TestOpenRaceLastComponent makes the name a writer opens O_CREAT|O_WRONLY come and go as a
// symlink to a file outside: whatever the interleaving, the outside file is never written.
func TestOpenRaceLastComponent(t *testing.T) {
	modes(t, func(t *testing.T) {
		root, outside := tree(t)
		fd := openRoot(t, root)
		race(t, func() {
			// msg is absent, then a symlink (put in place atomically), then absent again.
			unix.Symlinkat(outside+"/file", fd, "a/msg.new")
			unix.Renameat(fd, "a/msg.new", fd, "a/msg")
			unix.Unlinkat(fd, "a/msg", 0)
		}, func(int) bool {
			f, err := Open(fd, "a/msg", unix.O_WRONLY|unix.O_CREAT, 0o600)
			if err != nil {
				return false
			}
			unix.Write(f, []byte("written"))
			unix.Close(f)
			return true
		})
		if got, _ := os.ReadFile(outside + "/file"); string(got) != "outside" {
			t.Fatalf("the file outside was written through the symlink: %q", got)
		}
	})
}
