#!/bin/bash
# bench.sh measures maildirmig against the floor of the same work (the least a file system
# needs to store the same files) and against the other tools, on the same input and disk,
# and writes BENCHMARKS.md and its plots. It refuses to report figures it cannot trust.
#
#   bench/bench.sh [--quick] [--reps N] [--out DIR] [--only LIST] [--busy-ok]
#                  [--settle S] [--max-settle S] [--max-others C] [--clean-at-end] [--bin FILE]
#
# --bin measures that maildirmig binary instead of one built from this checkout (to compare
# two builds on the same machine and corpus). The one built here is built as
# packaging/build.sh builds the packaged binary (static, CGO_ENABLED=0).
#
# The work, each a group of runs (--only takes a comma-separated list of the names):
#
#   convert   maildirmig convert, durable default     against  tar x && sync  of the same Maildir
#   batch     maildirmig convert --fsync batch        against  tar x && sync
#   none      maildirmig convert --fsync none         against  tar x
#   many      maildirmig mbox as root, 200 users      against  each user's tar x as that user,
#             of 40 messages, at the default -j                as many at a time, then one sync
#   big       the same, 8 users of 2,500 messages     against  the same floor
#   delta     over the 200 users' corpus: a second maildirmig mbox pass after 1% of the messages
#             were expunged and 5% reflagged (bench/corpus -mutate), against the first pass
#   rollback  maildirmig rollback of the 20,000       against  cat of the Maildir's files into
#             messages                                         one file, then sync
#   mb2md     mb2md                                   against  maildirmig convert --fsync none
#   dsync     doveadm backup, mbox to Maildir         against  maildirmig convert, durable default
#   syscalls  strace -c -f of convert in each mode (counts, not timed)
#
# The single mbox is bench/corpus's 20,000 messages (about 111 MB). --quick makes it 2,000
# messages, 20 users instead of 200 and 250 messages a user instead of 2,500. delta and rollback
# run only when the maildirmig built here can do them, and say "not available in this build"
# otherwise. Peak RSS comes from /usr/bin/time.
#
# How it measures, so that a figure means what it says:
#   - Nothing is deleted before a timed run: every run writes into a directory of its own that
#     did not exist before. Trees are removed between groups only, and before each group the
#     script syncs and waits until a probe (tar x && sync of the single mbox's Maildir into a
#     fresh directory) is back within 25% (and 20 ms, the noise of starting a process, which
#     matters with --quick) of its fresh time: the least of three at the start, when nothing
#     had been deleted, or of any faster probe since. On a file system mounted
#     with online discard, the discards of a big delete are paid by the next sync, whoever
#     calls it. It waits --settle seconds (default 10) first, then twice as long each time,
#     and gives up after --max-settle (default 160). With --clean-at-end nothing is removed
#     before the end (about 20 GB of trees for the full run, 2 GB with --quick), and the probe
#     before each group only checks that nothing else slowed the disk down.
#   - A group starts with a warm-up run of each tool, not counted, then two calibration runs
#     of its floor into fresh directories (the lesser is the calibration). Then --reps
#     repetitions (default 5), each the tool and its floor back to back, the tool first in odd
#     repetitions and the floor first in even ones. An untimed sync precedes every run. The
#     ratio reported is the median of the per-repetition ratios; the seconds are medians, and
#     the floors' are printed with them.
#   - A floor more than twice its group's calibration (and 20 ms) is implausible (the disk
#     was doing something else): the script stops and reports nothing (exit 4). So does a
#     calibration of tar x && sync more than twice the fresh probe, the same work, and a
#     file system that does not settle.
#   - What else runs on the machine is read from /proc (bench/machine): at the start, during
#     every settle, and at the end, the load average, other processes' CPU and the top CPU
#     consumers; during every group, the CPU time of processes other than the measured ones.
#     When other processes used more than --max-others cores (default 0.25), or the disk was
#     busy at the start, the script stops (exit 3), unless --busy-ok: then it goes on, marks
#     every figure as taken on a busy machine, and writes the report only to an --out other
#     than the repository.
#
# Exit status: 0 reported, 1 a run failed, 2 usage, 3 refused: the machine was busy,
# 4 refused: a floor was implausible or the file system did not settle.
#
# Run as root (maildirmig mbox runs its workers as each user; the users are made with useradd,
# named mmbench-*, and removed at the end with the scratch tree under ${TMPDIR:-/tmp}). The
# page cache is not dropped: every tool reads a warm input.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
quick=0 reps=5 out=$repo out_given=0 only="" busy_ok=0 settle=10 max_settle=160 max_others=0.25 given_bin="" clean_at_end=0
usage() { echo "usage: bench/bench.sh [--quick] [--reps N] [--out DIR] [--only LIST] [--busy-ok] [--settle S] [--max-settle S] [--max-others C] [--clean-at-end] [--bin FILE]" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--busy-ok) busy_ok=1 ;;
	--clean-at-end) clean_at_end=1 ;;
	--reps | --out | --only | --settle | --max-settle | --max-others | --bin)
		[ $# -ge 2 ] || usage
		case $1 in
		--reps) reps=$2 ;;
		--out) out=$2 out_given=1 ;;
		--only) only=,$2, ;;
		--settle) settle=$2 ;;
		--max-settle) max_settle=$2 ;;
		--max-others) max_others=$2 ;;
		--bin) given_bin=$2 ;;
		esac
		shift
		;;
	*) echo "bench: error: unknown argument $1" >&2; usage ;;
	esac
	shift
done
for name in ${only//,/ }; do
	case $name in
	convert | batch | none | many | big | delta | rollback | mb2md | dsync | syscalls) ;;
	*) echo "bench: error: --only: no work named $name" >&2; usage ;;
	esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "bench: error: --reps takes a positive number, not $reps" >&2; exit 2; }
[[ $settle =~ ^[1-9][0-9]*$ && $max_settle =~ ^[0-9]+$ ]] || { echo "bench: error: --settle and --max-settle take seconds" >&2; exit 2; }
out=$(mkdir -p "$out" && cd "$out" && pwd)
benchuser=${BENCH_USER:-nobody}

[ "$(id -u)" = 0 ] || { echo "bench: error: run as root (maildirmig mbox runs workers as each user)" >&2; exit 1; }
for tool in go awk tar find xargs setpriv useradd userdel getent; do
	command -v "$tool" >/dev/null || { echo "bench: error: $tool not found" >&2; exit 1; }
done
if [ ! -x /usr/bin/time ]; then
	echo "bench: error: /usr/bin/time not found" >&2
	echo "bench: hint: apt-get install time" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/maildirmig-bench.XXXXXX")
chmod 755 "$work"
made_users=()
cleanup() {
	for u in "${made_users[@]}"; do userdel "$u" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

bin=$work/maildirmig
if [ -n "$given_bin" ]; then
	[ -x "$given_bin" ] || { echo "bench: error: --bin $given_bin is not an executable file" >&2; exit 2; }
	# A copy every user can run, whatever the directory it came from.
	cp "$given_bin" "$bin"
	chmod 755 "$bin"
	version="$("$bin" --version 2>/dev/null | head -1 || true) (--bin $given_bin)"
else
	version=$(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown)
	# Built as packaging/build.sh builds the binary users run: static. A default build links
	# libc dynamically (cgo), which costs each of mbox's per-user workers about 1.5 ms more
	# to start.
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin" ./cmd/maildirmig)
fi
# The bench tools are a module of their own, so the product's go.mod carries no plotting.
(cd "$repo/bench" && go build -o "$work/corpus" ./corpus && go build -o "$work/plot" ./plot && go build -o "$work/machine" ./machine)

log=$work/log
note() { echo "bench: $*" | tee -a "$log" >&2; }
busy=0 # set when the machine was busy and --busy-ok let the run go on
refuse() {
	local code=$1
	shift
	note "refused: $*"
	note "nothing reported"
	exit "$code"
}
wants() { [ -z "$only" ] || [[ $only == *",$1,"* ]]; }
calc() { awk "BEGIN { printf \"%.4f\", $* }"; }
# median reads numbers, one a line, and prints their median.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# sample WHAT SECONDS [MAXDISK]: watches the machine for SECONDS, logs what else ran, and
# refuses (or with --busy-ok marks the report) when it was busy. MAXDISK (default 0.25) is the
# share of time the disk may be busy: after a clean-up of ours, the disk's work is ours.
samples=$work/samples
: >"$samples"
sample() {
	local what=$1 secs=$2 disk=${3:-0.25} rc=0
	"$work/machine" sample -seconds "$secs" -path "$work" -max-cpu "$max_others" -max-disk "$disk" >"$work/sample" || rc=$?
	{
		echo "$what ($(date -u +%H:%M:%S) UTC):"
		sed 's/^/    /' "$work/sample"
	} | tee -a "$samples" "$log" >&2
	case $rc in
	0) ;;
	1)
		[ "$busy_ok" = 1 ] || refuse 3 "the machine is busy ($what): $(tail -1 "$work/sample" | sed 's/^busy: //')"
		busy=1
		;;
	*) echo "bench: error: machine sample failed" >&2; exit 1 ;;
	esac
}

# timed KEY CMD...: an untimed sync, then CMD timed; sets T (seconds), and appends
# "KEY seconds maxrss_kib others_cpu_seconds" to $work/times.
times=$work/times
: >"$times"
timed() {
	local key=$1 before after t0 t1 usr sys rss
	shift
	sync
	before=$("$work/machine" snap)
	t0=$EPOCHREALTIME
	if ! /usr/bin/time -f '%M %U %S' -o "$work/t" "$@" >"$work/out" 2>"$work/err"; then
		echo "bench: error: $key failed: $*" >&2
		tail -5 "$work/err" >&2
		exit 1
	fi
	t1=$EPOCHREALTIME
	after=$("$work/machine" snap)
	read -r rss usr sys < <(tail -1 "$work/t")
	T=$(calc "$t1 - $t0")
	O=$("$work/machine" others "$before" "$after" "$(calc "$usr + $sys")")
	echo "$key $T $rss $O" >>"$times"
	if [ "$1" = "$bin" ]; then echo "$rss" >>"$work/mmrss"; fi
}
count() { find "$@" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l; }
# expect WHAT GOT WANT: stops the script when a run did not do its work.
expect() { [ "$2" = "$3" ] || { echo "bench: error: $1: $2, want $3" >&2; exit 1; }; }

div=$((quick ? 10 : 1))
full=$((20000 / div))
many_users=$((200 / div)) many_msgs=40
big_users=8 big_msgs=$((2500 / div))
ncpu=$(nproc)
# maildirmig's default -j: the number of CPUs, 2 to 8 (the floor runs as many users at a time).
jobs=$((ncpu < 2 ? 2 : ncpu > 8 ? 8 : ncpu))
"$bin" mbox --help | grep -q 'default: the number of CPUs, 2 to 8' ||
	note "warning: maildirmig's default -j is no longer 'the number of CPUs, 2 to 8': the floor runs $jobs users at a time"

note "work in $work; corpus: one mbox of $full messages, $many_users users x $many_msgs and $big_users users x $big_msgs messages"
sample "at the start" 5
start_sample=$(cat "$work/sample")

input=$work/m$full.mbox
"$work/corpus" -mbox "$input" -messages "$full"
# The floor's Maildir is maildirmig's own output, so both store the same files.
"$bin" convert -q --fsync none --from "$input" "$work/ref"
expect "reference Maildir" "$(count "$work/ref")" "$full"
tar -C "$work/ref" -cf "$work/m$full.tar" .
mbox_mb=$(awk -v b="$(stat -c %s "$input")" 'BEGIN { printf "%.0f", b / 1048576 }')

# The probe: tar x && sync of the single mbox's Maildir into a fresh directory, on a file
# system where nothing was deleted yet. Later probes must come back near this time.
probes=0
probe() {
	probes=$((probes + 1))
	mkdir -p "$work/probe/$probes"
	timed "probe/$probes" sh -c 'tar -C "$1" -xf "$2" && sync' - "$work/probe/$probes" "$work/m$full.tar"
}
sync
probe
for i in 1 2 3; do
	probe
	echo "$T"
done >"$work/fresh"
# The least of three: what the disk does undisturbed, which later probes must come back to.
fresh=$(sort -g "$work/fresh" | head -1)
note "fresh: tar x && sync of $full files took $fresh s (the least of $(tr '\n' ' ' <"$work/fresh")s) before anything was deleted"

settles=$work/settles
: >"$settles"
# settle: after a clean-up, syncs and waits until a probe is back within 25% of fresh.
settle_down() {
	local wait=$settle waited=0
	while :; do
		sync
		sample "settling for ${wait} s" "$wait" 1.01
		waited=$((waited + wait))
		probe
		if awk -v p="$T" -v f="$fresh" 'BEGIN { exit !(p <= 1.25 * f + 0.02) }'; then
			note "settled after $waited s: probe $T s (fresh $fresh s)"
			echo "$waited $T" >>"$settles"
			# A probe faster than the start's shows the start was disturbed: the best
			# time seen is the reference from now on.
			if awk -v p="$T" -v f="$fresh" 'BEGIN { exit !(p < f) }'; then
				fresh=$T
				note "fresh is now $fresh s, the fastest probe yet"
			fi
			return
		fi
		note "probe $T s, more than 1.25 x fresh $fresh s + 0.02 s: waiting longer"
		wait=$((wait * 2))
		[ $((waited + wait)) -le "$max_settle" ] ||
			refuse 4 "the file system did not settle: a tar x && sync probe took $T s after $waited s, against $fresh s fresh"
	done
}

# The clean-up between groups: everything of the last group and the probes; with
# --clean-at-end, nothing until the scratch tree goes at exit.
clean() {
	[ "$clean_at_end" = 1 ] || rm -rf "$@" "$work/probe"
}

reps_tsv=$work/reps.tsv
results=$work/results.tsv
: >"$reps_tsv"
: >"$results"
others_sum() { awk -v p="$1/" 'index($1, p) == 1 { o += $4; t += $2 } END { printf "%.2f", (t > 0 ? o / t : 0) }' "$times"; }
# pairs GROUP TOOL FLOOR KIND: the group's runs, with tool_run and floor_run SET defined by the
# caller (SET: w for the warm-up, c1 and c2 for the calibration, 1..reps). KIND floor checks
# every floor against the calibration, the lesser of two runs; KIND probe does too, and checks
# the calibration against the fresh probe, which is the same work; KIND partner compares two
# tools, with no calibration.
pairs() {
	local grp=$1 tl=$2 fl=$3 kind=$4 r t f ratio order cal=-
	settle_down
	note "$grp: warm-up"
	tool_run w
	floor_run w
	if [ "$kind" != partner ]; then
		floor_run c1
		cal=$T
		floor_run c2
		cal=$(printf '%s\n' "$cal" "$T" | sort -g | head -1)
		note "$grp: calibration: $fl took $cal s into a fresh directory (the lesser of two runs)"
		if [ "$kind" = probe ] && awk -v c="$cal" -v f="$fresh" 'BEGIN { exit !(c > 2 * f + 0.02) }'; then
			refuse 4 "$grp: the calibration ($fl) took $cal s, more than twice the fresh $fresh s of the same work"
		fi
	fi
	for r in $(seq "$reps"); do
		if [ $((r % 2)) = 1 ]; then
			order="tool first"
			tool_run "$r"
			t=$T
			floor_run "$r"
			f=$T
		else
			order="floor first"
			floor_run "$r"
			f=$T
			tool_run "$r"
			t=$T
		fi
		ratio=$(calc "$t / $f")
		printf '%s\t%s\t%s\t%.3f\t%.3f\t%.3f\n' "$grp" "$r" "$order" "$t" "$f" "$ratio" >>"$reps_tsv"
		note "$grp $r/$reps ($order): $tl $t s, $fl $f s, ratio $ratio"
		if [ "$kind" != partner ] && awk -v f="$f" -v c="$cal" 'BEGIN { exit !(f > 2 * c + 0.02) }'; then
			refuse 4 "$grp: the floor ($fl) took $f s in repetition $r, more than twice the $cal s its calibration took on a fresh directory just before"
		fi
	done
	summarize "$grp" "$tl" "$fl" "$cal"
}
# summarize GROUP TOOL FLOOR CAL: one line of results.tsv, and the group's share of other
# processes' CPU, which stops the script (or marks the report) when too high.
summarize() {
	local grp=$1 tl=$2 fl=$3 cal=$4 tm fm rm rmin rmax rss others
	tm=$(awk -v k="$grp/tool/" 'index($1, k) == 1 && $1 !~ /\/w$/ { print $2 }' "$times" | median)
	fm=$(awk -v k="$grp/floor/" 'index($1, k) == 1 && $1 !~ /\/(w|c[12])$/ { print $2 }' "$times" | median)
	rm=$(awk -F'\t' -v g="$grp" '$1 == g { print $6 }' "$reps_tsv" | median)
	rmin=$(awk -F'\t' -v g="$grp" '$1 == g { print $6 }' "$reps_tsv" | sort -g | head -1)
	rmax=$(awk -F'\t' -v g="$grp" '$1 == g { print $6 }' "$reps_tsv" | sort -g | tail -1)
	rss=$(awk -v k="$grp/tool/" 'index($1, k) == 1 { print $3 }' "$times" | sort -g | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')
	others=$(others_sum "$grp")
	[ "$cal" = - ] || cal=$(printf '%.3f' "$cal")
	printf '%s\t%s\t%s\t%.3f\t%.3f\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\n' "$grp" "$tl" "$fl" "$tm" "$fm" "$cal" "$rm" "$rmin" "$rmax" "$rss" "$others" >>"$results"
	note "$grp: median $tl $tm s, $fl $fm s, median ratio $rm (from $rmin to $rmax), other processes $others cores"
	if awk -v o="$others" -v m="$max_others" 'BEGIN { exit !(o > m) }'; then
		[ "$busy_ok" = 1 ] || refuse 3 "$grp: other processes used $others cores while it ran (limit $max_others)"
		busy=1
	fi
}

# One mbox, three modes.
for mode in convert batch none; do
	wants "$mode" || continue
	g=$work/$mode
	mkdir -p "$g"
	case $mode in
	convert)
		args=() tlabel="maildirmig convert (durable default)" flabel="tar x && sync" kind=probe
		floor_run() { mkdir "$g/f$1"; timed "$mode/floor/$1" sh -c 'tar -C "$1" -xf "$2" && sync' - "$g/f$1" "$work/m$full.tar"; }
		;;
	batch)
		args=(--fsync batch) tlabel="maildirmig convert --fsync batch" flabel="tar x && sync" kind=probe
		floor_run() { mkdir "$g/f$1"; timed "$mode/floor/$1" sh -c 'tar -C "$1" -xf "$2" && sync' - "$g/f$1" "$work/m$full.tar"; }
		;;
	none)
		args=(--fsync none) tlabel="maildirmig convert --fsync none" flabel="tar x" kind=floor
		floor_run() { mkdir "$g/f$1"; timed "$mode/floor/$1" tar -C "$g/f$1" -xf "$work/m$full.tar"; }
		;;
	esac
	tool_run() {
		timed "$mode/tool/$1" "$bin" convert -q "${args[@]}" --from "$input" "$g/t$1"
		expect "$mode: messages in the Maildir" "$(count "$g/t$1")" "$full"
	}
	pairs "$mode" "$tlabel" "$flabel" "$kind"
	clean "$g"
done

# Many users: real accounts, each migrated by maildirmig's worker running as that user. Each
# set of runs has homes, spools and state of its own, named in a passwd file of its own.
need_users=0
for x in many big delta rollback; do wants $x && need_users=1; done
if [ "$need_users" = 1 ]; then
	note "making $many_users users"
	: >"$work/users"
	for i in $(seq 0 $((many_users - 1))); do
		u=$(printf 'mmbench-%04d' "$i")
		getent passwd "$u" >/dev/null && userdel "$u"
		useradd -M -N -g nogroup -d /nonexistent -s /usr/sbin/nologin "$u"
		made_users+=("$u")
		getent passwd "$u" >>"$work/users"
	done
fi
# prepare DIR CORPUS N SETS...: DIR/tar/USER.tar for the floor, and for each SET the first N
# users' spools (copies of CORPUS/uNNNN), homes and passwd file DIR/SET/passwd.
prepare() {
	local d=$1 c=$2 n=$3 s u uid gid i line
	shift 3
	mkdir -p "$d/tar" "$d/ref"
	head -n "$n" "$work/users" >"$d/users"
	i=0
	while IFS=: read -r u _ uid gid _; do
		if [ ! -e "$d/tar/$u.tar" ]; then
			"$bin" convert -q --fsync none --from "$c/$(printf 'u%04d' "$i")" "$d/ref/$u"
			tar -C "$d/ref/$u" -cf "$d/tar/$u.tar" --transform 's,^\.,Maildir,' .
		fi
		i=$((i + 1))
	done <"$d/users"
	for s in "$@"; do
		mkdir -p "$d/$s/spool" "$d/$s/home" "$d/$s/floor"
		chmod 755 "$d/$s" "$d/$s/home" "$d/$s/floor"
		: >"$d/$s/passwd"
		i=0
		while IFS= read -r line; do
			IFS=: read -r u _ uid gid _ <<<"$line"
			cp "$c/$(printf 'u%04d' "$i")" "$d/$s/spool/$u"
			chown "$u" "$d/$s/spool/$u"
			chmod 600 "$d/$s/spool/$u"
			mkdir -m 755 "$d/$s/home/$u" "$d/$s/floor/$u"
			chown "$u" "$d/$s/home/$u" "$d/$s/floor/$u"
			awk -F: -v OFS=: -v h="$d/$s/home/$u" '{ $6 = h; print }' <<<"$line" >>"$d/$s/passwd"
			i=$((i + 1))
		done <"$d/users"
	done
}
# mbox_pass DIR SET KEY: maildirmig mbox as root over the set's users, at the default -j.
mbox_pass() {
	timed "$3" "$bin" mbox -q --progress never --no-root --no-folders --min-uid 1 \
		--passwd "$1/$2/passwd" --spool-dir "$1/$2/spool" --state-dir "$1/$2/state" --audit-log "$1/$2/audit.jsonl"
}
# users_floor DIR SET KEY: the floor of a set: each user's tar x of their Maildir as that user,
# $jobs at a time, into DIR/SET/floor/USER, then one sync.
users_floor() {
	local d=$1 s=$2 key=$3
	timed "$key" sh -c '
		cut -d: -f1,3,4 "$1/users" | tr : " " |
			xargs -P "$3" -n 3 sh -c '\''exec setpriv --reuid "$3" --regid "$4" --clear-groups tar -C "$0/$2" -xf "$1/$2.tar"'\'' "$1/$2/floor" "$1/tar" &&
			sync' - "$d" "$s" "$jobs"
}

for shape in many big; do
	wants "$shape" || continue
	case $shape in
	many) n=$many_users m=$many_msgs ;;
	big) n=$big_users m=$big_msgs ;;
	esac
	d=$work/$shape
	note "$shape: $n users of $m messages"
	"$work/corpus" -users "$d/corpus" -n "$n" -messages "$m"
	prepare "$d" "$d/corpus" "$n" w c1 c2 $(seq "$reps")
	tool_run() {
		mbox_pass "$d" "$1" "$shape/tool/$1"
		expect "$shape: messages in the Maildirs" "$(count "$d/$1/home")" "$((n * m))"
	}
	floor_run() {
		users_floor "$d" "$1" "$shape/floor/$1"
		expect "$shape: messages in the floor's Maildirs" "$(count "$d/$1/floor")" "$((n * m))"
	}
	pairs "$shape" "maildirmig mbox ($n users x $m, -j $jobs)" "tar x as each user, $jobs at a time, then sync" floor
	clean "$d"
done

# The delta pass: a first pass, then the spools changed as users change them through Dovecot,
# then a second pass, timed against the first. It cannot swap the order.
delta_probe() {
	local d=$work/delta-probe out
	mkdir -p "$d"
	"$work/corpus" -users "$d/corpus" -n 1 -messages 40
	prepare "$d" "$d/corpus" 1 p
	mbox_pass "$d" p delta-probe/first
	out=$("$work/corpus" -mutate -expunge 0.2 -reflag 0.3 "$d/p/spool/"* | tail -1)
	local msgs exp
	msgs=$(sed 's/.*messages=\([0-9]*\).*/\1/' <<<"$out")
	exp=$(sed 's/.*expunged=\([0-9]*\).*/\1/' <<<"$out")
	if ! "$bin" mbox -q --progress never --no-root --no-folders --min-uid 1 --passwd "$d/p/passwd" \
		--spool-dir "$d/p/spool" --state-dir "$d/p/state" --audit-log "$d/p/audit.jsonl" >"$work/out" 2>"$work/err"; then
		why="a second pass after expunges and flag changes failed: $(grep -m1 'error' "$work/err" || tail -1 "$work/err")"
		rm -rf "$d"
		return 1
	fi
	if [ "$(count "$d/p/home")" != "$((msgs - exp))" ]; then
		why="a second pass left $(count "$d/p/home") messages, not the $((msgs - exp)) the spool still holds"
		rm -rf "$d"
		return 1
	fi
	rm -rf "$d"
}
if wants delta; then
	why=""
	if ! delta_probe; then
		note "delta: not available in this build ($why)"
		printf 'delta\tnot available in this build: %s\n' "$why" >>"$work/unavailable"
	else
		d=$work/delta n=$many_users m=$many_msgs
		note "delta: $n users of $m messages, then 1% expunged and 5% reflagged"
		"$work/corpus" -users "$d/corpus" -n "$n" -messages "$m"
		prepare "$d" "$d/corpus" "$n" w $(seq "$reps")
		: >"$work/mutations"
		delta_run() {
			local s=$1 left
			mbox_pass "$d" "$s" "delta/floor/$s"
			local first=$T
			"$work/corpus" -mutate -expunge 0.01 -reflag 0.05 "$d/$s/spool/"* | tail -1 | tee -a "$work/mutations" >"$work/mutation"
			local msgs exp
			msgs=$(sed 's/.*messages=\([0-9]*\).*/\1/' "$work/mutation")
			exp=$(sed 's/.*expunged=\([0-9]*\).*/\1/' "$work/mutation")
			mbox_pass "$d" "$s" "delta/tool/$s"
			expect "delta: messages in the Maildirs after the second pass" "$(count "$d/$s/home")" "$((msgs - exp))"
			D_FIRST=$first D_SECOND=$T
		}
		settle_down
		note "delta: warm-up"
		delta_run w
		for r in $(seq "$reps"); do
			delta_run "$r"
			ratio=$(calc "$D_SECOND / $D_FIRST")
			printf '%s\t%s\t%s\t%.3f\t%.3f\t%.3f\n' delta "$r" "first pass, then second" "$D_SECOND" "$D_FIRST" "$ratio" >>"$reps_tsv"
			note "delta $r/$reps: second pass $D_SECOND s, first pass $D_FIRST s ($(cat "$work/mutation")), ratio $ratio"
		done
		summarize delta "maildirmig mbox, second pass ($n users x $m, 1% expunged, 5% reflagged)" "the first pass" -
		clean "$d"
	fi
fi

# Rollback of the single mbox's user, against cat of the Maildir's files into one file.
if wants rollback; then
	if ! "$bin" help rollback >/dev/null 2>&1; then
		note "rollback: not available in this build (maildirmig has no rollback command)"
		printf 'rollback\tnot available in this build: maildirmig has no rollback command\n' >>"$work/unavailable"
	else
		d=$work/rollback
		mkdir -p "$d/corpus"
		cp "$input" "$d/corpus/u0000"
		prepare "$d" "$d/corpus" 1 w $(seq "$reps")
		u=$(head -1 "$d/users" | cut -d: -f1)
		note "rollback: migrating $full messages for each of $((reps + 1)) sets (untimed)"
		for s in w $(seq "$reps"); do
			mbox_pass "$d" "$s" "rollback/setup/$s"
			expect "rollback: messages migrated" "$(count "$d/$s/home")" "$full"
		done
		tool_run() {
			timed "rollback/tool/$1" "$bin" rollback -q --progress never --no-folders \
				--passwd "$d/$1/passwd" --spool-dir "$d/$1/spool" --state-dir "$d/$1/state" --audit-log "$d/$1/audit.jsonl" "$u"
			expect "rollback: messages in the spool" "$(grep -c '^From ' "$d/$1/spool/$u")" "$full"
			# The rollback freed the old spool: let its discards pass before the next run.
			sync
			sleep "$settle"
		}
		floor_run() {
			local s=$1
			[ "$s" = c1 ] || [ "$s" = c2 ] && s=w
			timed "rollback/floor/$1" sh -c 'find "$1/cur" "$1/new" -type f -print0 | xargs -0 cat >"$2" && sync' - "$d/$s/home/$u/Maildir" "$d/$1.cat"
		}
		pairs rollback "maildirmig rollback ($full messages)" "cat of the Maildir's files into one file, then sync" floor
		clean "$d"
	fi
fi

if wants mb2md; then
	if command -v mb2md >/dev/null; then
		g=$work/mb2md
		mkdir -p "$g"
		tool_run() {
			timed "mb2md/tool/$1" mb2md -s "$input" -d "$g/t$1"
			expect "mb2md: messages in the Maildir" "$(count "$g/t$1")" "$full"
		}
		floor_run() { timed "mb2md/floor/$1" "$bin" convert -q --fsync none --from "$input" "$g/f$1"; }
		pairs mb2md "mb2md" "maildirmig convert --fsync none" partner
		clean "$g"
	else
		note "mb2md: not installed (apt-get install mb2md)"
		printf 'mb2md\tnot installed\n' >>"$work/unavailable"
	fi
fi

# dsync reads the mbox as the user's INBOX and writes a Maildir; both belong to the user (it
# refuses root), and it rewrites the source, so each run has a copy of its own.
if wants dsync; then
	if command -v doveadm >/dev/null; then
		dv=$work/dsync
		mkdir -p "$dv/run" "$dv/state" "$dv/mm"
		chown "$benchuser" "$dv/run" "$dv/state"
		cat >"$dv/dovecot.conf" <<CONF
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/run/dovecot.log
ssl = no
mail_location = mbox:~/mail:INBOX=~/inbox
namespace inbox {
  inbox = yes
  separator = /
}
CONF
		for s in w $(seq "$reps"); do
			mkdir -p "$dv/$s/mail"
			cp "$input" "$dv/$s/inbox"
			chown -R "$benchuser" "$dv/$s"
		done
		tool_run() {
			timed "dsync/tool/$1" setpriv --reuid "$(id -u "$benchuser")" --regid "$(id -g "$benchuser")" --clear-groups \
				env HOME="$dv/$1" USER="$benchuser" doveadm -c "$dv/dovecot.conf" backup maildir:~/Maildir
			expect "dsync: messages in the Maildir" "$(count "$dv/$1/Maildir")" "$full"
		}
		floor_run() { timed "dsync/floor/$1" "$bin" convert -q --from "$input" "$dv/mm/$1"; }
		pairs dsync "doveadm backup" "maildirmig convert (durable default)" partner
		clean "$dv"
	else
		note "dsync: doveadm not installed (apt-get install dovecot-core)"
		printf 'dsync\tnot installed\n' >>"$work/unavailable"
	fi
fi

# System calls per message, counted, not timed.
syscalls=""
if wants syscalls && ! command -v strace >/dev/null; then
	note "syscalls: strace not installed (apt-get install strace)"
elif wants syscalls; then
	g=$work/syscalls
	mkdir -p "$g"
	sc() {
		strace -c -f -o "$work/strace" "$@" >/dev/null 2>&1
		# The total line: % time, seconds, usecs/call, calls, [errors,] total.
		awk -v n="$full" '/ total$/ { printf "%.1f", $4 / n }' "$work/strace"
	}
	top() { awk 'NR > 2 && !/^-/ && !/total/ { print }' "$work/strace" | sort -k4 -g -r | head -12; }
	for mode in syncfs batch none; do
		per=$(sc "$bin" convert -q --fsync "$mode" --from "$input" "$g/$mode")
		syscalls+="\`--fsync $mode\`: $per calls per message; the most frequent:"$'\n\n```\n'"% time     seconds  usecs/call     calls    errors syscall"$'\n'"$(top)"$'\n```\n\n'
	done
	mkdir "$g/tar"
	per=$(sc tar -C "$g/tar" -xf "$work/m$full.tar")
	syscalls+="\`tar x\` of the same Maildir: $per calls per file."$'\n'
	clean "$g"
fi

sample "at the end" 5 1.01
end_sample=$(cat "$work/sample")

# The report.
mnt=$(df --output=target "$work" | tail -1)
fstype=$(awk -v m="$mnt" '$2 == m { t = $3; o = $4 } END { print t }' /proc/mounts)
if awk -v m="$mnt" '$2 == m { o = $4 } END { exit !("," o "," ~ /,discard,/) }' /proc/mounts; then
	discard="The file system ($fstype) is mounted with online discard: the discards of a big delete are
  paid by the next sync, whoever calls it."
else
	discard="The file system ($fstype) is mounted without online discard; a big delete still leaves
  the journal and the allocator work that the next sync pays."
fi
if [ "$clean_at_end" = 1 ]; then
	cleaning="Nothing was removed before the end (\`--clean-at-end\`)."
else
	cleaning="Trees are removed between groups only."
fi
# label GROUP: the group's name under its bars.
label() {
	case $1 in
	convert) echo 'convert\ndurable default' ;;
	batch) echo 'convert\n--fsync batch' ;;
	none) echo 'convert\n--fsync none' ;;
	many) echo "mbox\\n$many_users x $many_msgs" ;;
	big) echo "mbox\\n$big_users x $big_msgs" ;;
	delta) echo 'mbox\nsecond pass' ;;
	*) echo "$1" ;;
	esac
}
table() { awk -F'\t' 'NR == 1 { h = "|"; s = "|"; for (i = 1; i <= NF; i++) { h = h " " $i " |"; s = s "---|" } print h; print s; next } { l = "|"; for (i = 1; i <= NF; i++) l = l " " $i " |"; print l }' "$1"; }
goal() {
	case $1 in
	convert) echo "at most 1.2" ;;
	none | many | big) echo "at most 1.3" ;;
	rollback) echo "at most 1.5" ;;
	dsync) echo "at least 20" ;;
	*) echo "" ;;
	esac
}
{
	printf 'work\tseconds\tagainst\tits seconds\tcalibration s\tratio (median)\tratios\tgoal\tpeak RSS MiB\tothers, cores\n'
	while IFS=$'\t' read -r grp tl fl tm fm cal rm rmin rmax rss others; do
		printf '%s\t%s\t%s\t%s\t%s\t**%s×**\t%s–%s\t%s\t%s\t%s\n' "$tl" "$tm" "$fl" "$fm" "$cal" "$rm" "$rmin" "$rmax" "$(goal "$grp")" "$rss" "$others"
	done <"$results"
} >"$work/results.md.tsv"
{
	printf 'work\trepetition\torder\tseconds\tagainst, seconds\tratio\n'
	cat "$reps_tsv"
} >"$work/reps.md.tsv"

echo
column -t -s $'\t' "$work/results.md.tsv" | sed 's/\*\*//g'
echo
if [ -s "$work/unavailable" ]; then
	sed 's/\t/: /' "$work/unavailable"
	echo
fi
peak=$(sort -g "$work/mmrss" 2>/dev/null | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')
echo "maildirmig's peak RSS, the largest of all its runs: ${peak:-?} MiB (goal: at most 32 MiB)"
echo "fresh probe (tar x && sync of $full files): $fresh s; settles (seconds waited, probe s): $(tr '\n' ';' <"$settles")"
if [ "$busy" = 1 ]; then
	echo
	echo "bench: WARNING: the machine was busy while this ran (--busy-ok): these figures are not fit to publish"
fi

if [ "$busy" = 1 ] && [ "$out_given" = 0 ]; then
	note "the machine was busy: the report is not written into the repository; give --out DIR to keep it"
	exit 0
fi
mkdir -p "$out/bench"
if [ -s "$results" ]; then
	awk -F'\t' '$1 != "delta" && $1 != "mb2md" && $1 != "dsync" { print }' "$results" | cut -f1 | while read -r grp; do
		lbl=$(label "$grp")
		# The label goes through printf: awk -v would turn its \n into a newline.
		for side in tool floor; do
			awk -v k="$grp/$side/" 'index($1, k) == 1 && $1 !~ /\/(w|c[12])$/ { print $2 }' "$times" |
				while read -r v; do printf '%s\t%s\t%s\n' "$lbl" "$([ $side = tool ] && echo maildirmig || echo floor)" "$v"; done
		done
	done | "$work/plot" -o "$out/bench/times.png" -title "seconds: maildirmig and its floor (bars: medians)" -y seconds
	awk -F'\t' '$1 != "mb2md" && $1 != "dsync" { print $1 }' "$results" | while read -r grp; do
		awk -F'\t' -v g="$grp" '$1 == g { print $6 }' "$reps_tsv" | while read -r v; do printf '%s\tratio\t%s\n' "$(label "$grp")" "$v"; done
		gl=$(goal "$grp" | awk '{ print $3 }')
		[ -z "$gl" ] || printf '%s\tgoal\t%s\n' "$(label "$grp")" "$gl"
	done | "$work/plot" -o "$out/bench/ratios.png" -title "maildirmig / floor, per repetition (bars: medians)" -y "x floor" -ref 1 -labels '%.2f×'
fi

{
	cat <<HEAD
# Benchmarks

Made by \`bench/bench.sh$([ "$quick" = 1 ] && echo " --quick") --reps $reps\` on $(date -u +%Y-%m-%d) (maildirmig $version).
HEAD
	if [ "$busy" = 1 ]; then
		cat <<'BUSY'

**The machine was busy while these figures were taken (`--busy-ok`): they are not fit to
publish.** See "What else was running" below.
BUSY
	fi
	cat <<HEAD

How they were measured:

- Each piece of work is a group of runs: a warm-up run of each tool (not counted), two
  calibration runs of the floor into fresh directories (the lesser is the calibration), then
  $reps repetitions of the tool and its floor back to back, the tool first in odd repetitions
  and the floor first in even ones. An untimed \`sync\` precedes every run.
- Nothing is deleted before a timed run: every run writes into a directory of its own that did
  not exist before. $cleaning Before each group the script syncs and waits until a probe
  (\`tar x && sync\` of the $full-file Maildir into a fresh directory) is back within 25% (and
  20 ms) of its fresh time: the least of three at the start, before anything was deleted, or of any
  faster probe since ($fresh s in the end).
  $discard
- The ratio is the median of the per-repetition ratios (the tool's time over its floor's in
  the same repetition); the seconds are medians of the repetitions. A floor more than twice its
  calibration (and 20 ms) would have stopped the script with nothing reported.
- The floors: for one mbox, \`tar x\` (with \`&& sync\` for the durable modes) of a tar of the
  Maildir that maildirmig makes from it; for many users, each user's \`tar x\` of their Maildir
  as that user, $jobs users at a time as maildirmig's default \`-j\` on $ncpu CPUs, then one
  \`sync\`; for rollback, \`cat\` of the Maildir's files into one file, then \`sync\`. For the
  delta pass, the first pass stands where the floor is (its order cannot be swapped). mb2md
  and \`doveadm backup\` are compared with maildirmig, not with a floor.
- The page cache is not dropped: every tool reads a warm input. Peak RSS is the largest of
  the tool's runs (\`/usr/bin/time\`; for \`maildirmig mbox\`, of root and its workers).
- "others, cores" is the CPU time that processes other than the measured ones used while the
  group ran, over its time (kernel threads left out): above $max_others the script refuses
  to report.

## The machine

- $ncpu CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
- $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory; kernel $(uname -r)
- file system: $(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
- $(go version | cut -d' ' -f3); $(tar --version | head -1); $(dpkg-query -W -f '${Package} ${Version}' mb2md 2>/dev/null || true); $(dpkg-query -W -f '${Package} ${Version}' dovecot-core 2>/dev/null || true)

The corpus: \`bench/corpus\`, seed 1: mostly 2-12 KB text messages, one in a hundred multipart
with a base64 attachment of 20-120 KB, one in four thousand of 1-3 MB. The single mbox:
$full messages, $mbox_mb MiB.

## Results

HEAD
	table "$work/results.md.tsv"
	echo
	echo "maildirmig's peak RSS, the largest of all its runs above: ${peak:-?} MiB (goal: at most 32 MiB)."
	if [ -s "$work/unavailable" ]; then
		echo
		sed 's/^\([^\t]*\)\t/- \1: /' "$work/unavailable"
	fi
	if [ -s "$work/mutations" ]; then
		echo
		echo "The delta pass's changes (\`bench/corpus -mutate -expunge 0.01 -reflag 0.05\`, seeded, so every"
		echo "repetition's): $(sort -u "$work/mutations" | sed 's/^total: //' | tr '\n' ' ')"
	fi
	cat <<MID

![seconds](bench/times.png)

![ratios](bench/ratios.png)

Every repetition:

MID
	table "$work/reps.md.tsv"
	cat <<MID

The probe before each group (seconds waited after a sync, then the probe's seconds; fresh: $fresh s):
$(awk '{ printf "%s s → %s s; ", $1, $2 }' "$settles")

## What else was running

At the start:

\`\`\`
$start_sample
\`\`\`

At the end:

\`\`\`
$end_sample
\`\`\`
MID
	if [ -n "$syscalls" ]; then
		cat <<TAIL

## System calls

\`strace -c -f\` of \`maildirmig convert\` on the $full-message mbox (everything the process did,
Go runtime included, divided by the messages).

$syscalls
TAIL
	fi
} >"$out/BENCHMARKS.md"
note "wrote $out/BENCHMARKS.md"
