#!/bin/bash
# bench.sh measures maildirmig against every other way to move the same mail, on the same input
# and disk, in one run, and writes BENCHMARKS.md and its plots.
#
#   bench/bench.sh [--quick] [--reps N] [--out DIR]
#
# It builds maildirmig and a seeded corpus (bench/corpus): one mbox of 20,000 messages (about
# 111 MB; and two smaller ones cut from the same mix, for time against size), 1,000 users of
# about 100 KB each and 50 users of about 20 MB each. --quick divides every count by ten.
# Then, --reps times each (default 3), every tool back to back with its floor:
#
#   maildirmig convert (durable default,    against  tar x && sync   of the same Maildir
#     --fsync syncfs; and --fsync batch)
#   maildirmig convert --fsync none          against  tar x
#   mb2md -s MBOX -d DIR                     (Debian package mb2md)
#   doveadm backup (dsync), mbox → Maildir   (run as $BENCH_USER, default nobody: it refuses root)
#   maildirmig mbox -j 1, 2, 4, 8 as root,   against  each user's tar x as that user, as many
#     real users made with useradd             at a time, then one sync
#
# and prints medians, ratios and peak RSS (/usr/bin/time). It also counts the system calls per
# message of convert (strace -c -f). DIR/BENCHMARKS.md gets the tables, the machine, and the
# plots DIR/bench/size.png and DIR/bench/jobs.png (default DIR: the repository).
#
# Run as root, on an otherwise quiet machine if the absolute numbers matter: ratios measured
# side by side hold better than seconds on a shared one. The page cache is not dropped: every
# tool reads a warm input. Users are named mmbench-*, removed at the end with the scratch tree
# under ${TMPDIR:-/tmp}.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
quick=0 reps=3 out=$repo
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--reps) reps=$2; shift ;;
	--out) out=$2; shift ;;
	*) echo "bench: error: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
div=$((quick ? 10 : 1))
benchuser=${BENCH_USER:-nobody}

[ "$(id -u)" = 0 ] || { echo "bench: error: run as root (maildirmig mbox runs workers as each user)" >&2; exit 1; }
for tool in go awk tar setpriv useradd userdel strace mb2md doveadm; do
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
version=$(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown)
(cd "$repo" && go build -o "$bin" ./cmd/maildirmig && go build -o "$work/corpus" ./bench/corpus && go build -o "$work/plot" ./bench/plot)

# median reads numbers, one a line, and prints their median.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed KEY CMD...: runs CMD after a sync, appends "KEY seconds maxrss_kib" to $work/times.
timed() {
	local key=$1
	shift
	sync
	if ! /usr/bin/time -f '%e %M' -o "$work/t" "$@" >"$work/out" 2>"$work/err"; then
		echo "bench: error: $key failed:" >&2
		tail -5 "$work/err" >&2
		exit 1
	fi
	echo "$key $(tail -1 "$work/t")" >>"$work/times"
}
: >"$work/times"
med() { awk -v k="$1" '$1 == k { print $2 }' "$work/times" | median; }
rss() { awk -v k="$1" '$1 == k { print $3 }' "$work/times" | sort -g | tail -1 | awk '{ printf "%.1f", $1 / 1024 }'; }
# dirty DIR: appends to $work/dirty the kernel's Dirty+Writeback KiB right after a durable
# run, and the KiB that run wrote into DIR.
dirty() {
	echo "$(awk '/^(Dirty|Writeback):/ { k += $2 } END { print k }' /proc/meminfo) $(du -sk "$1" | cut -f1)" >>"$work/dirty"
}
: >"$work/dirty"
count() { find "$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l; }

echo "bench: building the corpus" >&2
full=$((20000 / div))
sizes=($((full / 16)) $((full / 4)) $full)
for n in "${sizes[@]}"; do "$work/corpus" -mbox "$work/m$n.mbox" -messages "$n"; done
input=$work/m$full.mbox

# One mbox: each size, each tool back to back with its floor, $reps times.
for n in "${sizes[@]}"; do
	in=$work/m$n.mbox
	rm -rf "$work/ref"
	"$bin" convert -q --fsync none --from "$in" "$work/ref"
	[ "$(count "$work/ref")" = "$n" ] || { echo "bench: error: convert made $(count "$work/ref") messages of $n" >&2; exit 1; }
	tar -C "$work/ref" -cf "$work/m$n.tar" .
	for r in $(seq "$reps"); do
		echo "bench: $n messages, round $r" >&2
		rm -rf "$work/d"; timed "convert/$n" "$bin" convert -q --from "$in" "$work/d"
		dirty "$work/d"
		rm -rf "$work/d"; timed "batch/$n" "$bin" convert -q --fsync batch --from "$in" "$work/d"
		dirty "$work/d"
		rm -rf "$work/d"; mkdir "$work/d"; timed "tarsync/$n" sh -c 'tar -C "$1" -xf "$2" && sync' - "$work/d" "$work/m$n.tar"
		rm -rf "$work/d"; timed "none/$n" "$bin" convert -q --fsync none --from "$in" "$work/d"
		rm -rf "$work/d"; mkdir "$work/d"; timed "tar/$n" tar -C "$work/d" -xf "$work/m$n.tar"
	done
done
rm -rf "$work/d" "$work/ref"

for r in $(seq "$reps"); do
	echo "bench: mb2md, round $r" >&2
	rm -rf "$work/d"; timed mb2md mb2md -s "$input" -d "$work/d"
done
[ "$(count "$work/d")" = "$full" ] || echo "bench: warning: mb2md made $(count "$work/d") messages of $full" >&2
rm -rf "$work/d"

# dsync reads the mbox as the user's INBOX and writes a Maildir; both belong to the user.
dv=$work/dsync
mkdir -p "$dv/home/mail"
cat >"$dv/dovecot.conf" <<CONF
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
ssl = no
mail_location = mbox:~/mail:INBOX=~/inbox
namespace inbox {
  inbox = yes
  separator = /
}
CONF
for r in $(seq "$reps"); do
	echo "bench: doveadm backup, round $r" >&2
	rm -rf "$dv/home/Maildir" "$dv/home/mail" "$dv/home/inbox" "$dv/home/.dovecot"*
	mkdir -p "$dv/home/mail"
	cp "$input" "$dv/home/inbox"
	chown -R "$benchuser" "$dv/home"
	timed dsync setpriv --reuid "$(id -u "$benchuser")" --regid "$(id -g "$benchuser")" --clear-groups \
		env HOME="$dv/home" USER="$benchuser" doveadm -c "$dv/dovecot.conf" backup maildir:~/Maildir
done
[ "$(count "$dv/home/Maildir")" = "$full" ] || echo "bench: warning: dsync made $(count "$dv/home/Maildir") messages of $full" >&2
rm -rf "$dv"

# Many users: real accounts, each migrated by maildirmig's worker running as that user.
jobs=(1 2 4 8)
# users TAG COUNT BYTES: makes the users, their mboxes and the tar of each one's Maildir.
users() {
	local tag=$1 n=$2 bytes=$3 u i
	mkdir -p "$work/$tag/src" "$work/$tag/home" "$work/$tag/spool" "$work/$tag/tar"
	chmod 755 "$work/$tag" "$work/$tag/home"
	"$work/corpus" -users "$work/$tag/src" -n "$n" -bytes "$bytes"
	: >"$work/$tag/passwd"
	for i in $(seq 0 $((n - 1))); do
		u=$(printf 'mmbench-%s%04d' "$tag" "$i")
		useradd -M -N -g nogroup -d "$work/$tag/home/$u" -s /usr/sbin/nologin "$u"
		made_users+=("$u")
		getent passwd "$u" >>"$work/$tag/passwd"
		mkdir -m 755 "$work/$tag/home/$u"
		chown "$u" "$work/$tag/home/$u"
		"$bin" convert -q --fsync none --from "$work/$tag/src/$(printf 'u%04d' "$i")" "$work/$tag/ref"
		tar -C "$work/$tag" -cf "$work/$tag/tar/$u.tar" --transform 's,^ref,Maildir,' ref
		rm -rf "$work/$tag/ref"
	done
}
# reset TAG: no Maildir, every spool back, no state.
reset() {
	local tag=$1 u i=0
	rm -rf "$work/$tag/home"/*/Maildir "$work/$tag/state" "$work/$tag/audit"
	while IFS=: read -r u _; do
		cp "$work/$tag/src/$(printf 'u%04d' "$i")" "$work/$tag/spool/$u"
		chown "$u" "$work/$tag/spool/$u"
		chmod 600 "$work/$tag/spool/$u"
		i=$((i + 1))
	done <"$work/$tag/passwd"
}
floor() {
	local tag=$1 j=$2
	cut -d: -f1,3,4 "$work/$tag/passwd" | tr : ' ' | xargs -P "$j" -n 3 sh -c \
		'setpriv --reuid "$2" --regid "$3" --clear-groups tar -C "$0/home/$1" -xf "$0/tar/$1.tar"' "$work/$tag"
	sync
}
export -f floor
export work
manyusers() {
	local tag=$1 n=$2 bytes=$3 j r
	echo "bench: making $n users of $bytes bytes ($tag)" >&2
	users "$tag" "$n" "$bytes"
	for j in "${jobs[@]}"; do
		for r in $(seq "$reps"); do
			echo "bench: $tag, -j $j, round $r" >&2
			reset "$tag"
			timed "mbox/$tag/$j" "$bin" mbox -q --progress never -j "$j" --no-root --no-folders \
				--passwd "$work/$tag/passwd" --spool-dir "$work/$tag/spool" \
				--state-dir "$work/$tag/state" --audit-log "$work/$tag/audit" --min-uid 1
			[ "$(count "$work/$tag/home")" -gt 0 ] || { echo "bench: error: mbox wrote nothing" >&2; exit 1; }
			rm -rf "$work/$tag/home"/*/Maildir
			timed "floor/$tag/$j" bash -c 'floor "$1" "$2"' - "$tag" "$j"
		done
	done
	for u in $(cut -d: -f1 "$work/$tag/passwd"); do userdel "$u"; done
	made_users=()
	rm -rf "$work/$tag"
}
manyusers a $((1000 / div)) 100000
manyusers b $((50 / div)) $((20000000 / div))

# System calls per message, on the middle mbox.
n=${sizes[1]}
sc() {
	rm -rf "$work/d"
	strace -c -f -o "$work/strace" "$@" >/dev/null 2>&1
	awk -v n="$n" '/^100.00/ || / total$/ { printf "%.1f", $(NF - 2) / n }' "$work/strace"
}
calls_batch=$(sc "$bin" convert -q --from "$work/m$n.mbox" "$work/d")
top_batch=$(awk 'NR > 2 && !/^-/ && !/total/ { print }' "$work/strace" | sort -k4 -g -r | head -12)
calls_fbatch=$(sc "$bin" convert -q --fsync batch --from "$work/m$n.mbox" "$work/d")
top_fbatch=$(awk 'NR > 2 && !/^-/ && !/total/ { print }' "$work/strace" | sort -k4 -g -r | head -12)
calls_none=$(sc "$bin" convert -q --fsync none --from "$work/m$n.mbox" "$work/d")
top_none=$(awk 'NR > 2 && !/^-/ && !/total/ { print }' "$work/strace" | sort -k4 -g -r | head -12)
mkdir -p "$work/d"
calls_tar=$(rm -rf "$work/d"; mkdir "$work/d"; strace -c -f -o "$work/strace" tar -C "$work/d" -xf "$work/m$n.tar"; awk -v n="$n" '/ total$/ { printf "%.1f", $(NF - 2) / n }' "$work/strace")
rm -rf "$work/d"
sn=$n

# Report.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.0f", b / 1048576 }'; }
mkdir -p "$out/bench"
{
	echo "tool	messages	MB	median s	ratio	peak RSS MiB"
	for n in "${sizes[@]}"; do
		c=$(med "convert/$n") ts=$(med "tarsync/$n") no=$(med "none/$n") t=$(med "tar/$n")
		b=$(med "batch/$n")
		echo "maildirmig convert (--fsync syncfs)	$n	$(mb "$work/m$n.mbox")	$c	$(ratio "$c" "$ts")× tar x && sync	$(rss "convert/$n")"
		echo "maildirmig convert --fsync batch	$n		$b	$(ratio "$b" "$ts")× tar x && sync	$(rss "batch/$n")"
		echo "tar x && sync	$n		$ts		$(rss "tarsync/$n")"
		echo "maildirmig convert --fsync none	$n		$no	$(ratio "$no" "$t")× tar x	$(rss "none/$n")"
		echo "tar x	$n		$t		$(rss "tar/$n")"
	done
	echo "mb2md	$full		$(med mb2md)	$(ratio "$(med mb2md)" "$(med "convert/$full")")× maildirmig	$(rss mb2md)"
	echo "doveadm backup (dsync)	$full		$(med dsync)	$(ratio "$(med dsync)" "$(med "convert/$full")")× maildirmig	$(rss dsync)"
} >"$work/single.tsv"
{
	echo "users	-j	maildirmig mbox s	floor s	ratio	peak RSS MiB"
	for tag in a b; do
		case $tag in a) desc="$((1000 / div)) × 100 KB" ;; b) desc="$((50 / div)) × $((20 / div)) MB" ;; esac
		for j in "${jobs[@]}"; do
			m=$(med "mbox/$tag/$j") f=$(med "floor/$tag/$j")
			echo "$desc	$j	$m	$f	$(ratio "$m" "$f")×	$(rss "mbox/$tag/$j")"
		done
	done
} >"$work/users.tsv"
table() { awk -F'\t' 'NR == 1 { h = "|"; s = "|"; for (i = 1; i <= NF; i++) { h = h " " $i " |"; s = s "---|" } print h; print s; next } { l = "|"; for (i = 1; i <= NF; i++) l = l " " $i " |"; print l }' "$1"; }
column -t -s '	' "$work/single.tsv"
echo
column -t -s '	' "$work/users.tsv"

for n in "${sizes[@]}"; do
	m=$(mb "$work/m$n.mbox")
	printf 'maildirmig convert\t%s\t%s\n' "$m" "$(med "convert/$n")"
	printf 'maildirmig convert --fsync batch\t%s\t%s\n' "$m" "$(med "batch/$n")"
	printf 'tar x and sync\t%s\t%s\n' "$m" "$(med "tarsync/$n")"
	printf 'maildirmig convert --fsync none\t%s\t%s\n' "$m" "$(med "none/$n")"
	printf 'tar x\t%s\t%s\n' "$m" "$(med "tar/$n")"
done | "$work/plot" -o "$out/bench/size.png" -logx -title "one mbox: time against size" -x "mbox size, mb" -y "seconds"
for tag in a b; do
	case $tag in a) desc="$((1000 / div)) users x 100 kb" ;; b) desc="$((50 / div)) users x $((20 / div)) mb" ;; esac
	for j in "${jobs[@]}"; do
		printf 'maildirmig mbox, %s\t%s\t%s\n' "$desc" "$j" "$(med "mbox/$tag/$j")"
		printf 'floor, %s\t%s\t%s\n' "$desc" "$j" "$(med "floor/$tag/$j")"
	done
done | "$work/plot" -o "$out/bench/jobs.png" -logx -xticks 1,2,4,8 -title "maildirmig mbox as root: time against -j" -x "-j" -y "seconds"

{
	cat <<HEAD
# Benchmarks

Made by \`bench/bench.sh$([ "$quick" = 1 ] && echo " --quick") --reps $reps\` on $(date -u +%Y-%m-%d) (maildirmig $version).
Every figure is the median of $reps runs; each tool ran back to back with its floor, on the same
input and disk, with a \`sync\` before each run and a warm page cache for the input. Peak RSS is the
largest of the runs (\`/usr/bin/time\`; for \`maildirmig mbox\` the largest of root and its workers).

The machine was shared with other work while this ran (compilers, tests): seconds are noisy,
and the ratios, measured side by side, are the figures to compare. \`sync\` in the floors flushes
the whole machine's dirty data, other processes' included.

## The machine

- $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
- $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) memory; kernel $(uname -r)
- file system: $(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
- $(go version | cut -d' ' -f3); $(tar --version | head -1); $(dpkg-query -W -f '${Package} ${Version}' mb2md 2>/dev/null); $(dpkg-query -W -f '${Package} ${Version}' dovecot-core 2>/dev/null)

## One mbox (\`maildirmig convert\`)

The corpus: \`bench/corpus\`, seed 1: mostly 2-12 KB text messages, one in a hundred multipart
with a base64 attachment of 20-120 KB, one in four thousand of 1-3 MB.

HEAD
	table "$work/single.tsv"
	cat <<MID

After each durable run the kernel still held at most $(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$work/dirty") KiB dirty or under
writeback (Dirty+Writeback in /proc/meminfo, the whole machine's), against $(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$work/dirty") KiB written.

![time against mbox size](bench/size.png)

## Many users (\`maildirmig mbox\` as root)

Real users (useradd), each migrated by maildirmig's worker running as that user from a spool
file into the home. The floor: each user's \`tar x\` of their Maildir as that user, \`-j\` at a
time, then one \`sync\`.

MID
	table "$work/users.tsv"
	cat <<TAIL

![time against -j](bench/jobs.png)

## System calls

\`strace -c -f\` of \`maildirmig convert\` on the $sn-message mbox, per message: $calls_batch
(durable default, \`--fsync syncfs\`), $calls_fbatch (\`--fsync batch\`), $calls_none (\`--fsync none\`);
\`tar x\` of the same Maildir: $calls_tar. The counts include the Go runtime's own calls (futex,
nanosleep: its threads waking each other while syscalls block).

Durable default (\`--fsync syncfs\`), the most frequent calls:

\`\`\`
% time     seconds  usecs/call     calls    errors syscall
$top_batch
\`\`\`

\`--fsync batch\`:

\`\`\`
% time     seconds  usecs/call     calls    errors syscall
$top_fbatch
\`\`\`

\`--fsync none\`:

\`\`\`
% time     seconds  usecs/call     calls    errors syscall
$top_none
\`\`\`
TAIL
} >"$out/BENCHMARKS.md"
echo "bench: wrote $out/BENCHMARKS.md" >&2
