#!/usr/bin/env bash
# Install what cmdgate needs to build, test and run its demo, from Debian 12's
# packages. Installs only what is missing; uses sudo when not root.
set -euo pipefail

# What building cmdgate needs (the Dockerfile's build stage installs the
# same -dev packages), then what its tests, demo and benchmark use.
BUILD_PACKAGES=(
	build-essential cmake pkg-config
	libpaho-mqtt-dev libcurl4-openssl-dev libssl-dev libjansson-dev libconfig-dev
	libsystemd-dev
)
TEST_PACKAGES=(
	libcmocka-dev
	mosquitto mosquitto-clients openssl ca-certificates
	python3 python3-paho-mqtt python3-prometheus-client
	valgrind systemd lintian dpkg-dev clang libclang-rt-14-dev
	rabbitmq-server ejabberd # tests/integration/test_brokers.py (aedes comes from npm)
)
# node and npm for aedes: Debian's, unless a node with npm is already there
command -v npm >/dev/null 2>&1 || TEST_PACKAGES+=(nodejs npm)
PACKAGES=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
# The deploy tests (tests/deploy/: real systemd in systemd-nspawn, the image
# under podman) and the ARM builds (scripts/cross.sh: target sysroots,
# cross compilers, qemu-user): `scripts/deps.sh --deploy` installs these too.
DEPLOY_PACKAGES=(
	podman buildah runc iptables uidmap systemd-container debootstrap mmdebstrap
	qemu-user crossbuild-essential-arm64 crossbuild-essential-armhf
)
[ "${1:-}" = "--deploy" ] && PACKAGES+=("${DEPLOY_PACKAGES[@]}")
[ "${1:-}" = "--print-build" ] && { echo "${BUILD_PACKAGES[@]}"; exit 0; }
[ "${1:-}" = "--print" ] && { echo "${PACKAGES[@]}"; exit 0; }

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
# steps of the suite that run at once may each call this: the second waits
# for the first's dpkg lock instead of failing on it
lock=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system mosquitto on 1883 where systemd runs; tests use their own.
# Where systemd runs, Debian starts RabbitMQ and ejabberd listening on every
# interface; the broker tests start their own on loopback.
if [ -d /run/systemd/system ]; then
	for s in rabbitmq-server ejabberd; do
		case " ${missing[*]} " in *" $s "*) $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true ;; esac
	done
fi
