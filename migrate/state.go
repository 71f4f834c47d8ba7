package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrSourceChanged is wrapped by the error returned when the already migrated part of a source
// is no longer what was migrated (edited, rewritten by a POP3 server, replaced by another file).
var ErrSourceChanged = errors.New("migrate: source changed since the last run")

// State is what a run remembers about one user's source, so that the next run migrates only
// what was appended since and never brings back a message the user deleted from the Maildir.
type State struct {
	User        string    `json:"user"`
	UID         int       `json:"uid"`
	Source      string    `json:"source"`
	Dev         uint64    `json:"dev"`
	Inode       uint64    `json:"inode"`
	Size        int64     `json:"size"`       // the source's size when it was last seen
	Offset      int64     `json:"offset"`     // bytes migrated: source[0:Offset) ends at a message boundary
	SHA256      string    `json:"sha256"`     // of source[0:Offset)
	BaseIndex   int64     `json:"base_index"` // position number of the message at offset 0
	Messages    int64     `json:"messages"`   // position number of the next message (all runs)
	Bytes       int64     `json:"bytes"`      // source bytes migrated over all runs
	Maildir     string    `json:"maildir"`
	UIDValidity uint32    `json:"uidvalidity"`
	KeepHeaders bool      `json:"keep_headers,omitempty"`
	Unescape    string    `json:"unescape,omitempty"`
	After       string    `json:"after,omitempty"` // "renamed" or "truncated" when the source was dealt with
	Time        time.Time `json:"time"`
}

// StateStore keeps one JSON file per user in a root-only directory.
type StateStore struct {
	Dir string
}

func (s StateStore) path(user string) (string, error) {
	if user == "" || strings.ContainsAny(user, "/\x00") || strings.HasPrefix(user, ".") {
		return "", fmt.Errorf("migrate: state: unusable user name %q", user)
	}
	return filepath.Join(s.Dir, user+".json"), nil
}

// Load returns the user's state, or nil when there is none.
func (s StateStore) Load(user string) (*State, error) {
	p, err := s.path(user)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("migrate: state %s: %w", p, err)
	}
	return &st, nil
}

// Save writes the user's state atomically: a crash leaves the old state or the new one.
func (s StateStore) Save(st *State) error {
	p, err := s.path(st.User)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(s.Dir, "."+st.User+".*.tmp")
	if err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("migrate: state: %w", err)
	}
	return syncDir(s.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Resume decides where a run starts in src, whose fstat is st: at 0 without a state, after the
// migrated prefix when it is unchanged, and with an error wrapping ErrSourceChanged when it
// changed (unless force, which starts again from 0). The returned hash has consumed
// src[0:start), so the caller can extend it over what it migrates next.
func (s *State) Resume(src io.ReaderAt, st unix.Stat_t, force bool) (start, index int64, h hash.Hash, err error) {
	h = sha256.New()
	if s == nil {
		return 0, 0, h, nil
	}
	if s.Offset == 0 {
		return 0, s.Messages, h, nil
	}
	why := ""
	switch {
	case uint64(st.Dev) != s.Dev || st.Ino != s.Inode:
		why = "it is another file (device or inode changed)"
	case st.Size < s.Offset:
		why = fmt.Sprintf("it shrank from %d to %d bytes", s.Offset, st.Size)
	default:
		if _, err := io.Copy(h, io.NewSectionReader(src, 0, s.Offset)); err != nil {
			return 0, 0, nil, fmt.Errorf("migrate: hashing the migrated part of %s: %w", s.Source, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != s.SHA256 {
			why = fmt.Sprintf("its first %d bytes are not the ones migrated", s.Offset)
		}
	}
	if why == "" {
		return s.Offset, s.Messages, h, nil
	}
	if !force {
		return 0, 0, nil, fmt.Errorf("%w: %s: %s", ErrSourceChanged, s.Source, why)
	}
	return 0, s.BaseIndex, sha256.New(), nil
}
