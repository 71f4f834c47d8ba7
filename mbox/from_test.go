package mbox_test

import (
	"testing"
	"time"

	"github.com/maildirmig/maildirmig/mbox"
)

func TestParseFromLine(t *testing.T) {
	t.Parallel()
	// A zone far from UTC makes a wrongly ignored or wrongly applied zone visible.
	loc := time.FixedZone("test", -3*3600)
	tests := []struct {
		line   string
		sender string
		date   time.Time // compared with Equal
	}{
		{"From alice@example.org Mon Sep 17 00:00:00 2001", "alice@example.org", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		{"From alice@example.org Mon Sep 17 00:00:00 2001\n", "alice@example.org", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		{"From alice@example.org Mon Sep 17 00:00:00 2001\r\n", "alice@example.org", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		// Postfix and Dovecot: two spaces after the sender, day padded with a space.
		{"From MAILER-DAEMON  Fri Jul  8 12:08:34 2011", "MAILER-DAEMON", time.Date(2011, 7, 8, 12, 8, 34, 0, loc)},
		{"From bob Fri Jul 8 12:08:34 2011", "bob", time.Date(2011, 7, 8, 12, 8, 34, 0, loc)},
		// A zone before the year, name or number, is ignored and the time read in loc, as
		// Dovecot 2.3.19 does (doveadm fetch date.received); perl-Mail-Box has no seconds.
		{"From magick@wizards.example Wed Feb  9 22:02 MET 2000", "magick@wizards.example", time.Date(2000, 2, 9, 22, 2, 0, 0, loc)},
		{"From x Wed Feb  9 22:02 2000", "x", time.Date(2000, 2, 9, 22, 2, 0, 0, loc)},
		{"From x Thu Nov 29 22:33:52 PST 2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From x Thu Nov 29 22:33:52 UTC 2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From x Thu Nov 29 22:33:52 XYZT 2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From x Thu Nov 29 22:33:52 +0200 2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From x Thu Nov 29 22:33:52 -0700 2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		// A numeric offset after the year is honoured, a name there ignored.
		{"From x Thu Nov 29 22:33:52 2003 +0200", "x", time.Date(2003, 11, 29, 20, 33, 52, 0, time.UTC)},
		{"From x Thu Nov 29 22:33:52 2003 -0700", "x", time.Date(2003, 11, 30, 5, 33, 52, 0, time.UTC)},
		{"From x Thu Nov 29 22:33:52 2003 +0000", "x", time.Date(2003, 11, 29, 22, 33, 52, 0, time.UTC)},
		{"From x Thu Nov 29 22:33:52 2003 PST", "x", time.Date(2003, 11, 29, 22, 33, 52, 0, loc)},
		{"From x Thu Nov 29 22:33:52 UTC 2003 +0200", "x", time.Date(2003, 11, 29, 20, 33, 52, 0, time.UTC)},
		{"From x Thu Nov 29 22:33:52 +0100 2003 +0200", "x", time.Date(2003, 11, 29, 20, 33, 52, 0, time.UTC)},
		{"From x Thu Nov 29 22:33:52 2003 +0200 remote from x", "x", time.Date(2003, 11, 29, 20, 33, 52, 0, time.UTC)},
		// UUCP's "remote from" and other text after the year.
		{"From uucp Thu Nov 29 22:33:52 2001 remote from gateway", "uucp", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From x   Thu   Nov   29   22:33:52   2001", "x", time.Date(2001, 11, 29, 22, 33, 52, 0, loc)},
		{"From - Mon Jun  3 12:50:27 1996", "-", time.Date(1996, 6, 3, 12, 50, 27, 0, loc)},
		{`From "john smith"@example.org Mon Sep 17 00:00:00 2001`, `"john smith"@example.org`, time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		// Dovecot writes an empty sender as two spaces.
		{"From  Mon Sep 17 00:00:00 2001", "", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		{"From git@z Mon Sep 17 00:00:00 2001", "git@z", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		{"From x mon sep 17 00:00:00 2001", "x", time.Date(2001, 9, 17, 0, 0, 0, 0, loc)},
		{"From x Thu, 9 Nov 2002 22:33:52", "x", time.Date(2002, 11, 9, 22, 33, 52, 0, loc)},
		{"From x Thu, 9 Nov 2002 22:33:52 +0200", "x", time.Date(2002, 11, 9, 20, 33, 52, 0, time.UTC)},
		{"From x Thu, 9 Nov 2002 22:33:52 PST", "x", time.Date(2002, 11, 9, 22, 33, 52, 0, loc)},
		{"From x Sat Jan  1 9:05:00 2000", "x", time.Date(2000, 1, 1, 9, 5, 0, 0, loc)},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			sender, date, ok := mbox.ParseFromLine([]byte(tt.line), loc)
			if !ok {
				t.Fatalf("ParseFromLine(%q) not ok", tt.line)
			}
			if sender != tt.sender {
				t.Errorf("sender = %q, want %q", sender, tt.sender)
			}
			if !date.Equal(tt.date) {
				t.Errorf("date = %v, want %v", date, tt.date)
			}
		})
	}
}

func TestParseFromLineRejects(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"",
		"From",
		"From ",
		"From - ",
		"From -",
		"From: alice@example.org",
		"from alice Mon Sep 17 00:00:00 2001",
		" From alice Mon Sep 17 00:00:00 2001",
		">From alice Mon Sep 17 00:00:00 2001",
		"From the desk of the president",
		"From Russia with love",
		"From 1844347792267117879@xxx",
		"From Mon Sep 17 00:00:00 2001",                // "Mon" taken as the sender
		"From x Mon Sep 17 00:00:00",                   // no year
		"From x Mon Sep 17 2001",                       // no time
		"From x Mon Foo 17 00:00:00 2001",              // no such month
		"From x Xyz Sep 17 00:00:00 2001",              // no such weekday
		"From x Mon Sep 32 00:00:00 2001",              // no such day
		"From x Mon Sep 17 24:00:00 2001",              // no such hour
		"From x Mon Sep 17 00:60:00 2001",              // no such minute
		"From x Mon Sep 17 00:00:00 01",                // two-digit year
		"From x Mon Sep 17 00:00:00 PST GMT 2001",      // two zones
		"From \"unterminated Mon Sep 17 00:00:00 2001", // quote never closed
		"From x Mon Sep 17 0:0:0 2001",
	} {
		t.Run(line, func(t *testing.T) {
			t.Parallel()
			if s, d, ok := mbox.ParseFromLine([]byte(line), time.UTC); ok {
				t.Errorf("ParseFromLine(%q) = %q, %v, true; want not ok", line, s, d)
			}
		})
	}
}

func TestParseFromLineLocal(t *testing.T) {
	t.Parallel()
	_, d, ok := mbox.ParseFromLine([]byte("From x Mon Sep 17 10:00:00 2001"), nil)
	if !ok {
		t.Fatal("not ok")
	}
	if want := time.Date(2001, 9, 17, 10, 0, 0, 0, time.Local); !d.Equal(want) {
		t.Errorf("date = %v, want %v in time.Local", d, want)
	}
}
