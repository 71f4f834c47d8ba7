package ui

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// testProgress returns a Progress drawn on term as on a terminal of cols columns in the
// foreground, with a clock the test moves.
func testProgress(t *testing.T, c *Console, total int64, users int, clock *time.Time) *Progress {
	t.Helper()
	p := &Progress{c: c, total: total, users: int64(users), stop: make(chan struct{})}
	p.now = func() time.Time { return *clock }
	p.start = *clock
	return p
}

// TestProgressDescribe: the text after the bar says bytes done of total, messages, users, who
// is being worked on and the time left, fits its width, and gives up the names first.
func TestProgressDescribe(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := testProgress(t, New("x", io.Discard, io.Discard), 3<<30, 40, &clock)
	p.done.Store(1 << 30)
	p.messages.Store(12034)
	p.usersDone.Store(3)
	p.current = []string{"alice", "bob"}
	clock = clock.Add(60 * time.Second)

	want := "1.0 GiB of 3.0 GiB, 12034 messages, users 3/40: alice, bob, ETA 2m0s"
	if got := p.describe(100); got != want {
		t.Errorf("describe(100) = %q, want %q", got, want)
	}
	if got, want := p.describe(66), "1.0 GiB of 3.0 GiB, 12034 messages, users 3/40: alice..., ETA 2m0s"; got != want {
		t.Errorf("describe(66) = %q, want the names cut: %q", got, want)
	}
	if got, want := p.describe(60), "1.0 GiB of 3.0 GiB, 12034 messages, users 3/40, ETA 2m0s"; got != want {
		t.Errorf("describe(60) = %q, want no names: %q", got, want)
	}
	if tiny := p.describe(20); Width(tiny) > 20 {
		t.Errorf("describe(20) = %q, %d columns", tiny, Width(tiny))
	}

	p.done.Store(0)
	p.start = clock
	if s := p.describe(100); !strings.Contains(s, "ETA --") || !strings.Contains(s, "0 B of 3.0 GiB") {
		t.Errorf("describe before any byte = %q, want an unknown ETA", s)
	}
}

// TestProgressUsers: record counts users, not bytes.
func TestProgressUsers(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := testProgress(t, New("x", io.Discard, io.Discard), 0, 40, &clock)
	p.usersDone.Store(10)
	p.current = []string{"alice"}
	clock = clock.Add(60 * time.Second)
	if got, want := p.describe(100), "users 10/40: alice, ETA 3m0s"; got != want {
		t.Errorf("describe(100) = %q, want %q", got, want)
	}
}

// TestProgressWideNames: names are cut by the columns they take on a terminal, between
// characters: a CJK name takes two columns a character, and no UTF-8 character is split.
func TestProgressWideNames(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := testProgress(t, New("x", io.Discard, io.Discard), 0, 4, &clock)
	p.current = []string{"山田太郎", "josé", "Zoë"}
	full := p.describe(200)
	if !strings.Contains(full, ": 山田太郎, josé, Zoë,") {
		t.Fatalf("describe(200) = %q", full)
	}
	for w := 10; w < Width(full); w++ {
		s := p.describe(w)
		if !utf8.ValidString(s) {
			t.Errorf("describe(%d) = %q: a character split", w, s)
		}
		if Width(s) > w {
			t.Errorf("describe(%d) = %q takes %d columns", w, s, Width(s))
		}
	}
	// 24 columns: "users 0/4" (9) and ", ETA --" (8) leave 7 for the names: ": " and one wide
	// character (2 columns) and "..."; 23 leave no room for that character.
	if got, want := p.describe(24), "users 0/4: 山..., ETA --"; got != want {
		t.Errorf("describe(24) = %q, want %q", got, want)
	}
	if got, want := p.describe(23), "users 0/4: ..., ETA --"; got != want {
		t.Errorf("describe(23) = %q, want %q", got, want)
	}
}

// TestTruncate cuts by terminal columns, at grapheme boundaries.
func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s     string
		width int
		want  string
	}{
		{"alice", 3, "ali"},
		{"alice", 10, "alice"},
		{"山田太郎", 3, "山"},
		{"山田太郎", 4, "山田"},
		{"e\u0301te\u0301", 2, "e\u0301t"}, // a combining accent stays with its letter
		{"abc", 0, ""},
	} {
		if got := Truncate(c.s, c.width); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.width, got, c.want)
		}
	}
}

// shownProgress returns a Progress of c drawn on its terminal, in the foreground, cols wide,
// without the redraw ticker (the test draws).
func shownProgress(t *testing.T, c *Console, total int64, users int, cols int) *Progress {
	t.Helper()
	p := c.Progress(true, total, users)
	// The ticker is stopped: draws in the test are the test's.
	p.stopOnce.Do(func() { close(p.stop) })
	p.ticker.Wait()
	p.width = func() int { return cols }
	p.fg = func() bool { return true }
	return p
}

// TestConsolePrint: a line printed while the status line is shown clears it, and the status
// line is drawn again below it; stdout gets the line alone.
func TestConsolePrint(t *testing.T) {
	t.Parallel()
	var out, term bytes.Buffer
	c := New("maildirmig", &out, &term)
	p := shownProgress(t, c, 100, 2, 100)
	p.UserStart("alice")
	p.Add(50)
	p.redraw()
	before := term.Len()
	c.Printf("alice: done\n")
	if out.String() != "alice: done\n" {
		t.Errorf("stdout got %q", out.String())
	}
	after := term.String()[before:]
	if !strings.HasPrefix(after, "\x1b[2K\r") {
		t.Errorf("the status line was not cleared before the line: terminal got %q after it", after)
	}
	if !strings.Contains(after, "[=========>          ]") || !strings.Contains(after, "users 0/2: alice") {
		t.Errorf("the status line was not drawn again after the line: %q", after)
	}
	p.Close()
	if !strings.HasSuffix(term.String(), "\x1b[2K\r") {
		t.Errorf("Close left %q", term.String())
	}
	n := term.Len()
	c.Printf("bob: done\n")
	p.Add(10)
	p.UserDone("bob")
	if term.Len() != n {
		t.Errorf("after Close the terminal got %q", term.String()[n:])
	}
}

// TestProgressNotShown: a Progress that is not shown draws nothing on the terminal, however
// it is driven, and the lines printed reach their streams alone.
func TestProgressNotShown(t *testing.T) {
	t.Parallel()
	var out, term bytes.Buffer
	c := New("maildirmig", &out, &term)
	p := c.Progress(false, 100, 2)
	p.UserStart("alice")
	p.Add(50)
	p.Messages(3)
	c.Printf("alice: done\n")
	c.Warningf("a warning")
	p.UserDone("alice")
	p.Close()
	if out.String() != "alice: done\n" {
		t.Errorf("stdout got %q", out.String())
	}
	if term.String() != "maildirmig: warning: a warning\n" {
		t.Errorf("stderr got %q, want the warning alone", term.String())
	}
}

// TestProgressBackground: in the background the status line is not drawn, lines still are;
// back in the foreground it is drawn again.
func TestProgressBackground(t *testing.T) {
	t.Parallel()
	var out, term bytes.Buffer
	c := New("maildirmig", &out, &term)
	p := shownProgress(t, c, 100, 1, 100)
	term.Reset()
	fg := false
	p.fg = func() bool { return fg }
	p.UserStart("alice")
	p.Add(10)
	p.redraw()
	c.Printf("a line\n")
	if term.Len() != 0 {
		t.Errorf("in the background the terminal got %q", term.String())
	}
	if out.String() != "a line\n" {
		t.Errorf("stdout got %q", out.String())
	}
	fg = true
	p.redraw()
	if !strings.Contains(term.String(), ": alice, ETA") {
		t.Errorf("back in the foreground the status line was not drawn: %q", term.String())
	}
	p.Close()
}

// TestProgressNarrow: the line drawn fits the terminal, one column to spare, at every width;
// the bar narrows first, down to nothing at 80 columns, then the names are cut.
func TestProgressNarrow(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cols  int
		parts []string
	}{
		{120, []string{"[=====>              ]", "users 0/40: alice, bob, ETA"}},
		{90, []string{"[==>       ]", "users 0/40: alice, bob, ETA"}},
		{80, []string{"[]", "users 0/40: alice, bob, ETA"}},
		{72, []string{"[]", "users 0/40: alice..., ETA"}},
		{40, []string{"  33% []  1.0 GiB of 3.0 GiB"}},
	} {
		var term bytes.Buffer
		con := New("maildirmig", io.Discard, &term)
		p := shownProgress(t, con, 3<<30, 40, c.cols)
		p.Add(1 << 30)
		p.UserStart("alice")
		p.UserStart("bob")
		frames := strings.Split(term.String(), "\r")
		last := strings.TrimSuffix(frames[len(frames)-1], "\x1b[0K")
		if Width(last) > c.cols-1 {
			t.Errorf("%d columns: the line %q takes %d", c.cols, last, Width(last))
		}
		for _, part := range c.parts {
			if !strings.Contains(last, part) {
				t.Errorf("%d columns: the line %q lacks %q", c.cols, last, part)
			}
		}
		p.Close()
	}
}

// TestProgressConcurrent drives a shown Progress from many goroutines while lines are printed,
// for the race detector, and checks every line arrives whole.
func TestProgressConcurrent(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	c := New("maildirmig", &out, io.Discard)
	p := c.Progress(true, 1<<20, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('a' + i))
			p.UserStart(name)
			for range 1000 {
				p.Add(128)
				p.Messages(1)
			}
			c.Printf("%s: done\n", name)
			p.UserDone(name)
		}()
	}
	wg.Wait()
	p.Close()
	if got := strings.Count(out.String(), ": done\n"); got != 8 {
		t.Errorf("%d lines of 8 arrived: %q", got, out.String())
	}
	if p.done.Load() != 8*1000*128 || p.messages.Load() != 8000 || p.usersDone.Load() != 8 {
		t.Errorf("counted %d bytes, %d messages, %d users", p.done.Load(), p.messages.Load(), p.usersDone.Load())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BenchmarkProgressAdd is the cost of counting one chunk read, from several workers at once.
func BenchmarkProgressAdd(b *testing.B) {
	c := New("maildirmig", io.Discard, io.Discard)
	p := c.Progress(false, 1<<40, 8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Add(32 << 10)
		}
	})
}

// TestProgressIdle: a line that would be drawn as it is on the screen is not drawn again, so a
// job waiting (for a lock, on a slow disk) writes nothing ten times a second; a change is drawn.
func TestProgressIdle(t *testing.T) {
	t.Parallel()
	var term bytes.Buffer
	c := New("maildirmig", io.Discard, &term)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := shownProgress(t, c, 100, 1, 100)
	p.now, p.start = func() time.Time { return clock }, clock
	p.redraw()
	n := term.Len()
	p.redraw()
	p.redraw()
	if term.Len() != n {
		t.Errorf("an unchanged line was drawn again: %q", term.String()[n:])
	}
	p.Add(10)
	p.redraw()
	if term.Len() == n || !strings.Contains(term.String()[n:], "10 B of 100 B") {
		t.Errorf("a change was not drawn: %q", term.String()[n:])
	}
	p.Close()
}
