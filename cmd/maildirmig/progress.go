package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// meter shows how far a long job is, on a terminal only: one status line at the bottom,
//
//	[=======>            ]  35% 1.2 GiB of 3.4 GiB, 12034 messages, users 3/40: alice, bob, ETA 2m10s
//
// drawn on the raw stderr. While it is shown every line the command prints goes through it
// (ui.emit): the status line is cleared, the line written, and the status drawn again below
// it, so no line is lost or overdrawn, whether stdout is the same terminal or a file. Without
// a terminal it draws nothing, and callers print their one line per user as usual. It is safe
// for concurrent use by the worker pool.
type meter struct {
	mu     sync.Mutex
	w      io.Writer // the terminal; nil: draw nothing
	width  func() int
	now    func() time.Time
	start  time.Time
	last   time.Time // of the last draw
	shown  bool      // a status line is on the screen
	closed bool

	total, done int64 // source bytes
	messages    int64
	users       int
	usersDone   int
	current     []string // users being migrated, in the order they started
}

// redrawEvery throttles drawing: a terminal needs no more, and each draw is a write.
const redrawEvery = 100 * time.Millisecond

// newMeter returns a meter for total source bytes across users, drawing on u's terminal when
// show is true.
func newMeter(u *ui, show bool, total int64, users int) *meter {
	m := &meter{total: total, users: users, now: time.Now, width: func() int { return termWidth(u.term) }}
	m.start = m.now()
	if show {
		m.w = u.term
		u.meter = m
	}
	return m
}

// termWidth is the width of the terminal w, 80 when it cannot be told.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 80
}

// Add records n more source bytes read.
func (m *meter) Add(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done += n
	m.draw(false)
}

// Messages counts n more messages read.
func (m *meter) Messages(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.messages += n
	m.draw(false)
}

// UserStart shows user among those being migrated.
func (m *meter) UserStart(user string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.current = append(m.current, user)
	m.draw(true)
}

// UserDone counts one more finished user.
func (m *meter) UserDone(user string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range m.current {
		if c == user {
			m.current = append(m.current[:i], m.current[i+1:]...)
			break
		}
	}
	m.usersDone++
	m.draw(true)
}

// Print writes text, whole lines, to w above the status line.
func (m *meter) Print(w io.Writer, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	_, _ = io.WriteString(w, text)
	m.draw(true)
}

// Close removes the status line for good.
func (m *meter) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	m.closed = true
}

func (m *meter) clear() {
	if m.w != nil && m.shown {
		_, _ = io.WriteString(m.w, "\r\x1b[K")
		m.shown = false
	}
}

func (m *meter) draw(force bool) {
	if m.w == nil || m.closed {
		return
	}
	now := m.now()
	if !force && m.shown && now.Sub(m.last) < redrawEvery {
		return
	}
	m.last = now
	_, _ = io.WriteString(m.w, "\r"+m.status(m.width()-1)+"\x1b[K")
	m.shown = true
}

// status renders the status line in at most width columns: the bar goes first when space is
// short, then the names of the current users.
func (m *meter) status(width int) string {
	done, total := min(m.done, m.total), m.total
	// A meter of users has no bytes to count (record).
	byUsers := total == 0 && m.users > 0
	if byUsers {
		done, total = int64(m.usersDone), int64(m.users)
	}
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	s := fmt.Sprintf("%3d%% users %d/%d", pct, m.usersDone, m.users)
	if !byUsers {
		s = fmt.Sprintf("%3d%% %s of %s, %d message%s", pct, sizeString(done), sizeString(total), m.messages, plural(int(m.messages)))
		if m.users > 1 {
			s += fmt.Sprintf(", users %d/%d", m.usersDone, m.users)
		}
	}
	eta := ", ETA " + m.eta(done, total)
	names := ""
	if len(m.current) > 0 {
		names = ": " + strings.Join(m.current, ", ")
	}
	const barWidth = 20
	bar := ""
	if width >= len(s)+len(eta)+len(names)+barWidth+3 {
		n := pct * barWidth / 100
		bar = "[" + strings.Repeat("=", n) + strings.Repeat(" ", barWidth-n) + "] "
		if n > 0 && n < barWidth {
			bar = "[" + strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", barWidth-n) + "] "
		}
	}
	if room := width - len(bar) - len(s) - len(eta); len(names) > room {
		if room >= 6 {
			names = names[:room-3] + "..."
		} else {
			names = ""
		}
	}
	line := bar + s + names + eta
	if width > 0 && len(line) > width {
		line = line[:width]
	}
	return line
}

// eta estimates the time left from the rate so far (done of total, in bytes or users); "--"
// until there is a rate to go by.
func (m *meter) eta(done, total int64) string {
	elapsed := m.now().Sub(m.start)
	if done <= 0 || elapsed < time.Second {
		return "--"
	}
	if done >= total {
		return "0s"
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	if left > time.Minute {
		left = left.Round(time.Second)
	} else {
		left = left.Round(100 * time.Millisecond)
	}
	return left.String()
}

// sizeString writes n bytes in binary units, as df -h does.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
