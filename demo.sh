#!/bin/sh
# demo.sh builds maildirmig and migrates the small demo server in testdata/demo (users in
# etc/passwd, spools in var/mail, homes in home/), copied to a scratch directory so that the
# repository stays as it is. It needs no root; run as root, it hands the demo users their files
# first, and every Maildir is then written by a worker running as its user. The scratch
# directory is removed at the end, whatever happened; demo.sh --keep leaves it to look around
# in (as root its files belong to uids 1001 to 1003: remove it as root).
set -eu
keep=
case "${1-}" in
--keep) keep=1 ;;
"") ;;
*)
	echo "usage: demo.sh [--keep]" >&2
	exit 2
	;;
esac
cd "$(dirname "$0")"
demo=$(mktemp -d "${TMPDIR:-/tmp}/maildirmig-demo.XXXXXX")
finish() {
	set +x
	if [ -n "$keep" ]; then
		echo "demo.sh: the demo server is kept in $demo; remove it with: rm -rf $demo" >&2
	else
		rm -rf "$demo"
		echo "demo.sh: removed the demo server in $demo (demo.sh --keep leaves it)" >&2
	fi
}
trap finish EXIT
# A signal ends the script through exit, so that the EXIT trap runs in every shell.
trap 'exit 130' INT TERM HUP
echo "demo.sh: the demo server is in $demo" >&2
cp -R testdata/demo/. "$demo"
find "$demo" -name .keep -delete
go build -o "$demo/maildirmig" ./cmd/maildirmig
chmod 600 "$demo"/var/mail/*
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$demo"
	chown -R 1001:1001 "$demo/home/alice" "$demo/var/mail/alice"
	chown -R 1002:100 "$demo/home/bob" "$demo/var/mail/bob"
	chown -R 1003:1003 "$demo/home/carol"
fi
cd "$demo"
set -x
./maildirmig users --root "$demo"
./maildirmig mbox --root "$demo" --audit-messages
./maildirmig verify --root "$demo"
./maildirmig skel --root "$demo" --existing
./maildirmig check --root "$demo"
find "$demo/home" -path '*/Maildir/*' -type f | sort
