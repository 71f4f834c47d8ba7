// Machine tells bench/bench.sh what else the machine is doing, from /proc, so that a figure
// measured beside other work is refused or flagged instead of published.
//
//	machine sample [-seconds 5] [-path DIR] [-max-cpu 0.25] [-max-disk 0.25] [-max-load 1]
//	machine snap
//	machine others BEFORE AFTER OURS
//
// sample watches the machine for the given seconds and prints the load average, the CPU time
// that user-space processes spent (in cores: 0.5 is half a CPU busy all along), how busy the
// disk holding DIR was, and the processes that used most CPU meanwhile. It exits 1 and says
// "busy" when the CPU share, the disk share or the one-minute load per CPU is above its limit.
//
// snap prints a snapshot for others: the time and the CPU time of user-space processes so
// far. others prints the seconds of CPU time that processes other than ours spent between two
// snapshots, given OURS, the seconds of user and system time of the measured command (and the
// children it waited for) from /usr/bin/time. Kernel threads (writeback, the journal) are
// left out of both: they work for us as much as for anyone.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hz is the unit of the CPU times in /proc (USER_HZ), 100 on every Linux architecture.
const hz = 100

// pfKthread marks a kernel thread in /proc/PID/stat's flags.
const pfKthread = 0x00200000

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "sample":
		err = sample(os.Args[2:])
	case "snap":
		var s snapshot
		if s, err = snap(); err == nil {
			fmt.Println(s)
		}
	case "others":
		if len(os.Args) != 5 {
			usage()
		}
		err = others(os.Args[2], os.Args[3], os.Args[4])
	default:
		usage()
	}
	if errors.Is(err, errBusy) {
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "machine: error:", err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: machine sample [-seconds N] [-path DIR] [-max-cpu C] [-max-disk D] [-max-load L] | machine snap | machine others BEFORE AFTER OURS")
	os.Exit(2)
}

var errBusy = errors.New("busy")

// snapshot is the time (ns) and the user-space CPU time (ticks) of the whole machine.
type snapshot struct {
	ns    int64
	ticks int64
}

func (s snapshot) String() string { return fmt.Sprintf("%d:%d", s.ns, s.ticks) }

func parseSnapshot(s string) (snapshot, error) {
	a, b, ok := strings.Cut(s, ":")
	ns, err1 := strconv.ParseInt(a, 10, 64)
	ticks, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return snapshot{}, fmt.Errorf("not a snapshot: %q", s)
	}
	return snapshot{ns, ticks}, nil
}

// snap reads the machine's user+nice+system ticks from /proc/stat, less those of kernel
// threads, which /proc/stat counts as system time.
func snap() (snapshot, error) {
	ns := time.Now().UnixNano()
	total, err := cpuTicks()
	if err != nil {
		return snapshot{}, err
	}
	procs, err := processes()
	if err != nil {
		return snapshot{}, err
	}
	for _, p := range procs {
		if p.kthread {
			total -= p.ownTicks
		}
	}
	return snapshot{ns, total}, nil
}

func others(before, after, ours string) error {
	a, err := parseSnapshot(before)
	if err != nil {
		return err
	}
	b, err := parseSnapshot(after)
	if err != nil {
		return err
	}
	o, err := strconv.ParseFloat(ours, 64)
	if err != nil {
		return fmt.Errorf("not seconds: %q", ours)
	}
	if b.ns < a.ns {
		return fmt.Errorf("snapshots out of order")
	}
	cpu := float64(b.ticks-a.ticks)/hz - o
	// The tick counts are coarse (10 ms per CPU): a short run may show less than its own time.
	fmt.Printf("%.3f\n", max(cpu, 0))
	return nil
}

// cpuTicks returns user+nice+system of the cpu line of /proc/stat.
func cpuTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum int64
	for _, s := range f[1:4] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

type process struct {
	pid      int
	comm     string
	kthread  bool
	ownTicks int64 // utime+stime
	allTicks int64 // with the children it waited for
}

// processes reads /proc/PID/stat of every process; one that exits meanwhile is left out.
func processes() (map[int]process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]process{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if p, ok := parseStat(pid, b); ok {
			procs[pid] = p
		}
	}
	return procs, nil
}

// parseStat reads the fields of /proc/PID/stat that processes needs.
func parseStat(pid int, b []byte) (process, bool) {
	// comm is in parentheses and may hold spaces and parentheses: the fields start
	// after the last ')'.
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return process{}, false
	}
	f := strings.Fields(string(b[close+1:]))
	if len(f) < 15 {
		return process{}, false
	}
	num := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	// f[0] is field 3 (state): field n is f[n-3].
	p := process{pid: pid, comm: string(b[open+1 : close]), kthread: num(9-3)&pfKthread != 0}
	p.ownTicks = num(14-3) + num(15-3)
	p.allTicks = p.ownTicks + num(16-3) + num(17-3)
	return p, true
}

// ioTicks returns the milliseconds the disk holding path spent doing I/O (/proc/diskstats).
func ioTicks(path string) (name string, ms int64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", 0, err
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return "", 0, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 13 || f[0] != strconv.FormatUint(major, 10) || f[1] != strconv.FormatUint(minor, 10) {
			continue
		}
		v, err := strconv.ParseInt(f[12], 10, 64)
		return f[2], v, err
	}
	return "", 0, fmt.Errorf("no /proc/diskstats line for device %d:%d of %s", major, minor, path)
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 70 {
		s = s[:67] + "..."
	}
	return s
}

func sample(args []string) error { return sampleTo(os.Stdout, args) }

// sampleTo is sample writing to w.
func sampleTo(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	seconds := fs.Float64("seconds", 5, "watch for this long")
	path := fs.String("path", ".", "measure the disk that holds this path")
	maxCPU := fs.Float64("max-cpu", 0.25, "busy above this many cores of other processes' CPU")
	maxDisk := fs.Float64("max-disk", 0.25, "busy above this share of time the disk was busy")
	maxLoad := fs.Float64("max-load", 1, "busy above this one-minute load average per CPU")
	if err := fs.Parse(args); err != nil {
		return err
	}

	s0, err := snap()
	if err != nil {
		return err
	}
	p0, err := processes()
	if err != nil {
		return err
	}
	dev, io0, err := ioTicks(*path)
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	s1, err := snap()
	if err != nil {
		return err
	}
	p1, err := processes()
	if err != nil {
		return err
	}
	_, io1, err := ioTicks(*path)
	if err != nil {
		return err
	}
	wall := float64(s1.ns-s0.ns) / 1e9
	cpu := float64(s1.ticks-s0.ticks) / hz / wall
	disk := float64(io1-io0) / 1000 / wall

	load, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err
	}
	lf := strings.Fields(string(load))
	load1, _ := strconv.ParseFloat(lf[0], 64)
	ncpu := runtimeCPUs()

	// Each process's own CPU in the window. The time of processes that started and ended
	// within it (a compiler, a test binary) shows only in the total, and in the reaped
	// children's time of the parent that waited for them, which also holds whatever they
	// used before the window: that is named as a hint, not counted.
	type use struct {
		p     process
		ticks int64
	}
	var top []use
	var own int64
	var reaper use
	for pid, p := range p1 {
		if p.kthread {
			continue
		}
		d, c := p.ownTicks, p.allTicks-p.ownTicks
		if q, ok := p0[pid]; ok {
			d -= q.ownTicks
			c -= q.allTicks - q.ownTicks
		}
		if d > 0 {
			top = append(top, use{p, d})
			own += d
		}
		if c > reaper.ticks {
			reaper = use{p, c}
		}
	}
	slices.SortFunc(top, func(a, b use) int { return int(b.ticks - a.ticks) })

	fmt.Fprintf(w, "load average %s %s %s (%d CPUs)\n", lf[0], lf[1], lf[2], ncpu)
	fmt.Fprintf(w, "over %.1f s: other processes' CPU %.2f cores, disk %s busy %.0f%% of the time\n", wall, cpu, dev, 100*disk)
	for i, u := range top {
		if i == 5 {
			break
		}
		fmt.Fprintf(w, "  %5.1f%% of a CPU  pid %d %s: %s\n", 100*float64(u.ticks)/hz/wall, u.p.pid, u.p.comm, cmdline(u.p.pid))
	}
	if gone := cpu - float64(own)/hz/wall; gone >= 0.01 {
		fmt.Fprintf(w, "  %5.1f%% of a CPU  in processes that ended meanwhile", 100*gone)
		if reaper.ticks > 0 {
			fmt.Fprintf(w, " (most reaped by pid %d %s: %s)", reaper.p.pid, reaper.p.comm, cmdline(reaper.p.pid))
		}
		fmt.Fprintln(w)
	}
	var why []string
	if cpu > *maxCPU {
		why = append(why, fmt.Sprintf("other processes used %.2f cores (limit %.2f)", cpu, *maxCPU))
	}
	if disk > *maxDisk {
		why = append(why, fmt.Sprintf("the disk was busy %.0f%% of the time (limit %.0f%%)", 100*disk, 100**maxDisk))
	}
	if load1/float64(ncpu) > *maxLoad {
		why = append(why, fmt.Sprintf("one-minute load %.2f on %d CPUs (limit %.2f per CPU)", load1, ncpu, *maxLoad))
	}
	if len(why) > 0 {
		fmt.Fprintf(w, "busy: %s\n", strings.Join(why, "; "))
		return errBusy
	}
	fmt.Fprintln(w, "quiet")
	return nil
}

// runtimeCPUs counts the cpuN lines of /proc/stat.
func runtimeCPUs() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if len(line) > 3 && line[:3] == "cpu" && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}
