#!/bin/sh
# batch.sh measures `maildirmig mbox` over many users in a --root tree: wall time and messages
# per second with -j 1 and with the default -j. Run as root, users' files belong to their uids
# and every user is migrated by a worker running as that user, as in production.
#
#   bench/batch.sh [USERS [MB_PER_USER [MBOX FLAGS...]]]   (default 200 users x 5 MB)
#   e.g. bench/batch.sh 200 5 --fsync none
#
# It builds maildirmig, makes a scratch tree under ${TMPDIR:-/tmp}, and removes it at the end.
set -eu
users=${1:-200}
mb=${2:-5}
shift $(($# < 2 ? $# : 2))
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/maildirmig-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
bin=$work/maildirmig
(cd "$repo" && go build -o "$bin" ./cmd/maildirmig)

# One mbox of about $mb MB made of 4 KiB messages, copied for every user.
awk -v mb="$mb" 'BEGIN {
	body = ""
	for (i = 0; i < 60; i++) body = body sprintf("line %02d of a message body that is long enough to look like mail text.\n", i)
	n = int(mb * 1024 * 1024 / 4400)
	for (i = 0; i < n; i++) {
		printf "From sender%d@example.org Mon Jan  1 %02d:%02d:%02d 2024\n", i, (i / 3600) % 24, (i / 60) % 60, i % 60
		printf "From: Sender %d <sender%d@example.org>\nTo: user@example.org\nSubject: message %d\nMessage-ID: <%d@example.org>\nStatus: RO\n\n", i, i, i, i
		printf "%s\n", body
	}
}' > "$work/one.mbox"
msgs=$(grep -c '^From ' "$work/one.mbox")

setup() {
	rm -rf "$work/root"
	mkdir -p "$work/root/etc" "$work/root/var/mail" "$work/root/home"
	chmod -R 755 "$work/root"
	i=0
	: > "$work/root/etc/passwd"
	while [ "$i" -lt "$users" ]; do
		u=bench$i
		uid=$((50000 + i))
		echo "$u:x:$uid:$uid::/home/$u:/bin/sh" >> "$work/root/etc/passwd"
		mkdir -p "$work/root/home/$u"
		cp "$work/one.mbox" "$work/root/var/mail/$u"
		if [ "$(id -u)" = 0 ]; then chown "$uid:$uid" "$work/root/home/$u" "$work/root/var/mail/$u"; fi
		i=$((i + 1))
	done
	sync
}

measure() {
	label=$1
	shift
	setup
	start=$(date +%s.%N)
	"$bin" mbox --root "$work/root" -q --progress never "$@"
	end=$(date +%s.%N)
	echo "$label" "$start" "$end" "$users" "$msgs" | awk '{
		t = $3 - $2; m = $4 * $5
		printf "%-10s %d users x %d messages (%d MB each): %.2fs, %.0f messages/s\n", $1, $4, $5, '"$mb"', t, m / t
	}'
}

measure j1 -j 1 "$@"
measure default "$@"
