#!/usr/bin/env bash
# cmdgate benchmark: mosquitto + nginx (a fast HTTPS endpoint with a fixed
# StartCommandExecution answer) + the gateway, all on loopback, driven by
# bench/loadgen at 1, 64 and 256 outstanding requests; the same load against
# bench/nullbridge (the MQTT path alone) in the same run. Three runs; one
# JSON line per load, then medians, ratios and the targets of issue 5.
#
# usage: bench/run.sh [RUNS]      (default 3; BENCH_N64/BENCH_N1 change counts)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v nginx >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo;
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null; }
scripts/build.sh build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF

MODE=run
if [ "${1:-}" = "--callgrind" ]; then
	MODE=callgrind
	shift
fi
RUNS=${1:-3}
N1=${BENCH_N1:-2000}
NBIG=${BENCH_N64:-20000}
work=$(mktemp -d /tmp/cmdgate-bench.XXXXXX)
. scripts/lib.sh

# --- endpoint: nginx over TLS with a test certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
https_port=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<CONF
$(asroot "user root;")
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location = /command-executions {
      default_type application/json;
      return 200 '{"executionId":"11111111-2222-4333-8444-555555555555"}';
    }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx" &
pids+=($!)

# --- broker
mqtt_port=$(free_port)
cat > "$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_inflight_messages 0
max_queued_messages 1000000
$(asroot "user root")
CONF
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)
sleep 0.5

cat > "$work/cmdgate.conf" <<CONF
mqtt: { uri = "tcp://127.0.0.1:$mqtt_port"; client_id = "cmdgate-bench"; };
aws:  { region = "eu-west-1"; account = "123456789012";
        endpoint = "https://127.0.0.1:$https_port"; ca_file = "$work/cert.pem";
        credentials: { source = "env"; }; };
log: { level = "warn"; };
CONF
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true

mem() { # PID -> "private_kib rss_kib"
	awk '/^Rss:/ {r=$2} /^Private_Dirty:/ {p=$2} END {print p+0, r+0}' "/proc/$1/smaps_rollup"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# The gateway's MQTT session outlives it (clean start off, no unsubscribe on
# stop): without this, the null bridge's load would be queued for it and
# delivered at its next start. A clean connect with its client id ends that
# session.
clear_session() {
	mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -i cmdgate-bench -t cmdgate/bench/none -E -q 0 \
		>/dev/null 2>&1 || true
}

# start_target NAME -> PID in $target_pid once it is subscribed
start_target() {
	local log="$work/$1.log"
	: > "$log"
	if [ "$1" = gateway ]; then
		clear_session
		build-bench/cmdgate -c "$work/cmdgate.conf" --log-level info > "$log" 2>&1 &
	else
		build-bench/nullbridge "tcp://127.0.0.1:$mqtt_port" > "$log" 2>&1 &
	fi
	target_pid=$!
	for _ in $(seq 200); do grep -qE "ready" "$log" && return 0; sleep 0.01; done
	echo "$1 did not become ready" >&2
	cat "$log" >&2
	return 1
}

if [ "$MODE" = callgrind ]; then
	# Instructions per request: two runs under callgrind, with 0 and with
	# N requests; the difference divided by N excludes start-up and shutdown.
	command -v callgrind_annotate >/dev/null || true
	n=${BENCH_CG_N:-2000}
	for count in 0 "$n"; do
		valgrind --tool=callgrind --callgrind-out-file="$work/cg.$count" \
			build-bench/cmdgate -c "$work/cmdgate.conf" --log-level info > "$work/cg.$count.log" 2>&1 &
		target_pid=$!
		for _ in $(seq 500); do grep -q "ready" "$work/cg.$count.log" && break; sleep 0.02; done
		[ "$count" -gt 0 ] && build-bench/loadgen "tcp://127.0.0.1:$mqtt_port" 16 "$count" 64 >/dev/null
		kill "$target_pid"
		wait "$target_pid" 2>/dev/null || true
	done
	ir() { grep -E "^(summary|totals):" "$1" | head -1 | awk '{print $2}'; }
	base=$(ir "$work/cg.0")
	full=$(ir "$work/cg.$n")
	echo "{\"callgrind_ir_per_request\":$(( (full - base) / n )),\"requests\":$n,\"ir_total\":$full,\"ir_idle\":$base}"
	if [ -n "${BENCH_CG_KEEP:-}" ]; then cp "$work/cg.$n" "$BENCH_CG_KEEP"; fi
	exit 0
fi

results="$work/results.jsonl"
for run in $(seq "$RUNS"); do
	for target in null gateway; do
		start_target "$target"
		sleep 0.3
		read -r idle_priv idle_rss < <(mem "$target_pid")
		for c in 1 64 256; do
			n=$NBIG
			[ "$c" -eq 1 ] && n=$N1
			t0=$(cpu_ticks "$target_pid")
			line=$(build-bench/loadgen "tcp://127.0.0.1:$mqtt_port" "$c" "$n" 64)
			t1=$(cpu_ticks "$target_pid")
			read -r priv rss < <(mem "$target_pid")
			cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / hz * 10000 / n }')
			echo "${line%\}},\"run\":$run,\"target\":\"$target\",\"cpu_s_per_10k\":$cpu,\"idle_private_kib\":$idle_priv,\"idle_rss_kib\":$idle_rss,\"private_kib\":$priv,\"rss_kib\":$rss}" | tee -a "$results"
		done
		if [ "$target" = gateway ]; then
			# growth: the same 256-outstanding load twice more on this process
			for again in 2 3; do
				build-bench/loadgen "tcp://127.0.0.1:$mqtt_port" 256 "$NBIG" 64 >/dev/null
				read -r priv rss < <(mem "$target_pid")
				echo "{\"run\":$run,\"target\":\"gateway\",\"repeat\":$again,\"private_kib\":$priv,\"rss_kib\":$rss}" | tee -a "$results"
			done
		fi
		kill "$target_pid"
		wait "$target_pid" 2>/dev/null || true
	done
done

# start-up: launch -> READY=1 (systemd notify protocol), ten times
startup=$(MQTT_PORT=$mqtt_port /usr/bin/python3 - "$work" <<'PY'
import os, socket, subprocess, sys, time
work = sys.argv[1]
out = []
for i in range(10):
    path = os.path.join(work, f"notify-{i}.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", os.environ["MQTT_PORT"], "-i",
                    "cmdgate-bench", "-t", "cmdgate/bench/none", "-E", "-q", "0"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    p = subprocess.Popen(["build-bench/cmdgate", "-c", os.path.join(work, "cmdgate.conf")],
                         env=env, stderr=subprocess.DEVNULL)
    while s.recv(4096) != b"READY=1":
        pass
    out.append((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait(10); s.close()
out.sort()
print(f'{{"median":{out[len(out) // 2]:.1f},"min":{out[0]:.1f},"max":{out[-1]:.1f},'
      f'"under_100ms":{sum(x <= 100 for x in out)},"launches":{len(out)}}}')
PY
)
echo "{\"startup_ready_ms\":$startup}" | tee -a "$results"

/usr/bin/python3 bench/summarize.py "$results"
