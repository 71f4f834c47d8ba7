#!/usr/bin/env bash
# Checks the .rpm as the .deb is checked, for the Red Hat, Fedora and SUSE systems the old
# migration guides were written for: built at two versions, installed with rpm into a scratch
# root (rpm --root), its files and their modes, its configuration files, and what its scripts
# do on install, upgrade and removal. rpm runs the scripts inside the root: it gets a shell
# and a systemctl that records what it is asked, so that the host's systemd is never touched.
# Needs root (rpm chroots) and rpm (Debian's package: --force-debian tells it this is meant).
# Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for v in 1.0.0 1.0.1; do
	MAILDIRMIG_PACKAGERS=rpm packaging/build.sh "$v" >/dev/null
	mv dist/maildirmig-"$v"-1.*.rpm "$work/maildirmig-$v.rpm"
done
fail() {
	echo "check-rpm: $*" >&2
	exit 1
}

# scratch DIR [systemd]: an empty system for rpm, with a shell for the scripts and, with
# systemd, a running systemd as the scripts test for it (/run/systemd/system) and a systemctl
# that appends its arguments to /systemctl.log and keeps the timer's state in /timer.state.
scratch() {
	local root=$1
	mkdir -p "$root"/{bin,dev,etc,tmp,usr/bin,var/lib/rpm}
	cp /bin/dash "$root/bin/sh"
	for lib in $(ldd /bin/dash | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp "$lib" "$root$lib"
	done
	if [ "${2-}" = systemd ]; then
		mkdir -p "$root/run/systemd/system"
		cat >"$root/usr/bin/systemctl" <<'SH'
#!/bin/sh
echo "systemctl $*" >>/systemctl.log
case $1 in
enable) echo enabled >/timer.state ;;
disable) echo disabled >/timer.state ;;
esac
SH
		chmod 755 "$root/usr/bin/systemctl"
	fi
	rpm --root "$root" --dbpath /var/lib/rpm --initdb
}
rpmin() {
	local root=$1
	shift
	rpm --root "$root" --dbpath /var/lib/rpm "$@"
}

root=$work/root
scratch "$root" systemd

# Install: the files, their modes, the configuration files; the check is not enabled.
rpmin "$root" --nodeps --force-debian -i "$work/maildirmig-1.0.0.rpm"
want='0644 /etc/cron.d/maildirmig
0644 /etc/logrotate.d/maildirmig
0711 /usr/bin/maildirmig
0644 /usr/lib/systemd/system/maildirmig-check.service
0644 /usr/lib/systemd/system/maildirmig-check.timer
0644 /usr/share/bash-completion/completions/maildirmig
0644 /usr/share/doc/maildirmig/README.md
0644 /usr/share/fish/vendor_completions.d/maildirmig.fish
0644 /usr/share/man/man8/maildirmig.8.gz
0644 /usr/share/zsh/site-functions/_maildirmig
0700 /var/lib/maildirmig
0700 /var/log/maildirmig'
got=$(rpmin "$root" -ql maildirmig | sort | while read -r f; do
	[ "$(stat -c %U:%G "$root$f")" = root:root ] || echo "not root's: $f"
	echo "$(stat -c %04a "$root$f") $f"
done)
[ "$got" = "$want" ] || fail "installed files and modes:
$got
want:
$want"
[ "$(rpmin "$root" -qc maildirmig)" = $'/etc/cron.d/maildirmig\n/etc/logrotate.d/maildirmig' ] || fail "configuration files: $(rpmin "$root" -qc maildirmig)"
cmp -s packaging/man/maildirmig.8 <(gzip -dc "$root/usr/share/man/man8/maildirmig.8.gz") || fail "the man page is not packaging/man/maildirmig.8"
"$root/usr/bin/maildirmig" --version | grep -q '1\.0\.0' || fail "maildirmig --version: $("$root/usr/bin/maildirmig" --version)"
[ "$(cat "$root/systemctl.log")" = "systemctl daemon-reload" ] || fail "systemctl on install: $(cat "$root/systemctl.log")"
[ ! -e "$root/timer.state" ] || fail "the install enabled the nightly check before the switch"

# After the switch the administrator enables the check, and the cron line to mail its report.
chroot "$root" /usr/bin/systemctl enable --now maildirmig-check.timer
sed -i 's/^# *\(17 3 \* \* \*\)/\1/' "$root/etc/cron.d/maildirmig"
cp "$root/etc/cron.d/maildirmig" "$work/cron.edited"
: >"$root/systemctl.log"

# Upgrade: the new version, the administrator's settings and the enabled check kept.
rpmin "$root" --nodeps --force-debian -U "$work/maildirmig-1.0.1.rpm"
[ "$(rpmin "$root" -q maildirmig)" = maildirmig-1.0.1-1.x86_64 ] || [ "$(rpmin "$root" -q maildirmig)" = "maildirmig-1.0.1-1.$(uname -m)" ] || fail "after the upgrade: $(rpmin "$root" -q maildirmig)"
"$root/usr/bin/maildirmig" --version | grep -q '1\.0\.1' || fail "maildirmig --version after the upgrade: $("$root/usr/bin/maildirmig" --version)"
cmp -s "$work/cron.edited" "$root/etc/cron.d/maildirmig" || fail "the upgrade replaced the edited /etc/cron.d/maildirmig"
grep -q 'daemon-reload' "$root/systemctl.log" || fail "no daemon-reload on upgrade: $(cat "$root/systemctl.log")"
[ "$(cat "$root/timer.state")" = enabled ] || fail "the upgrade disabled the nightly check (systemctl calls: $(tr '\n' ';' <"$root/systemctl.log"))"

# Removal: the check stopped, the program gone, the migration's record (state, audit log) kept.
echo '{}' >"$root/var/lib/maildirmig/alice.json"
echo '{"event":"run-end"}' >"$root/var/log/maildirmig/audit.jsonl"
: >"$root/systemctl.log"
rpmin "$root" -e maildirmig
[ ! -e "$root/usr/bin/maildirmig" ] || fail "/usr/bin/maildirmig is left after removal"
[ "$(cat "$root/timer.state")" = disabled ] || fail "the removal left the nightly check enabled"
grep -q 'daemon-reload' "$root/systemctl.log" || fail "no daemon-reload on removal: $(cat "$root/systemctl.log")"
[ -s "$root/var/lib/maildirmig/alice.json" ] && [ -s "$root/var/log/maildirmig/audit.jsonl" ] || fail "the removal took the state or the audit log"
[ -e "$root/etc/cron.d/maildirmig.rpmsave" ] || fail "the edited /etc/cron.d/maildirmig was not saved as .rpmsave"

# Without systemd (a container, SysV init) the scripts leave systemctl alone.
bare=$work/bare
scratch "$bare"
rpmin "$bare" --nodeps --force-debian -i "$work/maildirmig-1.0.0.rpm"
rpmin "$bare" --nodeps --force-debian -U "$work/maildirmig-1.0.1.rpm"
rpmin "$bare" -e maildirmig
[ ! -e "$bare/usr/bin/maildirmig" ] || fail "/usr/bin/maildirmig is left after removal without systemd"

echo "check-rpm: install, upgrade and removal checked in a scratch root"
