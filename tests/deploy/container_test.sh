#!/usr/bin/env bash
# cmdgate as a container at the edge: the repository's Dockerfile, unchanged,
# built by podman (--format docker, so HEALTHCHECK is kept) on a
# debian:12-slim made here (debootstrap minbase + podman import: no registry
# is reachable), run as README's "A container at the edge" says: --network
# host, a config volume (read-only) and a state volume, the AWS keys in the
# environment. A mosquitto and tests/fake_aws.py run on the host's 127.0.0.1.
# Checks, each a separate assertion: a request accepted; the HEALTHCHECK
# healthy; HUP reloads (a changed route applies, same process); podman stop
# -> exit 0 and the retained status says offline; the process is not root.
# The base root and image are cached (build/deploy-cache, podman's store).
# Ends with "N passed, N failed".
set -u
# booting a container and running podman need root: as scripts/deps.sh does, use sudo
[ "$(id -u)" -eq 0 ] || exec sudo -E bash "$0" "$@"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/deploy/lib.sh
scripts/deps.sh --deploy || { echo "0 passed, 1 failed"; exit 1; }
export CONTAINERS_CONF=$ROOT/tests/deploy/containers.conf

BASE=docker.io/library/debian:12-slim
IMAGE=localhost/cmdgate:deploy-test
CLIENT_ID=cmdgate-container
ctr=cmdgate-test-$$
volume=cmdgate-state-$$
work=$(mktemp -d /tmp/cmdgate-container.XXXXXX)
teardown() {
	podman rm -f -t 2 "$ctr" >/dev/null 2>&1
	podman volume rm -f "$volume" >/dev/null 2>&1
	stop_broker_and_aws
	rm -rf "$work"
}
trap teardown EXIT
trap 'exit 130' INT TERM
t0=$SECONDS

# --- debian:12-slim, made locally once: a minbase root with the same apt
# sources as the official image (the mirror apt uses on this machine)
if ! podman image exists "$BASE"; then
	rootdir=$(debian_root bookworm-minbase)
	if [ -n "$rootdir" ]; then
		mirror=$(debian_mirror)
		security=$(debian_mirror security) || security=${mirror%/debian}/debian-security
		rm -f "$rootdir/etc/apt/sources.list"
		cat > "$rootdir/etc/apt/sources.list.d/debian.sources" <<-SOURCES
			Types: deb
			URIs: $mirror
			Suites: bookworm bookworm-updates
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

			Types: deb
			URIs: $security
			Suites: bookworm-security
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		SOURCES
		log "podman import $BASE"
		tar -C "$rootdir" --exclude=./.complete --exclude='./var/cache/apt/archives/*.deb' \
			--exclude='./var/lib/apt/lists/*' -c . | podman import - "$BASE" >/dev/null
	fi
fi
check "$BASE exists locally" podman image exists "$BASE"
log "base image ready after $((SECONDS - t0)) s"

# --- the image, from the Dockerfile as it is
build() { podman build --format docker -t "$IMAGE" . > "$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; return 1; }; }
check "podman build --format docker (the Dockerfile unchanged)" build
check "the image keeps its HEALTHCHECK" \
	sh -c "podman image inspect --format '{{.Config.Healthcheck}}' '$IMAGE' | grep -q cmdgate.prom"
log "image built after $((SECONDS - t0)) s"

start_broker_and_aws || { echo "0 passed, 1 failed"; exit 1; }

# --- the configuration volume, as an operator's /etc/cmdgate
mkdir -p "$work/etc"
write_conf() { # write_conf EXTRA_ROUTE(0|1)
	local routes='{ request_topic = "commands/{thing}/{command}/start";
             reply_topic = "commands/{thing}/{command}/start/{status}"; }'
	[ "$1" = 1 ] && routes="$routes,
           { request_topic = \"line2/{thing}/{command}/go\";
             reply_topic = \"line2/{thing}/{command}/go/{status}\"; }"
	cat > "$work/etc/cmdgate.conf.new" <<-CONF
		mqtt: { uri = "tcp://127.0.0.1:$MQTT_PORT"; client_id = "$CLIENT_ID"; };
		aws:  { region = "eu-west-1"; account = "123456789012";
		        endpoint = "http://127.0.0.1:$AWS_PORT";
		        credentials: { source = "chain"; }; };
		routes = ( $routes );
		gateway: { spool_dir = "/var/lib/cmdgate/spool"; };
		stats: { file = "/var/lib/cmdgate/cmdgate.prom"; interval = 15; };
		log: { level = "info"; format = "json"; };
	CONF
	chmod 644 "$work/etc/cmdgate.conf.new"
	mv "$work/etc/cmdgate.conf.new" "$work/etc/cmdgate.conf"
}
write_conf 0
chmod 755 "$work" "$work/etc"

# --- run it as README says
podman run -d --name "$ctr" --network host \
	--read-only --cap-drop ALL --security-opt no-new-privileges \
	-v "$work/etc":/etc/cmdgate:ro -v "$volume":/var/lib/cmdgate \
	-e AWS_ACCESS_KEY_ID="$AKID" -e AWS_SECRET_ACCESS_KEY="$SECRET" "$IMAGE" > "$work/run.log" 2>&1
running() { [ "$(podman inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null)" = true ]; }
check "podman run (--network host, read-only, no capabilities, config and state volumes)" running
host_pid=$(podman inspect --format '{{.State.Pid}}' "$ctr" 2>/dev/null)

check "a device request is accepted" request_accepted commands/pump-7/open-valve/start r-1

not_root() {
	local uid
	uid=$(awk '/^Uid:/ { print $2 }' /proc/"$host_pid"/status)
	echo "uid ${uid:-?}"
	[ -n "$uid" ] && [ "$uid" != 0 ]
}
check "the gateway runs as a non-root user" not_root
no_caps() { # no capability at all, and / not writable
	grep -q '^CapEff:[[:space:]]*0*$' /proc/"$host_pid"/status &&
		! podman exec "$ctr" sh -c 'touch /probe 2>/dev/null'
}
check "no capabilities and a read-only root file system" no_caps
check "the state volume holds the spool, owned by that user" \
	podman exec "$ctr" sh -c 'test -d /var/lib/cmdgate/spool && test -O /var/lib/cmdgate/spool'

# the stats file is first written after stats.interval (15 s)
healthy() { podman healthcheck run "$ctr"; }
check "HEALTHCHECK: healthy" wait_until 40 healthy

# --- HUP: same process, new configuration
write_conf 1
check "HUP delivered (podman kill --signal HUP)" podman kill --signal HUP "$ctr"
logs_have() { podman logs "$ctr" 2>&1 | grep -q "$1"; }
check "HUP: the gateway logged the reload" wait_until 10 logs_have "configuration reloaded"
check "HUP: a request on the new route is accepted" request_accepted line2/pump-7/open-valve/go r-2
same_process() { [ "$(podman inspect --format '{{.State.Pid}}' "$ctr")" = "$host_pid" ]; }
check "HUP: same process" same_process

# --- podman stop: SIGTERM to PID 1, a clean exit, the status goes offline
check "while running, the retained status says online" status_is "$CLIENT_ID" online
check "podman stop" podman stop -t 20 "$ctr"
exit_code() { [ "$(podman inspect --format '{{.State.ExitCode}}' "$ctr")" = 0 ]; }
check "podman stop: exit status 0" exit_code
check "podman stop: the retained status says offline" status_is "$CLIENT_ID" offline

if [ "$failed" -gt 0 ]; then
	echo "--- container log"
	podman logs "$ctr" 2>&1 | tail -n 40
fi
log "container deploy test took $((SECONDS - t0)) s"
summary
