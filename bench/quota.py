"""Quota benchmark (issue 10): the gateway in front of an account quota.

The Python test endpoint runs in quota mode (--quota Q --quota-burst Q: a
token bucket, 429 ThrottlingException beyond it). For each load, a fresh
gateway (deadline_ms 90000, queue_size 4000, otherwise default) gets
M x Q requests/s for SECONDS s over 30 things, and every reply is awaited.
One JSON line per load, then a Markdown table:

  goodput/quota  AWS's accepted calls/s from its first acceptance to its
                 last (for M > 1 that is while the backlog lasts), / Q
  429 share      quota 429s / all calls AWS saw
  p50 / p99      publish -> reply of the device, all requests

usage: /usr/bin/python3 bench/quota.py [QUOTA [SECONDS [MULT ...]]]
       (defaults: 20, 10, 1 2 5; CMDGATE picks the binary)
"""
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from harness import Device, FakeAws, Gateway, Mosquitto, config, wait_for  # noqa: E402


def start_fake(tmp, quota):
    """FakeAws with --quota/--quota-burst (harness has no hook for extra flags:
    PYTHON is wrapped so the flags are appended)."""
    wrapper = os.path.join(tmp, "fake-with-quota.sh")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec {harness.PYTHON} "$@" --quota {quota} --quota-burst {quota}\n')
    os.chmod(wrapper, 0o755)
    saved = harness.PYTHON
    harness.PYTHON = wrapper
    try:
        return FakeAws(tmp)
    finally:
        harness.PYTHON = saved


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else None


def one_load(tmp, broker, aws, quota, mult, seconds):
    aws.reset()  # back to the command line's quota, bucket full, logs empty
    conf = config(broker.port, aws.url, gateway_extra="deadline_ms = 90000; queue_size = 4000;")
    gw = Gateway(tmp, conf.replace('level = "debug"', 'level = "info"'))
    dev = Device(broker.port, subscribe=("commands/+/+/start/+",))
    lock = threading.Lock()
    sent, done, codes = {}, {}, {}

    def on_message(c, u, m):
        if not m.topic.endswith(("/accepted", "/rejected")):
            return
        now = time.time()
        body = json.loads(m.payload)
        with lock:
            rid = body.get("id")
            if rid in sent and rid not in done:
                done[rid] = now
                k = body["status"] if body["status"] == "accepted" else body.get("code", "?")
                codes[k] = codes.get(k, 0) + 1

    dev.c.on_message = on_message
    n = int(quota * mult * seconds)
    rate = quota * mult
    t0 = time.time()
    for i in range(n):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        with lock:
            sent[i] = time.time()
        dev.publish(f"commands/qb-{i % 30}/c1/start", {"id": i})
    wait_for(lambda: len(done) >= n, 120, 0.2)
    q = json.loads(urllib.request.urlopen(aws.url + "/_quota", timeout=5).read())
    dev.close()
    gw.stop()
    acc, thr = sorted(q["accepted"]), q["throttled"]
    span = acc[-1] - acc[0] if len(acc) > 1 else 0
    lat = [(done[i] - sent[i]) * 1000 for i in done]
    return {"quota": quota, "mult": mult, "offered_per_s": rate, "requests": n,
            "answered": len(done), "replies": codes,
            "aws_accepted": len(acc), "aws_throttled": len(thr),
            "goodput_per_s": round(len(acc) / span, 2) if span else None,
            "goodput_over_quota": round(len(acc) / span / quota, 3) if span else None,
            "share_429": round(len(thr) / max(1, len(acc) + len(thr)), 4),
            "p50_ms": round(pct(lat, 50), 1) if lat else None,
            "p99_ms": round(pct(lat, 99), 1) if lat else None,
            "drain_s": round(acc[-1] - t0, 1) if acc else None}


def main():
    quota = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    mults = [float(x) for x in sys.argv[3:]] or [1.0, 2.0, 5.0]
    harness.CMDGATE = os.environ.get("CMDGATE", harness.CMDGATE)
    tmp = tempfile.mkdtemp(prefix="cmdgate-quota-bench-")
    broker = Mosquitto(tmp)
    aws = start_fake(tmp, quota)
    rows = []
    try:
        for m in mults:
            r = one_load(tmp, broker, aws, quota, m, seconds)
            print(json.dumps(r), flush=True)
            rows.append(r)
    finally:
        aws.stop()
        broker.stop()
    print()
    print("| offered | requests | all accepted | goodput / quota | 429 share | "
          "p50 / p99 ms | last accepted at |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        allok = r["replies"].get("accepted", 0) == r["requests"]
        print(f"| {r['mult']:g} x quota ({r['offered_per_s']:g}/s) | {r['requests']} | "
              f"{'yes' if allok else 'no: ' + json.dumps(r['replies'])} | "
              f"{r['goodput_over_quota']} | {100 * r['share_429']:.1f} % | "
              f"{r['p50_ms']:,} / {r['p99_ms']:,} | {r['drain_s']} s |")
    bad = [r for r in rows if r["answered"] != r["requests"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
