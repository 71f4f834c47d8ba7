package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// meter shows how far a long job is: a progress bar of source bytes on a terminal, nothing
// otherwise (callers print their one line per user themselves). It is safe for concurrent use
// by the worker pool.
type meter struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	users int
	done  int
}

// newMeter returns a meter for total source bytes across users; it draws only when show is
// true, because progressbar writes carriage-return frames whatever its writer is.
func newMeter(u *ui, show bool, total int64, users int) *meter {
	m := &meter{users: users}
	if !show {
		return m
	}
	m.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(u.term),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription(m.describe()),
	)
	return m
}

func (m *meter) describe() string {
	if m.users <= 1 {
		return "migrating"
	}
	return fmt.Sprintf("users %d/%d", m.done, m.users)
}

// Add records n more source bytes read.
func (m *meter) Add(n int64) {
	if m.bar == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.bar.Add64(n)
}

// UserDone counts one more finished user; skipped bytes of a failed user are added so the
// bar and its estimate stay true.
func (m *meter) UserDone(unread int64) {
	if m.bar == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done++
	if unread > 0 {
		_ = m.bar.Add64(unread)
	}
	m.bar.Describe(m.describe())
}

// Close removes the bar from the terminal.
func (m *meter) Close() {
	if m.bar == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.bar.Finish()
	_ = m.bar.Exit()
}
