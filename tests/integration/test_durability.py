"""Nothing lost, nothing twice (issue 4): the spool across SIGKILLs, an
unreachable endpoint, a broker restart, a burst over capacity and hostile
payloads. Every test is bounded in count and time."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClosedPort, Device, FakeAws, Gateway, Mosquitto, config, free_port, wait_for  # noqa

TMP = BROKER = AWS = None


setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-dur-")


Collector = harness.Replies  # replies by request topic; a device that repeats


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CrashLoop(unittest.TestCase):
    def test_sigkill_at_random_moments_loses_nothing_and_starts_nothing_twice(self):
        AWS.reset()
        AWS.control(delay_ms=150)
        spool = os.path.join(TMP, "spool-crash")
        conf = config(BROKER.port, AWS.url, mqtt_extra='client_id = "gw-crash";',
                      gateway_extra=f'spool_dir = "{spool}"; deadline_ms = 60000; '
                                    'max_inflight = 8;', level="info")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        rnd = random.Random(4)
        requests = {}
        for i in range(240):
            topic = f"commands/crash-{i % 12}/c{i}/start"
            # half carry an id, half do not (their token is random, and spooled)
            requests[topic] = json.dumps({"id": i}) if i % 2 == 0 else ""
        kills = 0
        try:
            items = list(requests.items())
            for k, (topic, payload) in enumerate(items):
                dev.publish(topic, payload)
                if k % 30 == 29:
                    time.sleep(rnd.uniform(0.1, 0.6))
                    gw.proc.send_signal(signal.SIGKILL)
                    gw.proc.wait(5)
                    kills += 1
                    gw = Gateway(TMP, conf)
            # a device that heard nothing for a long time repeats the same
            # request; that must never be needed: the spool answers everything
            # (a repeat would hide a request lost by a kill)
            missing = col.wait_all(requests, timeout=90, retry_after=20)
            self.assertEqual(missing, [])
            self.assertEqual(col.resent, 0, "the device had to repeat requests")
            self.assertGreaterEqual(kills, 7)
            calls = AWS.calls()
            by_target = {}
            for c in calls:
                body = json.loads(c["body"])
                key = body["commandArn"]  # one command name per request
                by_target.setdefault(key, set()).add(c["clientToken"])
            self.assertEqual(len(by_target), len(requests))
            twice = {k: v for k, v in by_target.items() if len(v) != 1}
            self.assertEqual(twice, {}, "a request reached AWS with two client tokens")
            started = [c for c in calls if c["outcome"] == "started"]
            self.assertEqual(len(started), len(requests))
            for topic, rs in col.replies.items():
                self.assertTrue(all(r["status"] == "accepted" for r in rs), rs)
                self.assertEqual(len({r["executionId"] for r in rs}), 1, rs)
            resumed = "to resume from" in "".join(open(g.logpath).read() for g in
                                                   __import__("harness").STARTED[-kills:])
            self.assertTrue(resumed, "no restart found requests in the spool")
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)


class DeviceRetry(unittest.TestCase):
    def test_device_repeating_an_unanswered_request_starts_nothing_twice(self):
        # no spool: the gateway is killed while AWS is starting the command,
        # so the device never hears back and repeats the request (same id)
        AWS.reset()
        AWS.control(delay_ms=1500)
        conf = config(BROKER.port, AWS.url, mqtt_extra='client_id = "gw-devretry";')
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            req = {"commands/devretry-1/c1/start": json.dumps({"id": "again"})}
            dev.publish("commands/devretry-1/c1/start", req["commands/devretry-1/c1/start"])
            self.assertTrue(wait_for(lambda: AWS.calls(), 5))
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(5)
            # AWS finishes starting it with nobody left to hear the answer
            self.assertTrue(wait_for(lambda: AWS.calls()[0].get("outcome") == "started", 5))
            gw = Gateway(TMP, conf)
            AWS.control(delay_ms=0)
            self.assertEqual(col.wait_all(req, timeout=10, retry_after=1), [])
            self.assertGreaterEqual(col.resent, 1)
            calls = AWS.calls()
            self.assertEqual([c["outcome"] for c in calls], ["started", "replayed"])
            self.assertEqual(calls[0]["clientToken"], calls[1]["clientToken"])
            r = col.replies["commands/devretry-1/c1/start"]
            self.assertEqual(len(r), 1, r)
            self.assertEqual(r[0]["status"], "accepted")
            self.assertEqual(r[0]["executionId"], calls[0]["executionId"])
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)


class SpoolEdges(unittest.TestCase):
    def spool_conf(self, name, extra=""):
        spool = os.path.join(TMP, name)
        conf = config(BROKER.port, AWS.url, mqtt_extra=f'client_id = "gw-{name}";',
                      gateway_extra=f'spool_dir = "{spool}"; {extra}')
        return spool, conf

    def test_resumed_request_past_its_deadline_is_answered_expired(self):
        AWS.reset()
        AWS.control(delay_ms=5000)
        spool, conf = self.spool_conf("spool-expired", "deadline_ms = 1500;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            req = {"commands/exp-1/c1/start": json.dumps({"id": "e1"})}
            dev.publish("commands/exp-1/c1/start", req["commands/exp-1/c1/start"])
            self.assertTrue(wait_for(lambda: AWS.calls(), 5))
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(5)
            time.sleep(2)  # the deadline passes while the gateway is down
            gw = Gateway(TMP, conf)
            self.assertEqual(col.wait_all(req, timeout=10), [])
            r = col.replies["commands/exp-1/c1/start"][0]
            self.assertEqual(r["code"], "Expired")
            self.assertEqual(r["id"], "e1")
            self.assertIn("to resume from", gw.text())
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_spool_max_rejects_overloaded(self):
        AWS.reset()
        AWS.control(delay_ms=1000)
        spool, conf = self.spool_conf("spool-max", "spool_max = 2; max_inflight = 8;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            reqs = {f"commands/full-{i}/c1/start": json.dumps({"id": i}) for i in range(6)}
            for t_, p in reqs.items():
                dev.publish(t_, p)
            self.assertEqual(col.wait_all(reqs, timeout=15), [])
            codes = [col.replies[t_][0].get("code", "accepted") for t_ in reqs]
            self.assertEqual(codes.count("accepted"), 2)
            self.assertEqual(codes.count("Overloaded"), 4)
            self.assertIn("spool is full", json.dumps(col.replies))
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_torn_tail_is_skipped_with_a_log_line(self):
        AWS.reset()
        spool, conf = self.spool_conf("spool-torn")
        os.makedirs(spool, exist_ok=True)
        import struct
        import zlib

        def rec(body):
            return b"CGS1" + struct.pack("<II", len(body), zlib.crc32(body)) + body

        def s(b):
            return struct.pack("<I", len(b)) + b
        now = int(time.time() * 1000)
        add = (bytes([1]) + struct.pack("<QqqB", 5, now, now + 30000, 1) + s(b"torn-token-1") +
               s(b"commands/torn-1/c1/start") + s(b"") + bytes([0]) + s(b"") + s(b'{"id":"t1"}'))
        with open(os.path.join(spool, "spool.log"), "wb") as f:
            f.write(rec(add) + rec(add)[:20])  # one whole record, then a torn one
        dev = Device(BROKER.port)  # listening before the gateway resumes the request
        col = Collector(dev)
        gw = Gateway(TMP, conf)
        try:
            req = {"commands/torn-1/c1/start": ""}
            self.assertEqual(col.wait_all(req, timeout=10), [])
            self.assertEqual(col.replies["commands/torn-1/c1/start"][0]["status"], "accepted")
            self.assertIn("torn or corrupt record", gw.text())
            # a resumed request with an id gets the same derived token again
            self.assertEqual(AWS.calls()[0]["clientToken"],
                             __import__("hashlib").sha256(b"torn-1\nc1\nt1").hexdigest())
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)


class EndpointOutage(unittest.TestCase):
    def test_down_longer_than_retries_but_shorter_than_deadline(self):
        closed = ClosedPort()
        port = closed.port
        conf = config(BROKER.port, f"http://127.0.0.1:{port}",
                      aws_extra="max_attempts = 2; connect_timeout_ms = 300;",
                      gateway_extra="deadline_ms = 15000;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        aws = None
        try:
            requests = {f"commands/out-{i}/c1/start": json.dumps({"id": i}) for i in range(10)}
            for t, p in requests.items():
                dev.publish(t, p)
            # several retry rounds with nothing listening: each request tried
            # three times on average, more than max_attempts (a connection
            # refused sent nothing, so it does not use up an attempt)
            self.assertTrue(wait_for(lambda: gw.text().count("call token=") >= 3 * len(requests),
                                     15), gw.text()[-2000:])
            self.assertEqual([t for t in requests if col.answered(t)], [])
            closed.release()
            aws = FakeAws(TMP, http_port=port)
            self.assertEqual(col.wait_all(requests, timeout=15), [])
            for rs in col.replies.values():
                self.assertEqual(rs[0]["status"], "accepted")
        finally:
            dev.close()
            gw.stop()
            if aws:
                aws.stop()

    def test_down_past_the_deadline(self):
        closed = ClosedPort()
        port = closed.port
        conf = config(BROKER.port, f"http://127.0.0.1:{port}",
                      aws_extra="connect_timeout_ms = 300;", gateway_extra="deadline_ms = 2000;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        try:
            r, _ = dev.request("down-1", "c1", {"id": 1}, timeout=8)
            self.assertEqual(r["code"], "Unavailable")
            self.assertIs(r["retryable"], True)
        finally:
            dev.close()
            gw.stop()


class Burst(unittest.TestCase):
    def test_ten_times_over_capacity(self):
        AWS.reset()
        AWS.control(delay_ms=100)
        conf = config(BROKER.port, AWS.url, mqtt_extra="keepalive = 2;",
                      gateway_extra="queue_size = 40; max_inflight = 4; deadline_ms = 30000;",
                      level="info")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            base_rss = rss_kib(gw.proc.pid)
            requests = {f"commands/burst-{i % 20}/c{i}/start": json.dumps({"id": i})
                        for i in range(440)}
            for t, p in requests.items():
                dev.publish(t, p)
            self.assertEqual(col.wait_all(requests, timeout=60), [])
            codes = [rs[0].get("code", "accepted") for rs in col.replies.values()]
            self.assertGreater(codes.count("Overloaded"), 300)
            self.assertGreaterEqual(codes.count("accepted"), 40)
            self.assertEqual(set(codes), {"accepted", "Overloaded"})
            self.assertLess(rss_kib(gw.proc.pid) - base_rss, 16 * 1024)
            # the broker never lost the gateway: keepalive held under the burst
            self.assertNotIn("connection lost", gw.text())
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)


class HostilePayloads(unittest.TestCase):
    def test_thousands_of_hostile_payloads_each_answered(self):
        rnd = random.Random(7)
        # every payload goes to one thing: its queue (per_thing_queue, 64 by
        # default) holds them all, so a slow (sanitizer) build is not
        # Overloaded by the valid ones among them; this test is about parsing
        gw = Gateway(TMP, config(BROKER.port, AWS.url, level="warn",
                                 gateway_extra="per_thing_queue = 4096;"), wait_ready=False)
        dev = Device(BROKER.port)
        col = Collector(dev)
        # at level warn "ready" is not logged: it is ready once it answers a
        # probe (one every 0.5 s: those sent before it subscribed are lost)
        probes = []
        for n in range(20):
            probes.append(f"commands/hostile-ok/p{n}/start")
            dev.publish(probes[-1], json.dumps({"id": "probe"}))
            if wait_for(lambda: any(col.answered(t) for t in probes), 0.5):
                break
        else:
            dev.close()
            gw.stop()
            self.fail("the gateway answered no probe in 10 s:\n" + gw.text())
        samples = [b"\xff\xfe\xfd", b"{" * 5000 + b"}" * 5000, b"[" * 60000,
                   b'{"parameters":{"a":1' + b"9" * 400 + b"}}", b'{"id":"a\x00b"}',
                   b'{"id":1,"id":2}', b"\x00" * 64, b'{"parameters":{"x":{"S":"' + b"\xc3" + b'"}}}',
                   b'{"parameters":{"x":1e999999}}', b'"' + b"\\u0000" * 100 + b'"',
                   b'{"timeout":-1e308}', b"null", b"{\"id\":" + b"1" * 100 + b"}"]
        requests = {}
        try:
            for i in range(3000):
                if i < len(samples):
                    p = samples[i]
                else:
                    n = rnd.choice((0, 1, 8, 64, 300))
                    p = bytes(rnd.getrandbits(8) for _ in range(n))
                    if i % 3 == 0:
                        p = b'{"id":' + p + b"}"
                topic = f"commands/hostile/h{i}/start"
                requests[topic] = p
                dev.publish(topic, p)
            self.assertEqual(col.wait_all(requests, timeout=60), [])
            self.assertIsNone(gw.proc.poll())  # still alive
            after = {"commands/hostile-ok/c1/start": json.dumps({"id": "after"})}
            dev.publish("commands/hostile-ok/c1/start", after["commands/hostile-ok/c1/start"])
            self.assertEqual(col.wait_all(after, timeout=10), [])
            self.assertEqual(col.replies["commands/hostile-ok/c1/start"][0]["status"], "accepted")
            codes = {rs[0].get("code") for t, rs in col.replies.items() if "/hostile/" in t}
            self.assertEqual(codes - {"InvalidRequest", "PayloadTooLarge", None}, set())
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)


class BrokerRestart(unittest.TestCase):
    def started(self):
        return len([c for c in AWS.calls() if c.get("outcome") == "started"])

    def test_broker_restart_mid_load(self):
        AWS.reset()
        AWS.control(delay_ms=300)
        # a broker that keeps its sessions across the restart, and a device
        # whose session it keeps: the replies wait for the device in the
        # broker. The order is the worst one, made on purpose: the device
        # comes back only after the gateway has reconnected and published
        # every reply (an observer with a kept session sees them go out).
        broker = Mosquitto(TMP, persistence=True)
        conf = config(broker.port, AWS.url, mqtt_extra='client_id = "gw-restart";',
                      gateway_extra="max_inflight = 4; deadline_ms = 60000;")
        gw = Gateway(TMP, conf)
        dev = Device(broker.port, session_expiry=300)
        col = Collector(dev)
        seen = Device(broker.port, session_expiry=300, subscribe=("commands/+/+/start/+",))
        try:
            requests = {f"commands/br-{i}/c1/start": json.dumps({"id": i}) for i in range(30)}
            for t, p in requests.items():
                dev.publish(t, p)
            # mid-load: some replies out, most requests still at AWS
            self.assertTrue(wait_for(lambda: self.started() >= 4, 20))
            # The broker goes between two rounds of replies (AWS answers
            # every 300 ms), not while the gateway writes one: Paho 1.3.12
            # frees a QoS 1 publish whose socket write fails, yet keeps it
            # for its session's resend (README, "Delivery guarantees").
            n = len(seen.replies("commands/"))
            self.assertTrue(wait_for(lambda: len(seen.replies("commands/")) > n, 20))
            time.sleep(0.1)
            # The device leaves with DISCONNECT, its session kept: a device
            # that merely stopped reading could owe a PUBACK for a reply it
            # already took, and QoS 1 would rightly send that reply again
            dev.c.disconnect()
            self.assertTrue(wait_for(lambda: not dev.c.is_connected(), 5))
            dev.c.loop_stop()  # the device stays away until told
            port = broker.port
            broker.stop()
            self.assertTrue(wait_for(lambda: "mqtt: connection lost" in gw.text(), 20))
            # replies are made while the broker is away
            away = self.started()
            self.assertTrue(wait_for(lambda: self.started() >= away + 4, 20))
            broker = Mosquitto.__new__(Mosquitto)
            Mosquitto.__init__(broker, TMP, port=port, persistence=True)
            # the gateway connected again after the loss, and every reply went out
            self.assertTrue(wait_for(lambda: "mqtt: connected" in
                                     gw.text().rsplit("mqtt: connection lost", 1)[1], 20),
                            gw.text()[-2000:])
            self.assertTrue(wait_for(lambda: len({m.topic for m in seen.replies("commands/")})
                                     >= len(requests), 40), gw.text()[-2000:])
            dev.c.reconnect()
            dev.c.loop_start()
            # replies made while the broker was away are delivered after it is
            # back: the device never has to ask again
            self.assertEqual(col.wait_all(requests, timeout=40, retry_after=8), [])
            self.assertEqual(col.resent, 0, "the device had to repeat requests")
            for t in requests:
                self.assertEqual(len(col.replies[t]), 1, t)
                self.assertEqual(col.replies[t][0]["status"], "accepted")
            self.assertEqual(self.started(), len(requests))
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            seen.close()
            gw.stop()
            broker.stop()


class Fairness(unittest.TestCase):
    def test_runaway_thing_is_rate_limited_without_slowing_others(self):
        AWS.reset()
        conf = config(BROKER.port, AWS.url, gateway_extra="per_thing_rate = 2.0;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            requests = {f"commands/runaway/c{i}/start": json.dumps({"id": i}) for i in range(20)}
            for t, p in requests.items():
                dev.publish(t, p)
            calm = {f"commands/calm-{i}/c1/start": json.dumps({"id": i}) for i in range(5)}
            for t, p in calm.items():
                dev.publish(t, p)
            self.assertEqual(col.wait_all({**requests, **calm}, timeout=15), [])
            codes = [col.replies[t][0].get("code", "accepted") for t in requests]
            self.assertEqual(codes.count("accepted"), 2)  # the burst of a 2/s bucket
            self.assertEqual(codes.count("Overloaded"), 18)
            for t in calm:
                self.assertEqual(col.replies[t][0]["status"], "accepted")
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_waiting_requests_are_served_round_robin_across_things(self):
        AWS.reset()
        AWS.control(delay_ms=100)
        conf = config(BROKER.port, AWS.url, gateway_extra="max_inflight = 1;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            busy = {f"commands/busy/c{i}/start": json.dumps({"id": i}) for i in range(15)}
            for t, p in busy.items():
                dev.publish(t, p)
            time.sleep(0.15)
            late = {"commands/late/c1/start": json.dumps({"id": "late"})}
            dev.publish("commands/late/c1/start", late["commands/late/c1/start"])
            self.assertEqual(col.wait_all({**busy, **late}, timeout=20), [])
            things = [json.loads(c["body"])["targetArn"].rsplit("/", 1)[1] for c in AWS.calls()]
            # the late thing waits for at most one round, not for all of busy's backlog
            self.assertLessEqual(things.index("late"), 4, things)
            # and busy's own requests start in the order they arrived
            cmds = [json.loads(c["body"])["commandArn"].rsplit("/", 1)[1] for c in AWS.calls()
                    if "thing/busy" in c["body"]]
            self.assertEqual(cmds, [f"c{i}" for i in range(15)])
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)


class SendRate(unittest.TestCase):
    def test_max_rate_caps_calls_to_aws(self):
        AWS.reset()
        conf = config(BROKER.port, AWS.url, aws_extra="max_rate = 10.0;")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            reqs = {f"commands/rate-{i % 5}/c{i}/start": json.dumps({"id": i}) for i in range(30)}
            for t_, p in reqs.items():
                dev.publish(t_, p)
            self.assertEqual(col.wait_all(reqs, timeout=20), [])
            times = sorted(c["time"] for c in AWS.calls())
            # 30 calls at 10/s with a burst of 10: about two seconds from first to last
            self.assertGreaterEqual(times[-1] - times[0], 1.5)
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)


class ReloadUnderLoad(unittest.TestCase):
    def test_sighup_under_load_drops_and_duplicates_nothing(self):
        AWS.reset()
        AWS.control(delay_ms=30)
        def conf(inflight):  # the same client id in every version of the file
            return config(BROKER.port, AWS.url, mqtt_extra='client_id = "gw-hup";',
                          gateway_extra=f"max_inflight = {inflight};")
        gw = Gateway(TMP, conf(8))
        dev = Device(BROKER.port)
        col = Collector(dev)
        try:
            requests = {}
            for i in range(200):
                t = f"commands/hup-{i % 7}/c{i}/start"
                requests[t] = json.dumps({"id": i})
                dev.publish(t, requests[t])
                if i % 50 == 25:
                    gw.rewrite(conf(4 + i % 5))
                    gw.signal(signal.SIGHUP)
                    # signals sent together coalesce: each waits for its reload
                    n = i // 50 + 1
                    self.assertTrue(wait_for(
                        lambda: gw.text().count("configuration reloaded") >= n, 10))
            self.assertEqual(col.wait_all(requests, timeout=30), [])
            self.assertEqual(gw.text().count("configuration reloaded"), 4)
            for t, rs in col.replies.items():
                self.assertEqual(len(rs), 1, t)
                self.assertEqual(rs[0]["status"], "accepted")
            self.assertEqual(len([c for c in AWS.calls() if c["outcome"] == "started"]), 200)
        finally:
            AWS.control(delay_ms=0)
            dev.close()
            self.assertEqual(gw.stop(), 0)


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report."""
    allowed_rc = (0, -9)  # -9: killed on purpose


if __name__ == "__main__":
    harness.main()
