package check

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestMakeSkel(t *testing.T) {
	t.Parallel()
	skel := filepath.Join(t.TempDir(), "skel")
	changes, err := MakeSkel(skel, "Maildir")
	if err != nil || len(changes) != 4 {
		t.Fatalf("first run: %v, changes %q", err, changes)
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		fi, err := os.Lstat(filepath.Join(skel, "Maildir", sub))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("Maildir/%s: %v %v", sub, fi, err)
		}
	}
	if changes, err := MakeSkel(skel, "Maildir"); err != nil || len(changes) != 0 {
		t.Errorf("second run: %v, changes %q", err, changes)
	}
	must(t, os.Chmod(filepath.Join(skel, "Maildir", "cur"), 0o755))
	if changes, err := MakeSkel(skel, "Maildir"); err != nil || len(changes) != 1 {
		t.Errorf("after chmod 0755: %v, changes %q", err, changes)
	}
}

func TestMakeSkelRefusesSymlinks(t *testing.T) {
	t.Parallel()
	for _, link := range []string{"Maildir", "Maildir/tmp"} {
		t.Run(link, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			skel, target := filepath.Join(dir, "skel"), filepath.Join(dir, "target")
			mkdir(t, filepath.Join(skel, filepath.Dir(link)))
			mkdir(t, target)
			must(t, os.Symlink(target, filepath.Join(skel, link)))
			_, err := MakeSkel(skel, "Maildir")
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("MakeSkel with %s a symlink: %v, want ErrUnsafe", link, err)
			}
			if entries, _ := os.ReadDir(target); len(entries) != 0 {
				t.Errorf("created %d entries in the symlink's target", len(entries))
			}
		})
	}
}

func TestEnsureMaildir(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	u := User{Name: "alice", UID: os.Getuid(), GID: os.Getgid(), Home: home}
	if created, err := ensureMaildirAs(u, "Maildir"); err != nil || !created {
		t.Fatalf("EnsureMaildir: %v, created %v", err, created)
	}
	if r := run(t, Config{Users: []User{u}, Now: now}); len(r.Problems) != 0 || r.Maildirs != 1 {
		t.Errorf("check of the new Maildir: %+v", r.Problems)
	}
	// Something else called Maildir is left alone, whatever it is.
	other := User{Name: "bob", UID: os.Getuid(), GID: os.Getgid(), Home: t.TempDir()}
	must(t, os.Symlink("/etc", filepath.Join(other.Home, "Maildir")))
	if created, err := ensureMaildirAs(other, "Maildir"); err != nil || created {
		t.Errorf("EnsureMaildir over a symlink: %v, created %v", err, created)
	}
	// A home that belongs to someone else is refused.
	if os.Geteuid() == 0 {
		stranger := User{Name: "carol", UID: 12345, GID: 12345, Home: t.TempDir()}
		letThrough(t, stranger.Home)
		if _, err := ensureMaildirAs(stranger, "Maildir"); !errors.Is(err, ErrUnsafe) {
			t.Errorf("EnsureMaildir in a home owned by root for uid 12345: %v, want ErrUnsafe", err)
		}
	}
}
