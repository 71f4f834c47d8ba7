package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/maildirmig/maildirmig/internal/escape"
)

// Progress shows how far a long job is, on one status line at the bottom of the terminal:
//
//	35% [======>             ]  1.2 GiB of 3.4 GiB, 12034 messages, users 3/40: alice, bob, ETA 2m10s
//
// The bar is github.com/schollz/progressbar/v3's; the text after it is Progress's own. Its
// counters are atomic, so that a worker counting every chunk it reads takes no lock; the
// line is drawn by one goroutine every RedrawEvery, when a user starts or ends, and after
// every line the Console prints. A Progress that is not shown counts and draws nothing.
type Progress struct {
	c     *Console
	bar   *progressbar.ProgressBar // nil: not drawn yet, or not shown
	out   *barWriter               // nil: not shown
	cols  int                      // the width of bar
	max   int64                    // what done counts up to: total bytes, or users
	total int64                    // source bytes; 0: count users
	users int64
	now   func() time.Time
	start time.Time
	width func() int
	fg    func() bool

	done, messages, usersDone atomic.Int64

	namesMu sync.Mutex
	current []string // users being worked on, in the order they started

	shown    bool // on the screen; guarded by c.mu, as are the two below
	lastAt   int64
	lastDesc string // the line on the screen: the bar's count and the text after it
	closed   bool   // guarded by c.mu
	stop     chan struct{}
	stopOnce sync.Once
	ticker   sync.WaitGroup
}

// RedrawEvery is how often the status line is drawn while nothing else draws it: a terminal
// needs no more, and each draw is a write.
const RedrawEvery = 100 * time.Millisecond

// barWidth is the width of the bar at its widest, on a terminal of 100 columns or more; it
// narrows, down to nothing at 80, before the names of the users are cut.
const barWidth = 20

func barWidthFor(cols int) int { return min(max(cols-80, 0), barWidth) }

// newBar makes the bar, cols wide. It writes through p.out: never to the *os.File itself,
// which progressbar would sync on every frame (a log file of --progress always would get an
// fsync ten times a second), and muted while its count is set, so that a frame is one write.
// progressbar measures its lines by display width; the width of the bar is ours to choose,
// since it is made again when the terminal's width changes.
func (p *Progress) newBar(cols int) {
	p.cols, p.lastDesc = cols, ""
	p.bar = progressbar.NewOptions64(barScale,
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetWidth(cols),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionUseANSICodes(true),
	)
}

// barWriter is the bar's writer; mute drops what it writes.
type barWriter struct {
	w    io.Writer
	mute bool
}

func (b *barWriter) Write(p []byte) (int, error) {
	if b.mute {
		return len(p), nil
	}
	return b.w.Write(p)
}

// barScale is the bar's maximum: the fraction done is given to it in parts of barScale, so
// that its percentage is the fraction's, floored, for bytes and users alike.
const barScale = 100_000

// barFrame is the width of what progressbar writes around the bar and the description: the
// percentage (5), the brackets (2), and four spaces.
const barFrame = 11

// Progress returns a Progress for total source bytes across users (total 0: the job counts
// users, as record does), drawn below the lines printed when show is true.
func (c *Console) Progress(show bool, total int64, users int) *Progress {
	p := &Progress{c: c, total: total, users: int64(users), now: time.Now, stop: make(chan struct{})}
	p.start = p.now()
	p.max = total
	if total <= 0 {
		p.max = int64(users)
	}
	if !show {
		return p
	}
	p.out = &barWriter{w: c.term}
	p.width = func() int { return width(c.term) }
	p.fg = func() bool { return foreground(c.term) }
	c.mu.Lock()
	c.status = p
	p.draw()
	c.mu.Unlock()
	p.ticker.Add(1)
	go p.tick()
	return p
}

func (p *Progress) tick() {
	defer p.ticker.Done()
	t := time.NewTicker(RedrawEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.redraw()
		}
	}
}

// Add counts n more source bytes read.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// Messages counts n more messages read.
func (p *Progress) Messages(n int64) { p.messages.Add(n) }

// UserStart shows user among those being worked on.
func (p *Progress) UserStart(user string) {
	p.namesMu.Lock()
	p.current = append(p.current, user)
	p.namesMu.Unlock()
	p.redraw()
}

// UserDone counts one more finished user.
func (p *Progress) UserDone(user string) {
	p.namesMu.Lock()
	for i, c := range p.current {
		if c == user {
			p.current = append(p.current[:i], p.current[i+1:]...)
			break
		}
	}
	p.namesMu.Unlock()
	p.usersDone.Add(1)
	p.redraw()
}

// Close removes the status line for good. It may be called more than once.
func (p *Progress) Close() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.ticker.Wait()
	if p.out == nil {
		return
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.clear()
	p.closed = true
	if p.c.status == p {
		p.c.status = nil
	}
}

func (p *Progress) redraw() {
	if p.out == nil {
		return
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.draw()
}

// clear takes the line off the screen. The caller holds c.mu. In the background the line is
// left where it was: the terminal's current line is the shell's now, or the next job's.
func (p *Progress) clear() {
	if p.shown && !p.fg() {
		p.shown = false
	}
	if p.shown {
		_ = p.bar.Clear()
		p.shown = false
	}
}

// draw draws the line, unless the process is in the background. The caller holds c.mu.
func (p *Progress) draw() {
	if p.out == nil || p.closed || !p.fg() {
		return
	}
	cols := p.width()
	if p.bar == nil || p.cols != barWidthFor(cols) {
		p.newBar(barWidthFor(cols))
	}
	done := p.done.Load()
	if p.total <= 0 {
		done = p.usersDone.Load()
	}
	// A progressbar that reaches its maximum draws itself one last time and never again,
	// while the last users may still be working: it stays one short of it until Close.
	at := int64(barScale)
	if p.max > 0 {
		at = int64(float64(min(done, p.max)) / float64(p.max) * barScale)
	}
	at = min(at, barScale-1)
	desc := p.describe(cols - 1 - barFrame - p.cols)
	// A line already on the screen as it would be drawn is not drawn again: a job waiting for
	// a lock writes nothing.
	if p.shown && at == p.lastAt && desc == p.lastDesc {
		return
	}
	p.out.mute = true
	_ = p.bar.Set64(at)
	p.out.mute = false
	p.bar.Describe(desc)
	p.shown, p.lastAt, p.lastDesc = true, at, desc
}

// describe renders what follows the bar in at most width columns of a terminal: the bytes,
// messages and users done, the names of the users being worked on, and the time left. The
// names are cut first, at a character boundary by the width the terminal gives them, then
// the whole text.
func (p *Progress) describe(width int) string {
	done, total := min(p.done.Load(), p.total), p.total
	usersDone := p.usersDone.Load()
	s := fmt.Sprintf("users %d/%d", usersDone, p.users)
	if total > 0 {
		s = fmt.Sprintf("%s of %s, %d message%s", Size(done), Size(total), p.messages.Load(), plural(p.messages.Load()))
		if p.users > 1 {
			s += fmt.Sprintf(", users %d/%d", usersDone, p.users)
		}
	} else {
		done, total = usersDone, p.users
	}
	eta := ", ETA " + p.eta(done, total)
	p.namesMu.Lock()
	names := ""
	if len(p.current) > 0 {
		names = ": " + escape.Line(strings.Join(p.current, ", "))
	}
	p.namesMu.Unlock()
	if room := width - Width(s) - Width(eta); Width(names) > room {
		if room >= 6 {
			names = Truncate(names, room-3) + "..."
		} else {
			names = ""
		}
	}
	return Truncate(s+names+eta, max(width, 0))
}

// eta estimates the time left from the rate so far (done of total, in bytes or users); "--"
// until there is a rate to go by.
func (p *Progress) eta(done, total int64) string {
	elapsed := p.now().Sub(p.start)
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

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Size writes n bytes in binary units, as df -h does.
func Size(n int64) string {
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
