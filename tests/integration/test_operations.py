"""Operating cmdgate (issue 6): status/will, stats topic, Prometheus
textfile, JSON logs, and scale-out with shared subscriptions across three
instances, one of them killed mid-run."""
import json
import os
import signal
import sys
import tempfile
import threading
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Device, FakeAws, Gateway, Mosquitto, config, wait_for  # noqa

TMP = BROKER = AWS = None


setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-ops-")


class Stats(unittest.TestCase):
    def test_stats_topic_and_textfile_add_up(self):
        AWS.reset()
        AWS.control(rules=[{"thing": "stats-bad", "status": 404,
                            "code": "ResourceNotFoundException"}])
        prom = os.path.join(TMP, "cmdgate.prom")
        conf = config(BROKER.port, AWS.url, mqtt_extra='client_id = "gw-stats";',
                      extra=f'stats: {{ topic = "cmdgate/{{client_id}}/stats"; interval = 1; '
                            f'file = "{prom}"; }};')
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port, subscribe=("commands/#", "cmdgate/gw-stats/stats"))
        try:
            for i in range(6):
                dev.request("stats-ok", "c1", {"id": i})
            for i in range(3):
                dev.request("stats-bad", "c1", {"id": i})
            for i in range(2):
                dev.request("stats-ok", "c1", {"id": i, "bogus": 1})
            # the next interval's document counts all eleven
            def doc():
                got = dev.replies("cmdgate/gw-stats/stats")
                if not got:
                    return None
                d = json.loads(got[-1].payload)
                r = d["requests"]
                total = r["accepted"] + sum(r["rejected"].values())
                return d if total == 11 else None
            d = wait_for(doc, 5)
            self.assertIsNotNone(d)
            late = Device(BROKER.port, subscribe=("cmdgate/gw-stats/stats",))
            got = wait_for(lambda: late.replies("cmdgate/gw-stats/stats"), 3)
            late.close()
            self.assertTrue(got and got[0].retain)  # a new dashboard sees it at once
            self.assertEqual(d["requests"]["accepted"], 6)
            self.assertEqual(d["requests"]["rejected"],
                             {"ResourceNotFoundException": 3, "InvalidRequest": 2})
            self.assertEqual(d["credentials"]["source"], "env")
            self.assertEqual(d["mqtt"], "connected")
            for k in ("queue", "inflight", "spool", "retries", "latency_ms", "uptime_s"):
                self.assertIn(k, d)
            # the file is rewritten every second: until it counts all 11
            def counted():
                with open(prom) as f:
                    text = f.read()
                return "cmdgate_request_latency_seconds_count 11\n" in text and text
            text = wait_for(lambda: os.path.exists(prom) and counted(), 5)
            self.assertTrue(text, "the stats file never counted the 11 requests")
            families = {m.name: m for m in text_string_to_metric_families(text)}
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for m in families.values() for s in m.samples}
            req = {k: v for k, v in samples.items() if k[0] == "cmdgate_requests_total"}
            self.assertEqual(sum(req.values()), 11)
            self.assertEqual(samples[("cmdgate_requests_total",
                                      (("code", ""), ("outcome", "accepted")))], 6)
            self.assertEqual(samples[("cmdgate_request_latency_seconds_count", ())], 11)
            self.assertIn("cmdgate_inflight", families)
            self.assertIn("cmdgate_credentials_expiry_timestamp_seconds", families)
            self.assertEqual([f for f in os.listdir(TMP) if ".prom.tmp" in f], [])
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)


class DeployFiles(unittest.TestCase):
    ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def test_container_config_is_valid(self):
        import subprocess
        from harness import CMDGATE
        for conf in ("deploy/cmdgate.conf", "config/cmdgate.conf"):
            r = subprocess.run([CMDGATE, "--check", "-c", os.path.join(self.ROOT, conf)],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual((r.returncode, r.stdout), (0, "configuration OK\n"), r.stderr)

    def test_dockerfile_installs_what_deps_installs(self):
        import re
        import subprocess
        with open(os.path.join(self.ROOT, "Dockerfile")) as f:
            docker = set(re.findall(r"\b(lib[a-z0-9.+-]+-dev)\b", f.read()))
        deps = set(subprocess.run(["bash", os.path.join(self.ROOT, "scripts/deps.sh"),
                                   "--print-build"], capture_output=True, text=True).stdout.split())
        self.assertTrue(docker)
        self.assertEqual(docker, {p for p in deps if p.endswith("-dev")})

    # deploy/acl and deploy/mosquitto.conf on a real mosquitto, with cmdgate:
    # test_rogue.py, IdentityIsTheLogin


class ScaleOut(unittest.TestCase):
    def test_three_instances_share_the_load_and_survive_a_kill(self):
        AWS.reset()
        AWS.control(delay_ms=20)
        gws = []
        for i in range(3):
            conf = config(BROKER.port, AWS.url, level="info",
                          mqtt_extra=f'client_id = "gw-share-{i}"; shared_group = "cmdgate";')
            gws.append(Gateway(TMP, conf))
        dev = Device(BROKER.port)
        n = 300
        answered = {}
        lock = threading.Lock()

        def on_message(c, u, m):
            if "/start/" in m.topic:
                r = json.loads(m.payload)
                with lock:
                    answered.setdefault(r["id"], []).append(r)
        dev.c.on_message = on_message
        try:
            sent_at = {}
            for i in range(n):
                dev.publish(f"commands/share-{i % 10}/c1/start", {"id": i})
                sent_at[i] = time.time()
                if i == n // 2:
                    gws[1].killed = True  # its log is still checked, by ZzEveryGatewayRun
                    gws[1].proc.send_signal(signal.SIGKILL)
                time.sleep(0.005)
            # a device that saw no reply repeats the same request (same id)
            deadline = time.time() + 30
            while time.time() < deadline:
                with lock:
                    missing = [i for i in range(n) if i not in answered]
                if not missing:
                    break
                for i in missing:
                    if time.time() - sent_at[i] > 3:
                        dev.publish(f"commands/share-{i % 10}/c1/start", {"id": i})
                        sent_at[i] = time.time()
                time.sleep(0.2)
            with lock:
                self.assertEqual(sorted(answered), list(range(n)))
                for i, rs in answered.items():
                    self.assertTrue(all(r["status"] == "accepted" for r in rs), rs)
                    self.assertEqual(len({r["executionId"] for r in rs}), 1)
            calls = AWS.calls()
            started = [c for c in calls if c["outcome"] == "started"]
            self.assertEqual(len(started), n)  # never two executions for one id
            per_gw = [g.text().count("outcome=accepted") for g in gws]
            self.assertTrue(all(c > 0 for c in per_gw), per_gw)
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            for i, g in enumerate(gws):
                rc = g.stop()
                if i != 1:
                    self.assertEqual(rc, 0)


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report,
    the SIGKILLed instance of ScaleOut included (it alone may end -9)."""


if __name__ == "__main__":
    harness.main()
