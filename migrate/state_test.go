package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStateSaveLoad(t *testing.T) {
	t.Parallel()
	s := StateStore{Dir: filepath.Join(t.TempDir(), "state")}
	if st, err := s.Load("alice"); err != nil || st != nil {
		t.Fatalf("Load without state = %v, %v; want nil, nil", st, err)
	}
	want := &State{User: "alice", UID: 1001, Source: "/var/mail/alice", Dev: 7, Inode: 42, Size: 100, Offset: 90,
		SHA256: "ab", Messages: 3, Maildir: "/home/alice/Maildir", UIDValidity: 5, Time: time.Unix(1700000000, 0).UTC()}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %o, want 700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want 1 (no temporary left)", len(entries))
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b"} {
		if err := s.Save(&State{User: bad}); err == nil {
			t.Errorf("Save(user %q) succeeded", bad)
		}
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	const first = "From a Mon Jan  1 00:00:00 2024\n\none\n\n"
	const second = "From b Mon Jan  1 00:00:01 2024\n\ntwo\n\n"
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name      string
		state     *State
		content   string
		otherFile bool
		force     bool
		wantStart int64
		wantIndex int64
		wantErr   error
	}{
		{name: "no state", content: first, wantStart: 0},
		{name: "appended", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first + second, wantStart: int64(len(first)), wantIndex: 1},
		{name: "unchanged", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first, wantStart: int64(len(first)), wantIndex: 1},
		{name: "prefix edited", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: "From a Mon Jan  1 00:00:00 2024\n\nONE\n\n" + second, wantErr: ErrSourceChanged},
		{name: "shrunk", state: &State{Offset: int64(len(first + second)), SHA256: sum(first + second), Messages: 2}, content: first, wantErr: ErrSourceChanged},
		{name: "other inode", state: &State{Offset: int64(len(first)), SHA256: sum(first), Messages: 1}, content: first, otherFile: true, wantErr: ErrSourceChanged},
		{name: "forced", state: &State{Offset: int64(len(first)), SHA256: sum("x"), Messages: 1, BaseIndex: 0}, content: first, force: true, wantStart: 0, wantIndex: 0},
		{name: "after truncate", state: &State{Offset: 0, SHA256: emptySHA256, Messages: 4, BaseIndex: 4}, content: second, wantStart: 0, wantIndex: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "mbox")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if tt.state != nil {
				tt.state.Source = path
				tt.state.Dev, tt.state.Inode = uint64(st.Dev), st.Ino
				if tt.otherFile {
					tt.state.Inode++
				}
			}
			start, index, h, err := tt.state.Resume(f, st, tt.force)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resume = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if start != tt.wantStart || index != tt.wantIndex {
				t.Errorf("Resume = start %d index %d, want %d %d", start, index, tt.wantStart, tt.wantIndex)
			}
			if got, want := hex.EncodeToString(h.Sum(nil)), sum(tt.content[:start]); got != want {
				t.Errorf("hash covers something else than the first %d bytes", start)
			}
		})
	}
}
