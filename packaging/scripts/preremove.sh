#!/bin/sh
# Stop the nightly check before its binary goes. The state and the audit log are kept: they
# are the record of the migration.
set -e
if [ -d /run/systemd/system ]; then
	systemctl disable --now maildirmig-check.timer >/dev/null 2>&1 || true
fi
