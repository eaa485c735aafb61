#!/usr/bin/env bash
# Soak: steady load through mosquitto + the Python test endpoint (which
# verifies every signature) + the gateway with a spool, for SOAK_SECONDS
# (default 300). Samples the gateway's RSS, private memory and open file
# descriptors every 10 s and prints them, then the first/last difference.
#   bench/soak.sh            (not part of CI: it takes five minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
SECS=${SOAK_SECONDS:-300} CMDGATE=build-bench/cmdgate /usr/bin/python3 -W ignore - <<'PY'
import json, os, sys, tempfile, threading, time
sys.path.insert(0, "tests/integration")
import harness
from harness import Device, FakeAws, Gateway, Mosquitto, config
harness.CMDGATE = os.environ["CMDGATE"]
secs = int(os.environ["SECS"])
tmp = tempfile.mkdtemp(prefix="cmdgate-soak-")
broker, aws = Mosquitto(tmp), FakeAws(tmp)
conf = config(broker.port, aws.url, gateway_extra=f'spool_dir = "{tmp}/spool";',
              extra=f'stats: {{ file = "{tmp}/cmdgate.prom"; interval = 10; }};')
gw = Gateway(tmp, conf.replace('level = "debug"', 'level = "info"'))
dev = Device(broker.port, subscribe=("commands/+/+/start/+",))
done = threading.Semaphore(0)
got = {"n": 0, "bad": 0}
def on_message(c, u, m):
    got["n"] += 1
    if not m.topic.endswith("/accepted"):
        got["bad"] += 1
    done.release()
dev.c.on_message = on_message
def sample():
    pid = gw.proc.pid
    rss = priv = 0
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Rss:"): rss = int(line.split()[1])
        if line.startswith("Private_Dirty:"): priv = int(line.split()[1])
    return {"t": round(time.time() - start), "sent": sent, "replies": got["n"], "rss_kib": rss,
            "private_kib": priv, "fds": len(os.listdir(f"/proc/{pid}/fd"))}
start = time.time(); sent = 0; samples = []; next_sample = start
outstanding = 16
for _ in range(outstanding):
    done.release()
while time.time() - start < secs:
    if not done.acquire(timeout=5):
        break
    dev.c.publish(f"commands/soak-{sent % 50}/c1/start",
                  json.dumps({"id": sent} if sent % 2 else {}), qos=1)
    sent += 1
    if time.time() >= next_sample:
        samples.append(sample()); print(json.dumps(samples[-1]), flush=True)
        next_sample += 10
time.sleep(2)
samples.append(sample()); print(json.dumps(samples[-1]))
first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
print(json.dumps({"seconds": secs, "requests": sent, "replies": got["n"], "not_accepted": got["bad"],
                  "rate_per_s": round(sent / secs), "rss_kib_delta": last["rss_kib"] - first["rss_kib"],
                  "private_kib_delta": last["private_kib"] - first["private_kib"],
                  "fds_delta": last["fds"] - first["fds"]}))
dev.close(); rc = gw.stop(); aws.stop(); broker.stop()
sys.exit(0 if rc == 0 and got["bad"] == 0 else 1)
PY
