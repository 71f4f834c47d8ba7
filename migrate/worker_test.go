package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/maildir"
	"golang.org/x/sys/unix"

	"github.com/maildirmig/maildirmig/internal/worker"
)

// workerSelf is what a worker sees of itself.
type workerSelf struct {
	UID      int    `json:"uid"`
	Sid      int    `json:"sid"`
	Pgid     int    `json:"pgid"`
	Dumpable int    `json:"dumpable"`
	Tracer   int    `json:"tracer"`
	TTYError string `json:"tty_error"` // "" when /dev/tty opened
}

const opTestSelf = "test-self"

// addSelfOp registers opTestSelf.
func addSelfOp() {
	workerOps[opTestSelf] = testOp(func(_ *workerRequest, emit func(workerMsg)) error {
		var s workerSelf
		s.UID = os.Getuid()
		sid, err := unix.Getsid(0)
		if err != nil {
			return err
		}
		s.Sid, s.Pgid = sid, unix.Getpgrp()
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			return err
		}
		s.Dumpable = d
		if s.Tracer, err = worker.TracerPid(); err != nil {
			return err
		}
		if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		} else {
			s.TTYError = err.Error()
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		emit(workerMsg{T: msgEvent, Event: &Event{Kind: opTestSelf, Detail: string(b)}})
		return nil
	})
}

// TestWorkerIsolated starts a real worker as an unprivileged uid and asks it about itself: it
// must not be in our session (so it has no controlling terminal of ours to open), and the user
// it runs as must not be able to ptrace it.
func TestWorkerIsolated(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a worker as another uid")
	}
	const uid = 42190
	var self *workerSelf
	err := spawnWorker(context.Background(), Credentials{UID: uid, GID: uid}, &workerRequest{Op: opTestSelf}, nil, nil, func(m workerMsg) {
		if m.T == msgEvent && m.Event != nil && m.Event.Kind == opTestSelf {
			self = new(workerSelf)
			if err := json.Unmarshal([]byte(m.Event.Detail), self); err != nil {
				t.Errorf("worker said %q: %v", m.Event.Detail, err)
			}
		}
	})
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	if self == nil {
		t.Fatal("the worker said nothing about itself")
	}
	ourSid, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	if self.UID != uid {
		t.Errorf("worker uid = %d, want %d", self.UID, uid)
	}
	if self.Sid == ourSid {
		t.Errorf("worker session = %d, ours too: it shares our controlling terminal", self.Sid)
	}
	if self.Sid != self.Pgid {
		t.Errorf("worker session %d, process group %d: not the leader of a session of its own", self.Sid, self.Pgid)
	}
	if self.TTYError == "" {
		t.Error("the worker opened /dev/tty")
	}
	if self.Dumpable != 0 {
		t.Errorf("worker PR_GET_DUMPABLE = %d, want 0 (its user could ptrace it)", self.Dumpable)
	}
	if self.Tracer != 0 {
		t.Errorf("worker traced by %d", self.Tracer)
	}
}

// The check after writing reads back a message found already in the Maildir, whose content
// only its name vouched for, and trusts the hash of what this run wrote itself.
func TestRecordCheckerReadsExistedMessages(t *testing.T) {
	t.Parallel()
	md := filepath.Join(t.TempDir(), "Maildir")
	d, err := maildir.Open(md, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	for name, body := range map[string]string{"1.M1Q0X0.host,S=5:2,S": "good\n", "2.M2Q1X0.host,S=5:2,S": "evil\n"} {
		if err := os.WriteFile(filepath.Join(md, "cur", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	chk := &recordChecker{d: d}
	chk.check(MessageRecord{Index: 0, Sub: "cur", Name: "1.M1Q0X0.host,S=5:2,S", StoredSHA256: sum("good\n"), Existed: true})
	chk.check(MessageRecord{Index: 1, Sub: "cur", Name: "2.M2Q1X0.host,S=5:2,S", StoredSHA256: sum("good\n"), Existed: true})
	chk.check(MessageRecord{Index: 2, Sub: "cur", Name: "3.M3Q2X0.host,S=5:2,S", StoredSHA256: sum("new\n"), Existed: true})
	if chk.res.Messages != 3 || chk.res.Found != 1 || len(chk.res.Bad) != 1 || len(chk.res.Missing) != 1 {
		t.Errorf("existed messages: %+v, want 1 found, 1 bad (message 2), 1 missing (message 3)", chk.res)
	}
}

const opTestRecords = "test-records"

// addRecordsOp registers opTestRecords: req.Size records from each of two goroutines at once,
// each goroutine's numbered in Index from 0 and told apart by Offset, with a work line now and
// then but none among the last records.
func addRecordsOp() {
	workerOps[opTestRecords] = testOp(func(req *workerRequest, emit func(workerMsg)) error {
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				for i := range req.Size {
					emit(workerMsg{T: msgRecord, Record: &MessageRecord{Index: i, Offset: int64(g), SHA256: strings.Repeat("0", 64)}})
					if g == 0 && i%100 == 99 && i < req.Size-100 {
						emit(workerMsg{T: msgWork, N: 1})
					}
				}
			})
		}
		wg.Wait()
		return nil
	})
}

// TestWorkerLinesArrive has a real worker say thousands of records from two goroutines at once,
// ending on a record: root must hear every one, whole and in each goroutine's order, though
// records are buffered in the worker until the next line or its end.
func TestWorkerLinesArrive(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a worker as another uid")
	}
	const uid, n = 42196, 5000
	next := [2]int64{}
	bad := 0
	err := spawnWorker(context.Background(), Credentials{UID: uid, GID: uid}, &workerRequest{Op: opTestRecords, Size: n}, nil, nil, func(m workerMsg) {
		if m.T != msgRecord {
			return
		}
		g := m.Record.Offset
		if g < 0 || g > 1 || m.Record.Index != next[g] {
			if bad++; bad == 1 {
				t.Errorf("record %+v after %v", *m.Record, next)
			}
			return
		}
		next[g]++
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != [2]int64{n, n} {
		t.Errorf("root heard %v records of each goroutine, not %d", next, n)
	}
}

// TestWorkerWaitsForBefore starts real workers whose work must wait for what root does while
// they start: the worker's first line comes only after before has returned, and a worker whose
// before failed is given nothing to do, and its error is before's.
func TestWorkerWaitsForBefore(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a worker as another uid")
	}
	const uid = 42197
	var done atomic.Bool
	lines, early := 0, 0
	err := spawnWorkerAfter(context.Background(), Credentials{UID: uid, GID: uid}, &workerRequest{Op: opTestRecords, Size: 3}, nil, nil, func() error {
		time.Sleep(200 * time.Millisecond)
		done.Store(true)
		return nil
	}, func(m workerMsg) {
		lines++
		if !done.Load() {
			early++
		}
	})
	if err != nil || lines != 6 || early != 0 {
		t.Errorf("spawnWorkerAfter = %v, %d lines, %d of them before before returned; want nil, 6, 0", err, lines, early)
	}

	refused := errors.New("the open state could not be saved")
	lines = 0
	err = spawnWorkerAfter(context.Background(), Credentials{UID: uid, GID: uid}, &workerRequest{Op: opTestRecords, Size: 3}, nil, nil, func() error {
		return refused
	}, func(workerMsg) { lines++ })
	if err != refused || lines != 0 {
		t.Errorf("with before failing: %v, %d lines; want %v and none", err, lines, refused)
	}
}
