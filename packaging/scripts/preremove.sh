#!/bin/sh
# Stop the nightly check before its binary goes, when the package is removed: dpkg's prerm
# "remove", RPM's %preun with $1=0. An upgrade runs the old package's script too (dpkg's prerm
# "upgrade", "failed-upgrade" or "deconfigure", RPM's %preun with $1=1): the timer is then
# left as the administrator set it. The state and the audit log are kept: they are the record
# of the migration.
set -e
case "${1:-}" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now maildirmig-check.timer >/dev/null 2>&1 || true
fi
