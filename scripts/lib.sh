# Shell helpers shared by scripts/demo.sh and bench/*.sh (sourced).
# Processes started by a script are recorded in pids and stopped on exit,
# and its work directory is removed.
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A config line only when running as root (mosquitto and nginx otherwise
# drop to users that cannot read our temporary files).
asroot() { [ "$(id -u)" -eq 0 ] && echo "$1"; true; }
