#!/bin/sh
# demo.sh builds maildirmig and migrates the small demo server in testdata/demo (users in
# etc/passwd, spools in var/mail, homes in home/), copied to a scratch directory so that the
# repository stays as it is. It needs no root; run as root, it hands the demo users their files
# first, and every Maildir is then written by a worker running as its user.
set -eu
cd "$(dirname "$0")"
go build -o maildirmig ./cmd/maildirmig
demo=$(mktemp -d "${TMPDIR:-/tmp}/maildirmig-demo.XXXXXX")
cp -R testdata/demo/. "$demo"
find "$demo" -name .keep -delete
chmod 600 "$demo"/var/mail/*
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$demo"
	chown -R 1001:1001 "$demo/home/alice" "$demo/var/mail/alice"
	chown -R 1002:100 "$demo/home/bob" "$demo/var/mail/bob"
	chown -R 1003:1003 "$demo/home/carol"
fi
set -x
./maildirmig users --root "$demo"
./maildirmig mbox --root "$demo" --audit-messages
./maildirmig verify --root "$demo"
./maildirmig skel --root "$demo" --existing
./maildirmig check --root "$demo"
find "$demo/home" -path '*/Maildir/*' -type f | sort
