package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func TestMain(m *testing.M) {
	if path := os.Getenv(reportHelperEnv); path != "" {
		reportHelper(path)
		return
	}
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchSize(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

// benchTree builds, once per test binary, users × messages healthy Maildirs (half the messages
// in cur/, half in new/), each user with a dovecot-uidlist listing them all.
func benchTree(users, messages int) (string, []User, error) {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "check-bench-")
		if benchErr != nil {
			return
		}
		body := []byte("From: a@example.org\nSubject: benchmark\n\n" + string(make([]byte, 150)) + "\n")
		for u := range users {
			md := filepath.Join(benchDir, fmt.Sprintf("u%04d", u), "Maildir")
			for _, sub := range []string{"cur", "new", "tmp"} {
				if benchErr = os.MkdirAll(filepath.Join(md, sub), 0o700); benchErr != nil {
					return
				}
			}
			os.Chmod(md, 0o700)
			os.Chmod(filepath.Dir(md), 0o700)
			uidlist := []byte(fmt.Sprintf("3 V1700000000 N%d G0123456789abcdef0123456789abcdef\n", messages+1))
			for i := range messages {
				name := fmt.Sprintf("%d.M%dQ%dX0123456789abcdef.bench,S=%d,W=%d", 1700000000+i, i, i, len(body), len(body)+4)
				sub := "new"
				if i%2 == 0 {
					sub, name = "cur", name+":2,S"
				}
				if benchErr = os.WriteFile(filepath.Join(md, sub, name), body, 0o600); benchErr != nil {
					return
				}
				uidlist = fmt.Appendf(uidlist, "%d :%s\n", i+1, name)
			}
			if benchErr = os.WriteFile(filepath.Join(md, "dovecot-uidlist"), uidlist, 0o600); benchErr != nil {
				return
			}
		}
	})
	var list []User
	for u := range users {
		list = append(list, User{Name: fmt.Sprintf("u%04d", u), UID: os.Getuid(), GID: os.Getgid(),
			Home: filepath.Join(benchDir, fmt.Sprintf("u%04d", u))})
	}
	return benchDir, list, benchErr
}

// BenchmarkCheck checks 1,000 users × 1,000 messages (MAILDIRMIG_BENCH_USERS and
// MAILDIRMIG_BENCH_MESSAGES change that) and reports directory entries looked at per second.
// The tree is built once and is in the page cache when measured.
func BenchmarkCheck(b *testing.B) {
	users, messages := benchSize("MAILDIRMIG_BENCH_USERS", 1000), benchSize("MAILDIRMIG_BENCH_MESSAGES", 1000)
	_, list, err := benchTree(users, messages)
	if err != nil {
		b.Fatal(err)
	}
	for _, jobs := range []int{1, 4} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			var files int64
			for b.Loop() {
				r, err := Run(context.Background(), Config{Users: list, Jobs: jobs})
				if err != nil || len(r.Problems) != 0 || r.Messages != int64(users*messages) {
					b.Fatalf("%v, %d messages, problems %+v", err, r.Messages, r.Problems)
				}
				files += r.Files
			}
			b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
