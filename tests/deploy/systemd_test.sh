#!/usr/bin/env bash
# cmdgate under a real systemd: the .deb built as README says, installed in a
# Debian 12 root booted with systemd-nspawn (systemd 252 as PID 1, sharing the
# host's network), enabled with the AWS secret handed over by LoadCredential=
# in a drop-in. A mosquitto and tests/fake_aws.py run on the host's
# 127.0.0.1. Checks, each a separate assertion:
#   a device request through the unit is accepted; it runs as a dynamic user
#   with its StateDirectory; systemctl reload keeps MainPID and applies a
#   changed route; SIGKILL -> systemd restarts it and it accepts again;
#   SIGSTOP -> the watchdog restarts it; systemctl stop -> the retained status
#   says offline.
# The root is made once by debootstrap and cached under build/deploy-cache
# (--volatile=overlay: a run never changes it). Ends with "N passed, N failed".
set -u
# booting a container and running podman need root: as scripts/deps.sh does, use sudo
[ "$(id -u)" -eq 0 ] || exec sudo -E bash "$0" "$@"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/deploy/lib.sh
scripts/deps.sh --deploy || { echo "0 passed, 1 failed"; exit 1; }

# The shipped unit has WatchdogSec=30; the test's drop-in shortens it so that
# a stopped process is noticed within seconds (the mechanism is the same).
WATCHDOG_SEC=4
CLIENT_ID=cmdgate-unit
work=$(mktemp -d /tmp/cmdgate-systemd.XXXXXX)
nspawn_pid=""
teardown() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" # nspawn powers the container off
		for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$nspawn_pid" 2>/dev/null
		wait "$nspawn_pid" 2>/dev/null
	fi
	stop_broker_and_aws
	rm -rf "$work"
}
trap teardown EXIT
trap 'exit 130' INT TERM
t0=$SECONDS

# --- the package, as README's "A systemd service on a LAN gateway" builds it
log "building the .deb"
pkgdir=build/deploy-pkg
rm -f "$pkgdir"/cmdgate_*.deb
(cmake -S . -B "$pkgdir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
	-DBUILD_BENCH=OFF >/dev/null && cmake --build "$pkgdir" -j2 >/dev/null && cd "$pkgdir" && cpack >/dev/null)
deb=$(ls "$pkgdir"/cmdgate_*.deb 2>/dev/null | head -n 1)
check "the .deb is built" test -f "$deb"
[ -f "$deb" ] || { summary; exit 1; }
mkdir -p "$work/pkg"
cp "$deb" "$work/pkg/"

# --- the root: systemd plus exactly what the package says it depends on
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/^ *//; s/[ (|].*//' | grep -v '^$' | sort | paste -sd,)
include="systemd,systemd-sysv,dbus,ca-certificates,procps,$deps"
name=bookworm-systemd-$(echo "$include" | md5sum | cut -c1-8)
rootdir=$(debian_root "$name" "$include")
check "Debian 12 root with systemd ($name)" test -x "${rootdir:-/nonexistent}/lib/systemd/systemd"
[ -n "$rootdir" ] || { summary; exit 1; }
log "root ready after $((SECONDS - t0)) s"

start_broker_and_aws || { echo "0 passed, 1 failed"; exit 1; }

# --- boot it: the flags the issue found to work on this kind of machine
machine=cmdgate-$$
systemd-nspawn --quiet --keep-unit --register=no --volatile=overlay -M "$machine" \
	--bind-ro="$work/pkg":/mnt/pkg -b -D "$rootdir" < /dev/null > "$work/nspawn.log" 2>&1 &
nspawn_pid=$!
init_pid=""
for _ in $(seq 100); do
	for c in $(pgrep -P "$nspawn_pid" 2>/dev/null); do
		[ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && init_pid=$c
	done
	[ -n "$init_pid" ] && break
	sleep 0.1
done
in_ct() { nsenter -t "$init_pid" -a "$@"; }
booted() { # systemctl answers only once PID 1 has its socket: retry until then
	local s end=$((SECONDS + 60))
	[ -n "$init_pid" ] || return 1
	while [ $SECONDS -lt $end ]; do
		s=$(timeout 30 nsenter -t "$init_pid" -a systemctl is-system-running --wait 2>&1)
		[ "$s" = running ] || [ "$s" = degraded ] && return 0
		sleep 0.2
	done
	echo "$s"
	return 1
}
check "systemd boots as PID 1 in the container" booted
if [ -z "$init_pid" ]; then tail -n 20 "$work/nspawn.log"; summary; exit 1; fi
log "booted after $((SECONDS - t0)) s"

check "dpkg -i installs the package (its Depends satisfied)" in_ct dpkg -i /mnt/pkg/"$(basename "$deb")"

write_conf() { # write_conf EXTRA_ROUTE(0|1)
	local routes='{ request_topic = "commands/{thing}/{command}/start";
             reply_topic = "commands/{thing}/{command}/start/{status}"; }'
	[ "$1" = 1 ] && routes="$routes,
           { request_topic = \"line2/{thing}/{command}/go\";
             reply_topic = \"line2/{thing}/{command}/go/{status}\"; }"
	cat <<-CONF | in_ct tee /etc/cmdgate/cmdgate.conf >/dev/null
		mqtt: { uri = "tcp://127.0.0.1:$MQTT_PORT"; client_id = "$CLIENT_ID"; };
		aws:  { region = "eu-west-1"; account = "123456789012";
		        endpoint = "http://127.0.0.1:$AWS_PORT";
		        credentials: { source = "static"; access_key_id = "$AKID";
		                       secret_access_key_file = "/run/credentials/cmdgate.service/aws-secret"; }; };
		routes = ( $routes );
	CONF
}
write_conf 0
# the secret: root's, mode 0600; only systemd hands it to the dynamic user
printf '%s' "$SECRET" | in_ct sh -c 'umask 077; cat > /etc/cmdgate/aws-secret'
in_ct mkdir -p /etc/systemd/system/cmdgate.service.d
cat <<-UNIT | in_ct tee /etc/systemd/system/cmdgate.service.d/deploy-test.conf >/dev/null
	[Service]
	LoadCredential=aws-secret:/etc/cmdgate/aws-secret
	WatchdogSec=$WATCHDOG_SEC
UNIT
in_ct systemctl daemon-reload
check "systemctl enable --now cmdgate" in_ct systemctl enable --now cmdgate
journal() { in_ct journalctl -u cmdgate --no-pager 2>/dev/null; }
journal_has() { journal | grep -qi "$1"; }
main_pid() { in_ct systemctl show -p MainPID --value cmdgate; }
pid_is() { [ "$(main_pid)" = "$1" ]; }
result_is() { [ "$(in_ct systemctl show -p Result --value cmdgate)" = "$1" ]; }
active_with_new_pid() { # active_with_new_pid OLD_PID
	local p
	p=$(main_pid)
	[ "$(in_ct systemctl is-active cmdgate)" = active ] && [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$1" ]
}

check "a device request through the unit is accepted" \
	request_accepted commands/pump-7/open-valve/start r-1

# --- the sandbox as systemd made it
pid=$(main_pid)
uid=$(in_ct ps -o uid= -p "$pid" | tr -d ' ')
dynamic_user() {
	echo "MainPID $pid uid ${uid:-?}"
	[ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && ! in_ct grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd
}
state_directory() {
	in_ct ls -ld /var/lib/cmdgate /var/lib/private/cmdgate /var/lib/cmdgate/spool
	[ "$(in_ct readlink /var/lib/cmdgate)" = private/cmdgate ] &&
		[ "$(in_ct stat -c %u /var/lib/private/cmdgate)" = "$uid" ] &&
		[ "$(in_ct stat -c %u /var/lib/cmdgate/spool)" = "$uid" ]
}
check "runs as a dynamic user (uid in 61184-65519, not in /etc/passwd)" dynamic_user
check "StateDirectory /var/lib/cmdgate is the dynamic user's, with the spool in it" state_directory

# --- reload: same process, new configuration
write_conf 1
check "systemctl reload succeeds" in_ct systemctl reload cmdgate
check "reload keeps MainPID" pid_is "$pid"
check "reload applies the change (a request on the new route is accepted)" \
	request_accepted line2/pump-7/open-valve/go r-2
check "the unit logged the reload" journal_has "configuration reloaded"

# --- SIGKILL: Restart=on-failure
in_ct systemctl kill -s KILL cmdgate
check "SIGKILL: systemd restarts it (new MainPID)" wait_until 20 active_with_new_pid "$pid"
check "SIGKILL: the restarted unit accepts requests" \
	request_accepted line2/pump-7/open-valve/go r-3
pid=$(main_pid)

# --- SIGSTOP: no more WATCHDOG=1, systemd aborts and restarts it
in_ct kill -STOP "$pid"
check "SIGSTOP: the watchdog restarts it (new MainPID)" \
	wait_until $((WATCHDOG_SEC * 3 + 15)) active_with_new_pid "$pid"
check "SIGSTOP: systemd logged the watchdog timeout" journal_has "watchdog timeout"
check "SIGSTOP: the restarted unit accepts requests" \
	request_accepted commands/pump-7/open-valve/start r-4

# --- stop: the retained status goes offline
check "while running, the retained status says online" status_is "$CLIENT_ID" online
check "systemctl stop" in_ct systemctl stop cmdgate
check "stop: the unit ended cleanly (Result=success)" result_is success
check "stop: the retained status says offline" status_is "$CLIENT_ID" offline

if [ "$failed" -gt 0 ]; then
	echo "--- journal of cmdgate.service"
	journal | tail -n 40
fi
log "systemd deploy test took $((SECONDS - t0)) s"
summary
