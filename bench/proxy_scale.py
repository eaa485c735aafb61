#!/usr/bin/env python3
"""Scale of standing in for LAN machines (SPEC section 9, issue 17): N
proxied things (default 500) against the local AWS IoT Core stand-in
(tests/iotcore.py) and tests/fake_aws.py's Commands service, all on
loopback. Not a timed test: it measures and prints.

  1. time until all N links are up at the default proxy.connect_rate;
  2. idle with N links: private memory (smaps_rollup), CPU and wake-ups per
     second (context switches of all the gateway's threads), against the
     same gateway without a proxy section (the per-link cost);
  3. at RATE executions/s spread over the N things (one machine client on
     the local broker answers SUCCEEDED at once): p50/p99 from the
     stand-in's request publish to the local delivery, and from the
     machine's answer to AWS's accepted (and to the machine seeing it);
  4. K executions delivered, the stand-in stopped, the machine answers all
     K while it is down, the stand-in started: time until all N links are
     back, and how many answers were lost (accepted by AWS once each, or
     not).

  CMDGATE=build/cmdgate /usr/bin/python3 bench/proxy_scale.py [--things 500]
      [--rate 100] [--seconds 10] [--down 5] [--json OUT]
"""
import argparse
import json
import os
import resource
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import FakeAws, Gateway, Mosquitto, config, wait_for  # noqa: E402
import iotcore  # noqa: E402
from iotcore import commands_control, commands_state  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def proc_sample(pid):
    """(private kB, rss kB, cpu seconds, context switches of all threads, threads)."""
    priv = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Private_Clean", "Private_Dirty"):
                priv += int(v.split()[0])
            elif k == "Rss":
                rss = int(v.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    switches, threads = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        threads += 1
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return priv, rss, cpu, switches, threads


def idle(pid, seconds):
    a = proc_sample(pid)
    time.sleep(seconds)
    b = proc_sample(pid)
    return {"private_mib": round(b[0] / 1024, 1), "rss_mib": round(b[1] / 1024, 1),
            "cpu_pct": round(100 * (b[2] - a[2]) / seconds, 2),
            "wakeups_per_s": round((b[3] - a[3]) / seconds, 1), "threads": b[4]}


class Machines:
    """One local client answering for every thing: SUCCEEDED at once."""

    def __init__(self, port, answer=True):
        self.delivered = {}  # executionId -> time the request reached the machine
        self.answered = {}   # executionId -> time the machine published its answer
        self.verdict = {}    # executionId -> time the machine saw the verdict
        self.answer = answer
        self.held = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=f"bench-machines-{os.getpid()}", protocol=mqtt.MQTTv5)
        self.c.max_inflight_messages_set(1000)
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port, 60)
        self.c.loop_start()
        self.c.subscribe([("$aws/commands/things/+/executions/+/request/#", 1),
                          ("$aws/commands/things/+/executions/+/response/accepted/json", 1),
                          ("$aws/commands/things/+/executions/+/response/rejected/json", 1)])
        time.sleep(0.3)

    def on_message(self, c, u, m):
        now = time.time()
        parts = m.topic.split("/")
        thing, exec_id = parts[3], parts[5]
        if parts[6] == "request":
            with self.lock:
                self.delivered.setdefault(exec_id, now)
                go = self.answer
                if not go:
                    self.held.append((thing, exec_id))
            if go:
                self.reply(thing, exec_id)
        else:
            with self.lock:
                self.verdict.setdefault(exec_id, now)

    def reply(self, thing, exec_id):
        t = f"$aws/commands/things/{thing}/executions/{exec_id}/response/json"
        with self.lock:
            self.answered[exec_id] = time.time()
        self.c.publish(t, b'{"status":"SUCCEEDED","result":{"ok":{"b":true}}}', qos=1)


class Tap:
    """A subscriber on the stand-in itself (as AWS's admin): when each
    request left the stand-in's broker, so the hop that is not cmdgate's can
    be told apart."""

    def __init__(self, core):
        self.seen = {}
        self.c = mqtt.Client(client_id=f"bench-tap-{os.getpid()}", protocol=mqtt.MQTTv5)
        self.c.username_pw_set(iotcore.ADMIN)
        self.c.on_message = lambda c, u, m: self.seen.setdefault(m.topic.split("/")[5], time.time())
        self.c.connect("127.0.0.1", core.admin_port, 60)
        self.c.loop_start()
        self.c.subscribe("$aws/commands/things/+/executions/+/request/#", 1)
        time.sleep(0.3)


def links_up(core, things, since=0):
    """How many of things connected after log line `since` (by count)."""
    conns = core.connections()[since:]
    return len({c["client_id"] for c in conns} & things)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--things", type=int, default=500)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--down", type=float, default=5.0, help="seconds the stand-in is down")
    ap.add_argument("--backlog", type=int, default=200, help="answers taken while it is down")
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # mosquitto and the gateway inherit it
    import tempfile
    tmp = tempfile.mkdtemp(prefix="cmdgate-proxy-scale-")
    things = [f"bench-{i:04d}" for i in range(a.things)]
    out = {"things": a.things}
    broker = Mosquitto(tmp)
    core = iotcore.IotCore(tmp, things=things, log_all=False)
    aws = FakeAws(tmp, iotcore=core.admin)
    wait_for(lambda: any(c["user"] == iotcore.ADMIN for c in core.connections()), 10)
    prom = os.path.join(tmp, "bench.prom")
    base_conf = config(broker.port, aws.url, aws_extra=f'control_endpoint = "{aws.url}";')
    base_conf = base_conf.replace('level = "debug"', 'level = "info"')
    gws = []
    try:
        # the same gateway without a proxy: what the links add
        gw = Gateway(tmp, base_conf)
        gws.append(gw)
        time.sleep(2)
        out["idle_without_proxy"] = idle(gw.proc.pid, 5)
        gw.stop()
        proxy = ("proxy: { " + f'endpoint = "{core.endpoint}"; ca_file = "{core.ca}"; '
                 f'cert_file = "{core.cert}"; key_file = "{core.key}"; things = [ ' +
                 ", ".join(f'"{t}"' for t in things) + " ]; };\n")
        stats = f'stats: {{ file = "{prom}"; interval = 1; }};\n'
        before = len(core.connections())
        t0 = time.time()
        gw = Gateway(tmp, base_conf + proxy + stats)
        gws.append(gw)
        want = set(things)
        ok = wait_for(lambda: links_up(core, want, before) == len(want), 120, 0.05)
        out["links_up_s"] = round(time.time() - t0, 2) if ok else None
        out["links_up_count"] = links_up(core, want, before)
        print(f"links up: {out['links_up_count']}/{a.things} in {out['links_up_s']} s "
              "(default connect_rate 20/s)", flush=True)
        time.sleep(3)
        out["idle_with_links"] = idle(gw.proc.pid, 10)
        per = (out["idle_with_links"]["private_mib"] - out["idle_without_proxy"]["private_mib"]) * 1024 / a.things
        out["private_kib_per_link"] = round(per, 1)
        print("idle:", json.dumps(out["idle_with_links"]), f"({per:.0f} KiB per link)", flush=True)

        # latency at RATE executions/s
        m = Machines(broker.port)
        tap = Tap(core)
        n = int(a.rate * a.seconds)
        ids = []
        start = time.time()
        for i in range(n):
            due = start + i / a.rate
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            r = commands_control(aws.url, execute={"thing": things[i % a.things], "timeout_s": 60})
            ids.append(r["executionId"])
        wait_for(lambda: all(x in m.verdict for x in ids), 30, 0.1)
        st = commands_state(aws.url)["executions"]
        req_ms, ans_ms, loop_ms, tap_ms, hop_ms = [], [], [], [], []
        for x in ids:
            ex = st.get(x)
            if not ex or x not in m.delivered:
                continue
            req_ms.append((m.delivered[x] - ex["publishes"][0]) * 1000)
            if x in tap.seen:
                tap_ms.append((tap.seen[x] - ex["publishes"][0]) * 1000)
                hop_ms.append((m.delivered[x] - tap.seen[x]) * 1000)
            ups = [u for u in ex["updates"] if u.get("verdict") == "accepted"]
            if ups and x in m.answered:
                ans_ms.append((ups[0]["answered"] - m.answered[x]) * 1000)
            if x in m.verdict and x in m.answered:
                loop_ms.append((m.verdict[x] - m.answered[x]) * 1000)
        out["load"] = {"executions": n, "rate": a.rate, "delivered": len(req_ms),
                       "accepted": len(ans_ms),
                       "request_publish_to_local_delivery_ms": {"p50": round(pct(req_ms, 50), 2),
                                                                "p99": round(pct(req_ms, 99), 2)},
                       "request_publish_to_a_stand_in_subscriber_ms": {"p50": round(pct(tap_ms, 50), 2),
                                                                       "p99": round(pct(tap_ms, 99), 2)},
                       "stand_in_subscriber_to_local_delivery_ms": {"p50": round(pct(hop_ms, 50), 2),
                                                                    "p99": round(pct(hop_ms, 99), 2)},
                       "loadavg_1min": os.getloadavg()[0],
                       "answer_to_aws_accepted_ms": {"p50": round(pct(ans_ms, 50), 2),
                                                     "p99": round(pct(ans_ms, 99), 2)},
                       "answer_to_machine_sees_verdict_ms": {"p50": round(pct(loop_ms, 50), 2),
                                                             "p99": round(pct(loop_ms, 99), 2)}}
        print("load:", json.dumps(out["load"]), flush=True)

        # answers taken while the stand-in is down; then it returns
        m.answer = False
        batch = [commands_control(aws.url, execute={"thing": things[i % a.things], "timeout_s": 300})["executionId"]
                 for i in range(a.backlog)]
        wait_for(lambda: all(x in m.delivered for x in batch), 20, 0.05)
        before = len(core.connections())
        core.stop()
        for thing, x in list(m.held):
            m.reply(thing, x)
        time.sleep(a.down)
        t0 = time.time()
        core.start()
        ok = wait_for(lambda: links_up(core, want, before) == len(want), 180, 0.1)
        back = round(time.time() - t0, 2) if ok else None
        wait_for(lambda: all(x in m.verdict for x in batch), 60, 0.1)
        drained = round(time.time() - t0, 2)
        st = commands_state(aws.url)["executions"]
        accepted = [x for x in batch
                    if [u["verdict"] for u in st[x]["updates"]].count("accepted") == 1]
        out["restart"] = {"down_s": a.down, "links_back_s": back,
                          "links_back": links_up(core, want, before),
                          "answers_waiting": len(batch), "accepted_once": len(accepted),
                          "lost": len(batch) - len(accepted), "all_verdicts_s": drained}
        print("stand-in restart:", json.dumps(out["restart"]), flush=True)
        m.c.loop_stop()
        tap.c.loop_stop()
    finally:
        for g in gws:
            g.stop()
        aws.stop()
        core.cleanup()
        broker.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
