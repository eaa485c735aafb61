"""What following costs (SPEC section 8, issue 12): GetCommandExecution polls
per execution for commands that end 1 s, 10 s and 60 s after they start, and
the time from the accepted reply to the final message, measured through
mosquitto, build/cmdgate and the local AWS endpoint on loopback.

usage: /usr/bin/python3 bench/follow_cost.py [SECONDS...]   (default 1 10 60)

The executions run side by side (one per duration, each on its own thing),
so the whole run takes about as long as the longest plus its last poll gap.
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
from harness import Device, FakeAws, Gateway, Mosquitto, config, wait_for  # noqa

ROUTES = 'routes = ( { request_topic = "commands/{thing}/{command}/start"; follow = true; } );'


def main():
    durations = [float(a) for a in sys.argv[1:]] or [1.0, 10.0, 60.0]
    tmp = tempfile.mkdtemp(prefix="cmdgate-follow-bench-")
    broker, aws = Mosquitto(tmp), FakeAws(tmp)
    conf = config(broker.port, aws.url, ROUTES,
                  aws_extra=f'control_endpoint = "{aws.url}";').replace('level = "debug"',
                                                                      'level = "info"')
    gw = Gateway(tmp, conf)
    dev = Device(broker.port, subscribe=("commands/#",))
    lock = threading.Lock()
    seen = {}  # thing -> {"accepted": t, "final": t, "exec": id, "statuses": [...]}

    def on_message(c, u, m):
        parts = m.topic.split("/")
        if len(parts) < 4:
            return
        doc = json.loads(m.payload) if m.payload else {}
        with lock:
            s = seen.setdefault(parts[1], {"statuses": []})
            if parts[3] == "start" and len(parts) == 5 and parts[4] == "accepted":
                s["accepted"], s["exec"] = time.time(), doc.get("executionId")
            elif parts[3] == "executions":
                s["statuses"].append(doc.get("status"))
                if doc.get("final"):
                    s["final"] = time.time()
    dev.c.on_message = on_message
    things = {}
    try:
        for d in durations:
            thing = f"bench-{int(d * 1000)}ms"
            things[thing] = d
            dev.publish(f"commands/{thing}/open-valve/start",
                        {"id": thing, "parameters": {"duration_s": d}})
        ok = wait_for(lambda: all("final" in seen.get(t, {}) for t in things),
                      max(durations) + 45, 0.05)
        if not ok:
            print("not every execution ended; is the follower wired into the engine?",
                  file=sys.stderr)
            return 1
        polls = json.loads(urllib.request.urlopen(aws.url + "/_polls", timeout=5).read())
        print(f"{'ends after':>10} {'polls':>6} {'accepted->final':>16}  statuses")
        for t, d in things.items():
            s = seen[t]
            n = len([p for p in polls if p["executionId"] == s["exec"]])
            print(f"{d:>9.0f}s {n:>6} {s['final'] - s['accepted']:>15.2f}s  "
                  f"{' '.join(s['statuses'])}")
        return 0
    finally:
        dev.close()
        gw.stop()
        aws.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
