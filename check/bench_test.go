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

// BenchmarkCheckHomes measures what a worker per home costs: 200 homes of 5 messages checked
// in this process (homes of root's, as root's own is) and by workers running as their users
// (testAsUser: maildirmig's own), as check does for every other user. It reports homes per
// second. Root only: only root starts workers as other users.
func BenchmarkCheckHomes(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: starts workers as other users")
	}
	const homes, messages = 200, 5
	dir := b.TempDir()
	letThrough(b, filepath.Join(dir, "home"))
	body := []byte("hello")
	var list []User
	for u := range homes {
		home := filepath.Join(dir, fmt.Sprintf("u%03d", u))
		md := filepath.Join(home, "Maildir")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
				b.Fatal(err)
			}
		}
		for i := range messages {
			name := fmt.Sprintf("%d.M%dP1.bench,S=5,W=5:2,S", 1700000000+i, i)
			if err := os.WriteFile(filepath.Join(md, "cur", name), body, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		list = append(list, User{Name: fmt.Sprintf("u%03d", u), Home: home})
	}
	chown := func(uid func(i int) int) {
		for i, u := range list {
			id := uid(i)
			list[i].UID, list[i].GID = id, id
			err := filepath.Walk(u.Home, func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, id, id)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, bc := range []struct {
		name string
		uid  func(i int) int
	}{
		{"in-process", func(int) int { return 0 }},
		{"workers", func(i int) int { return 30000 + i }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			chown(bc.uid)
			n := 0
			for b.Loop() {
				r, err := Run(context.Background(), Config{Users: list, Jobs: 2, AsUser: testAsUser})
				if err != nil || len(r.Problems) != 0 || r.Messages != homes*messages {
					b.Fatalf("%v, %d messages, %d problems, the first %+v", err, r.Messages, len(r.Problems), r.Problems[:min(1, len(r.Problems))])
				}
				n += homes
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "homes/s")
		})
	}
}
