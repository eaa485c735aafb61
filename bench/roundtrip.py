"""One device, one request at a time: the QoS 1 round trip (publish ->
reply received) through mosquitto, build/cmdgate and the local AWS endpoint,
all on loopback. Prints p50/p90/p99/max in ms over N requests.

usage: /usr/bin/python3 bench/roundtrip.py [N]   (default 500)

The endpoint is the Python test endpoint, which verifies every signature;
its own time is part of the figure (the C benchmark of issue 5 uses nginx).
"""
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Device, FakeAws, Gateway, Mosquitto, config  # noqa


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    tmp = tempfile.mkdtemp(prefix="cmdgate-rt-")
    broker, aws = Mosquitto(tmp), FakeAws(tmp)
    gw = Gateway(tmp, config(broker.port, aws.url).replace('level = "debug"', 'level = "info"'))
    dev = Device(broker.port, subscribe=("commands/+/+/start/+",))
    done = threading.Event()
    dev.c.on_message = lambda c, u, m: done.set()
    lat = []
    try:
        for i in range(n + 20):
            done.clear()
            t0 = time.perf_counter()
            dev.c.publish("commands/rt-1/c1/start", json.dumps({"id": i}), qos=1)
            if not done.wait(10):
                raise SystemExit("no reply")
            if i >= 20:  # warm-up: connections, TLS sessions, caches
                lat.append((time.perf_counter() - t0) * 1000)
    finally:
        dev.close()
        gw.stop()
        aws.stop()
        broker.stop()
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(json.dumps({"requests": n, "p50_ms": round(pct(0.5), 3), "p90_ms": round(pct(0.9), 3),
                      "p99_ms": round(pct(0.99), 3), "max_ms": round(lat[-1], 3)}))


if __name__ == "__main__":
    main()
