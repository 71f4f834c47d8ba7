package maildir

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/safefs"
)

// TestOpenCreatesMaildir is not parallel: the umask is process-wide. A umask
// that takes the owner's write bit must not leave a Maildir the user cannot
// deliver into.
func TestOpenCreatesMaildir(t *testing.T) {
	root := t.TempDir()
	old := unix.Umask(0o277)
	defer unix.Umask(old)
	d, err := Open(filepath.Join(root, "Maildir"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, p := range []string{"Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want drwx------", p, fi.Mode())
		}
	}
	if d.Path() != filepath.Join(root, "Maildir") {
		t.Errorf("Path() = %q", d.Path())
	}
	if d.FD() < 0 {
		t.Errorf("FD() = %d", d.FD())
	}
}

func TestOpenWithoutCreate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if _, err := Open(filepath.Join(root, "Maildir"), false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing Maildir: err = %v, want not exist", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "Maildir/cur"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(root, "Maildir"), false)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Maildir without new/tmp: err = %v, want not exist", err)
	}
	if _, serr := os.Stat(filepath.Join(root, "Maildir/new")); serr == nil {
		t.Errorf("new/ created without create")
	}
}

func TestOpenAtNested(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	d, err := OpenAt(fd, "home/alice/Maildir", true)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(filepath.Join(root, "home/alice/Maildir/tmp")); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "home/alice/Maildir"); d.Path() != want {
		t.Errorf("Path() = %q, want %q", d.Path(), want)
	}
	for _, bad := range []string{"", "/etc", "../x", "home/../../x", "."} {
		if d, err := OpenAt(fd, bad, true); err == nil {
			d.Close()
			t.Errorf("OpenAt(%q) succeeded", bad)
		}
	}
}

func TestOpenRefusesUnsafe(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		plant func(t *testing.T, root, maildir, target string)
	}{
		{"Maildir symlink", func(t *testing.T, root, md, target string) {
			mkdirs(t, target+"/cur", target+"/new", target+"/tmp")
			must(t, os.Symlink(target, md))
		}},
		{"cur symlink", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/new", md+"/tmp", target)
			must(t, os.Symlink(target, md+"/cur"))
		}},
		{"new symlink", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/cur", md+"/tmp", target)
			must(t, os.Symlink(target, md+"/new"))
		}},
		{"tmp symlink", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/cur", md+"/new", target)
			must(t, os.Symlink(target, md+"/tmp"))
		}},
		{"dangling tmp symlink", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/cur", md+"/new")
			must(t, os.Symlink(target+"/nowhere", md+"/tmp"))
		}},
		{"cur a file", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/new", md+"/tmp")
			must(t, os.WriteFile(md+"/cur", []byte("x"), 0o600))
		}},
		{"new a fifo", func(t *testing.T, root, md, target string) {
			mkdirs(t, md+"/cur", md+"/tmp")
			must(t, unix.Mkfifo(md+"/new", 0o600))
		}},
		{"Maildir a file", func(t *testing.T, root, md, target string) {
			must(t, os.WriteFile(md, []byte("x"), 0o600))
		}},
	} {
		for _, create := range []bool{false, true} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				root := t.TempDir()
				md := filepath.Join(root, "Maildir")
				target := filepath.Join(root, "elsewhere")
				c.plant(t, root, md, target)
				before := snapshot(t, root)
				d, err := Open(md, create)
				if err == nil {
					d.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, ErrUnsafe) {
					t.Fatalf("err = %v, want ErrUnsafe", err)
				}
				t.Log(err)
				if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
					t.Errorf("tree changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	}
}

// TestOpenWithoutOpenat2 repeats the safety tests through the openat
// O_NOFOLLOW fallback that kernels before 5.6 get. It is not parallel: it
// switches a package-wide setting while it runs.
func TestOpenWithoutOpenat2(t *testing.T) {
	was := safefs.SetFallback(true)
	defer safefs.SetFallback(was)
	for _, name := range []string{"Maildir", "Maildir/cur", "Maildir/tmp"} {
		root := t.TempDir()
		target := filepath.Join(root, "elsewhere")
		mkdirs(t, target+"/cur", target+"/new", target+"/tmp")
		for _, sub := range []string{"Maildir/cur", "Maildir/new", "Maildir/tmp"} {
			if name != "Maildir" && sub != name {
				mkdirs(t, filepath.Join(root, sub))
			}
		}
		must(t, os.Symlink(target, filepath.Join(root, name)))
		before := snapshot(t, root)
		if d, err := Open(filepath.Join(root, "Maildir"), true); !errors.Is(err, ErrUnsafe) {
			if err == nil {
				d.Close()
			}
			t.Errorf("%s a symlink: err = %v, want ErrUnsafe", name, err)
		}
		if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
			t.Errorf("%s a symlink: tree changed", name)
		}
	}
	md := filepath.Join(t.TempDir(), "Maildir")
	d, err := Open(md, true)
	must(t, err)
	defer d.Close()
	w, err := NewWriter(d, Options{Host: testHost})
	must(t, err)
	if _, err := w.Add(&Message{Date: testDate, Content: strings.NewReader("x\n")}); err != nil {
		t.Fatal(err)
	}
	must(t, w.Commit())
	if es, err := d.Messages(); err != nil || len(es) != 1 {
		t.Errorf("Messages() = %v, %v", es, err)
	}
}

func TestMessagesAndOpenMessage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	md := filepath.Join(root, "Maildir")
	d, err := Open(md, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	must(t, os.WriteFile(md+"/cur/1.a.h:2,S", []byte("hello"), 0o600))
	must(t, os.WriteFile(md+"/new/2.b.h", []byte("world"), 0o600))
	must(t, os.WriteFile(filepath.Join(root, "secret"), []byte("secret"), 0o600))
	must(t, os.Symlink(filepath.Join(root, "secret"), md+"/cur/3.c.h:2,"))
	must(t, unix.Mkfifo(md+"/new/4.d.h", 0o600))
	must(t, os.Mkdir(md+"/cur/5.e.h", 0o700))

	got, err := d.Messages()
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"cur", "1.a.h:2,S"}, {"cur", "3.c.h:2,"}, {"cur", "5.e.h"}, {"new", "2.b.h"}, {"new", "4.d.h"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Messages() = %v, want %v", got, want)
	}
	// A second listing must see the same: the kept descriptors' offsets do not move.
	if again, _ := d.Messages(); !reflect.DeepEqual(again, want) {
		t.Errorf("second Messages() = %v", again)
	}

	f, err := d.OpenMessage("cur", "1.a.h:2,S")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello" {
		t.Errorf("content %q", b)
	}
	for _, c := range []struct{ sub, name string }{
		{"cur", "3.c.h:2,"}, {"new", "4.d.h"}, {"cur", "5.e.h"},
	} {
		f, err := d.OpenMessage(c.sub, c.name)
		if err == nil {
			f.Close()
			t.Errorf("OpenMessage(%s, %s) succeeded", c.sub, c.name)
			continue
		}
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("OpenMessage(%s, %s): %v, want ErrUnsafe", c.sub, c.name, err)
		}
	}
	for _, c := range []struct{ sub, name string }{
		{"cur", "../new/2.b.h"}, {"etc", "x"}, {"cur", ".."}, {"cur", ""},
	} {
		if f, err := d.OpenMessage(c.sub, c.name); err == nil {
			f.Close()
			t.Errorf("OpenMessage(%q, %q) succeeded", c.sub, c.name)
		}
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		must(t, os.MkdirAll(d, 0o700))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot records every path under root with its mode, size and mtime,
// without following symlinks.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = fi.Mode().String() + " " + fi.ModTime().String() + " " + string(rune('0'+fi.Size()%10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
