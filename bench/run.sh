#!/bin/bash
# run.sh times one mbox → Maildir conversion with every tool an administrator could use, on
# the same input, in one run:
#
#   maildirmig convert (default --fsync batch, and --fsync none)
#   mb2md -s MBOX -d DEST                      (Debian package mb2md)
#   doveadm backup (dsync) from mbox to maildir (Debian package dovecot-core; run as a
#                                               non-root user, since dsync refuses root)
#   tar -x of an uncompressed archive of the Maildir maildirmig made: the floor, the cost of
#   creating that many files with those bytes and nothing else
#
# and prints a table: tool, seconds, messages/s, MB/s of mbox input, messages produced.
#
#   bench/run.sh [MBOX]      (default: build about $BENCH_MB MB, default 200, from
#                             ../shared/corpora/notmuch-corpora plus $BENCH_SMALL small
#                             messages, default 3000)
#
# Needs: bash, go, awk, GNU tar, /usr/bin/time (package time), setpriv (util-linux), mb2md,
# doveadm. Installs nothing. Run as root (doveadm is run as $BENCH_USER, default nobody).
# The page cache is not dropped between runs: every tool reads a warm input.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
mb=${BENCH_MB:-200}
small=${BENCH_SMALL:-3000}
benchuser=${BENCH_USER:-nobody}
work=$(mktemp -d "${TMPDIR:-/tmp}/maildirmig-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

for tool in go awk tar /usr/bin/time setpriv mb2md doveadm; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

bin=$work/maildirmig
(cd "$repo" && go build -o "$bin" ./cmd/maildirmig)

input=${1:-}
if [ -z "$input" ]; then
	corpus=$repo/../shared/corpora/notmuch-corpora
	[ -d "$corpus" ] || { echo "run.sh: $corpus absent; pass an mbox" >&2; exit 1; }
	# One round: every corpus message behind a From_ line, its body From lines quoted
	# (mboxrd) so that every tool finds the same messages, and a Message-ID of our own first
	# so that no two copies look alike to dsync's de-duplication.
	round=$work/round
	find "$corpus" -type f ! -name README | sort | while read -r f; do
		printf 'From bench@example.org Mon Jan  1 10:00:00 2024\nMessage-ID: <@@SEQ@@@bench.example.org>\n'
		sed -e 's/^\(>*From \)/>\1/' -e '$a\' "$f"
		printf '\n'
	done >"$round"
	input=$work/input.mbox
	awk -v mb="$mb" -v small="$small" '
		{ lines[NR] = $0 }
		END {
			target = mb * 1024 * 1024; seq = 0; size = 0
			while (size < target) {
				for (i = 1; i <= NR; i++) {
					l = lines[i]
					if (l ~ /@@SEQ@@/) { seq++; sub(/@@SEQ@@/, seq, l) }
					print l
					size += length(l) + 1
				}
			}
			for (i = 0; i < small; i++) {
				seq++
				printf "From small@example.org Tue Jan  2 %02d:%02d:%02d 2024\n", (i / 3600) % 24, (i / 60) % 60, i % 60
				printf "From: small%d@example.org\nTo: user@example.org\nSubject: small %d\nMessage-ID: <%d@bench.example.org>\nStatus: RO\n\nshort body %d\n\n", i, i, seq, i
			}
		}' "$round" >"$input"
fi
bytes=$(stat -c %s "$input")
expect=$(grep -c '^From ' "$input" || true)
echo "input: $input, $((bytes / 1024 / 1024)) MB, $expect From_ lines"

# count DIR: message files in every cur/ and new/ below DIR (not index or uidlist files).
count() {
	find "$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l
}

results=()
# timeit NAME DEST CMD...: runs CMD, records wall seconds and the messages found in DEST.
timeit() {
	local name=$1 dest=$2
	shift 2
	sync
	if ! /usr/bin/time -f %e -o "$work/time" "$@" >"$work/out" 2>"$work/err"; then
		echo "run.sh: $name failed:" >&2
		tail -5 "$work/err" >&2
		results+=("$name|fail|-|-|-")
		return
	fi
	local secs n
	secs=$(tail -1 "$work/time")
	n=$(count "$dest")
	results+=("$name|$secs|$n")
}

timeit "maildirmig --fsync batch" "$work/mm-batch" "$bin" convert -q --from "$input" "$work/mm-batch"
timeit "maildirmig --fsync none" "$work/mm-none" "$bin" convert -q --fsync none --from "$input" "$work/mm-none"
timeit "mb2md" "$work/mb2md" mb2md -s "$input" -d "$work/mb2md"

# dsync reads the mbox as the user's INBOX and writes a Maildir; both belong to the user.
dv=$work/dsync
mkdir -p "$dv/home/mail"
cp "$input" "$dv/home/inbox"
cat >"$dv/dovecot.conf" <<EOF
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
ssl = no
mail_location = mbox:~/mail:INBOX=~/inbox
namespace inbox {
  inbox = yes
  separator = /
}
EOF
chown -R "$benchuser" "$dv/home"
uid=$(id -u "$benchuser")
gid=$(id -g "$benchuser")
timeit "doveadm backup (dsync)" "$dv/home/Maildir" \
	setpriv --reuid "$uid" --regid "$gid" --clear-groups \
	env HOME="$dv/home" USER="$benchuser" \
	doveadm -c "$dv/dovecot.conf" backup maildir:~/Maildir

tar -C "$work/mm-none" -cf "$work/maildir.tar" .
mkdir "$work/tar"
timeit "tar -x (floor)" "$work/tar" tar -C "$work/tar" -xf "$work/maildir.tar"

printf '\n%-26s %9s %11s %9s %9s\n' tool seconds messages/s MB/s messages
for r in "${results[@]}"; do
	IFS='|' read -r name secs n <<<"$r"
	if [ "$secs" = fail ]; then
		printf '%-26s %9s\n' "$name" failed
		continue
	fi
	awk -v name="$name" -v s="$secs" -v n="$n" -v b="$bytes" 'BEGIN {
		if (s <= 0) s = 0.01
		printf "%-26s %9.2f %11.0f %9.1f %9d\n", name, s, n / s, b / 1048576 / s, n
	}'
done
