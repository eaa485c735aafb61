"""Following an execution to its end (SPEC section 8, issue 12): one test per
sentence, against a real mosquitto and tests/fake_aws.py, whose
GetCommandExecution checks the SigV4 signature for service "iot" and the
targetArn, and plays a scripted lifecycle per command (lc-<name>) or per
parameter "lifecycle". Every wait is bounded."""
import itertools
import json
import os
import signal
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Device, FakeAws, Gateway, Mosquitto, config, wait_for  # noqa

TMP = BROKER = AWS = None
SEQ = itertools.count(1)

ROUTES = """
routes = ( { request_topic = "commands/{thing}/{command}/start"; follow = true; },
           { request_topic = "plain/{thing}/{command}/start";
             reply_topic = "plain/{thing}/{command}/start/{status}"; } );
"""


setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-follow-")


def polls():
    return json.loads(urllib.request.urlopen(AWS.url + "/_polls", timeout=5).read())


# Polls back off from a 250 ms step here (gateway.follow_poll_ms; 1000 by
# default): the lifecycles' ends are seen sooner. Polling checks the default.
FAST = "follow_poll_ms = 250;"


def gateway(aws_extra="", gateway_extra="", extra=ROUTES):
    if "follow_poll_ms" not in gateway_extra:
        gateway_extra = FAST + " " + gateway_extra
    return Gateway(TMP, config(BROKER.port, AWS.url, extra,
                               aws_extra=f'control_endpoint = "{AWS.url}"; ' + aws_extra,
                               gateway_extra=gateway_extra))


class Follow:
    """One followed request: its reply and the messages on its execution topic."""

    def __init__(self, dev, command, params=None, thing=None, qos=1, correlation=None,
                 response_topic=None, prefix="commands"):
        self.dev = dev
        self.thing = thing or f"pump-{next(SEQ)}-{os.getpid()}"
        self.command = command
        self.id = f"r-{next(SEQ)}-{time.time_ns()}"
        payload = {"id": self.id}
        if params:
            payload["parameters"] = params
        base = f"{prefix}/{self.thing}/{command}/start"
        kw = {"qos": qos}
        if correlation is not None:
            kw["correlation"] = correlation
        if response_topic:
            kw["response_topic"] = response_topic
        reply_prefix = response_topic or base + "/"
        before = len(dev.replies(reply_prefix))
        dev.publish(base, payload, **kw)
        got = dev.wait_reply(reply_prefix, before + 1, 10)
        self.reply_msg = got[before]
        self.reply_at = time.time()
        self.reply = json.loads(self.reply_msg.payload)
        assert self.reply["status"] == "accepted", self.reply
        self.exec_id = self.reply["executionId"]
        self.topic = f"{prefix}/{self.thing}/{command}/executions/{self.exec_id}"

    def messages(self):
        return [m for m in self.dev.replies(self.topic) if m.topic == self.topic]

    def docs(self):
        return [json.loads(m.payload) for m in self.messages()]

    def wait_final(self, timeout=15):
        ok = wait_for(lambda: any(d.get("final") for d in self.docs()), timeout, 0.05)
        if not ok:
            raise AssertionError(f"no final message on {self.topic} within {timeout}s; "
                                 f"got {self.docs()}")
        return self.docs()

    def polls(self):
        return [p for p in polls() if p["executionId"] == self.exec_id]


class FollowCase(unittest.TestCase):
    aws_extra = ""
    gateway_extra = ""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(cls.aws_extra, cls.gateway_extra)
        cls.dev = Device(BROKER.port, subscribe=("commands/#", "plain/#", "answers/#"))

    @classmethod
    def tearDownClass(cls):
        cls.dev.close()
        cls.gw.stop()

    def setUp(self):
        AWS.reset()


class Polling(FollowCase):
    gateway_extra = "follow_poll_ms = 1000;"  # the default schedule

    def test_polls_get_command_execution_signed_for_iot_with_the_target_arn(self):
        f = Follow(self.dev, "open-valve")
        f.wait_final()
        ps = f.polls()
        self.assertGreater(len(ps), 0)
        for p in ps:
            q = urllib.parse.parse_qs(p["query"])
            self.assertEqual(q["includeResult"], ["true"])
            self.assertEqual(q["targetArn"],
                             [f"arn:aws:iot:eu-west-1:123456789012:thing/{f.thing}"])
            self.assertIn("/eu-west-1/iot/aws4_request", p["headers"]["authorization"])
            self.assertNotIn(p["outcome"], ("InvalidSignatureException", "target-mismatch",
                                            "IncompleteSignatureException"))
        self.assertEqual(ps[-1]["outcome"], "SUCCEEDED")

    def test_first_poll_within_one_second_of_the_accepted_reply(self):
        f = Follow(self.dev, "lc-never")
        first = wait_for(lambda: f.polls(), 5)
        self.assertTrue(first, "no poll")
        self.assertLessEqual(first[0]["time"] - f.reply_at, 1.0)


class Backoff(FollowCase):
    gateway_extra = "follow_poll_ms = 400;"

    def test_later_polls_back_off(self):
        f = Follow(self.dev, "lc-never")
        wait_for(lambda: len(f.polls()) >= 5, 20)
        t = [p["time"] for p in f.polls()]
        self.assertGreaterEqual(len(t), 5, t)
        gaps = [b - a for a, b in zip(t, t[1:])]
        # 0.4, 0.8, 1.6, 3.2 s less up to a quarter of jitter (1, 2, 4, 8 s at
        # the default step): each at least 1.4x the one before
        for a, b in zip(gaps, gaps[1:]):
            self.assertGreater(b, a * 1.4, gaps)
        self.assertLessEqual(max(gaps), 30.5)
        # the configured step, not the default one (at least 0.75 s there)
        self.assertLess(gaps[0], 0.7, gaps)


class SharedClock(FollowCase):
    """One clock offset for every call to AWS: what a start learned from
    AWS's Date signs the polls too (its own gateway: the offset is kept)."""

    def test_polls_are_signed_with_the_clock_offset_a_start_learned(self):
        AWS.control(skew_s=900)
        try:
            f = Follow(self.dev, "open-valve")
            self.assertEqual([c["outcome"] for c in AWS.calls()],
                             ["InvalidSignatureException", "started"])
            self.assertEqual(f.wait_final()[-1]["status"], "SUCCEEDED")
            outcomes = [p["outcome"] for p in f.polls()]
            self.assertNotIn("InvalidSignatureException", outcomes)
            self.assertEqual(outcomes[-1], "SUCCEEDED")
        finally:
            AWS.control(reset=True, skew_s=0)


class Lifecycle(FollowCase):
    def test_throttled_polls_keep_following(self):
        AWS.control(poll_rules=[{"times": 2, "status": 429, "code": "ThrottlingException"}])
        f = Follow(self.dev, "open-valve")
        final = f.wait_final(10)[-1]
        self.assertEqual(final["status"], "SUCCEEDED")
        self.assertIn("ThrottlingException", [p["outcome"] for p in f.polls()])

    def test_each_status_change_published_once_in_lifecycle_order(self):
        # stretched: CREATED until 0.9 s, IN_PROGRESS until 3 s, then SUCCEEDED
        f = Follow(self.dev, "open-valve", {"duration_s": 3})
        docs = f.wait_final(20)
        statuses = [d["status"] for d in docs]
        self.assertEqual(statuses, ["CREATED", "IN_PROGRESS", "SUCCEEDED"], docs)
        self.assertEqual([d["final"] for d in docs], [False, False, True])
        for d in docs:
            self.assertEqual(d["id"], f.id)
            self.assertEqual(d["executionId"], f.exec_id)
        time.sleep(2)
        self.assertEqual(len(f.messages()), 3, "nothing after the final message")

    def test_a_repeated_request_is_followed_once(self):
        f = Follow(self.dev, "open-valve", {"duration_s": 3})
        base = f"commands/{f.thing}/open-valve/start"
        self.dev.publish(base, {"id": f.id, "parameters": {"duration_s": 3}})
        got = self.dev.wait_reply(base + "/", 2, 10)
        self.assertEqual(json.loads(got[1].payload)["executionId"], f.exec_id)
        docs = f.wait_final(15)
        time.sleep(1.5)
        statuses = [d["status"] for d in f.docs()]
        self.assertEqual(len(statuses), len(set(statuses)), statuses)
        self.assertEqual(statuses[-1], "SUCCEEDED", docs)

    def test_messages_at_the_request_qos_not_retained(self):
        for qos in (0, 1):
            f = Follow(self.dev, "open-valve", qos=qos)
            f.wait_final()
            for m in f.messages():
                self.assertEqual(m.qos, qos)
                self.assertFalse(m.retain)

    def test_final_carries_status_reason_and_result_as_aws_gives_them(self):
        f = Follow(self.dev, "open-valve")
        final = f.wait_final()[-1]
        self.assertEqual(final["status"], "SUCCEEDED")
        self.assertTrue(final["final"])
        self.assertEqual(final["statusReason"], {"reasonCode": "OK",
                                                 "reasonDescription": "the valve is open"})
        self.assertEqual(final["result"], {"message": {"S": "done"}, "position": {"S": "open"}})

    def test_statuses_without_reason_or_result_have_neither(self):
        f = Follow(self.dev, "open-valve", {"duration_s": 3})
        for d in f.wait_final(20)[:-1]:
            self.assertNotIn("statusReason", d)
            self.assertNotIn("result", d)

    def test_failed_is_final(self):
        f = Follow(self.dev, "lc-fail")
        final = f.wait_final()[-1]
        self.assertEqual((final["status"], final["final"]), ("FAILED", True))
        self.assertEqual(final["statusReason"]["reasonCode"], "VALVE_STUCK")
        time.sleep(2.5)
        self.assertEqual(len([p for p in f.polls() if p["outcome"] == "FAILED"]), 1,
                         "following ended at FAILED")

    def test_rejected_is_final(self):
        f = Follow(self.dev, "lc-reject")
        final = f.wait_final()[-1]
        self.assertEqual((final["status"], final["final"]), ("REJECTED", True))
        self.assertEqual(final["statusReason"]["reasonCode"], "BUSY")

    def test_timed_out_without_device_answer_is_not_final_and_following_goes_on(self):
        f = Follow(self.dev, "lc-timeout-late")
        docs = f.wait_final(20)
        timed = [d for d in docs if d["status"] == "TIMED_OUT"]
        self.assertEqual(len(timed), 1, docs)
        self.assertFalse(timed[0]["final"])
        self.assertEqual(timed[0]["statusReason"]["reasonCode"], "$NO_RESPONSE_FROM_DEVICE")
        self.assertEqual((docs[-1]["status"], docs[-1]["final"]), ("SUCCEEDED", True))
        self.assertEqual(docs[-1]["result"], {"message": {"S": "late"}})

    def test_other_timed_out_is_final(self):
        f = Follow(self.dev, "lc-timeout")
        final = f.wait_final()[-1]
        self.assertEqual((final["status"], final["final"]), ("TIMED_OUT", True))
        self.assertEqual(final["statusReason"]["reasonCode"], "DEVICE_TIMEOUT")

    def test_lifecycle_chosen_by_parameter(self):
        f = Follow(self.dev, "open-valve", {"lifecycle": "reject"})
        self.assertEqual(f.wait_final()[-1]["status"], "REJECTED")

    def test_404_right_after_the_start_is_retried(self):
        f = Follow(self.dev, "lc-notfound-first")
        docs = f.wait_final(20)
        self.assertEqual((docs[-1]["status"], docs[-1]["final"]), ("SUCCEEDED", True))
        self.assertNotIn("code", docs[-1])
        outcomes = [p["outcome"] for p in f.polls()]
        self.assertEqual(outcomes[0], "ResourceNotFoundException", outcomes)


class EarlyEnd(FollowCase):
    gateway_extra = FAST + " follow_max_s = 3;"

    def test_403_ends_with_one_final_message_carrying_the_code(self):
        f = Follow(self.dev, "lc-forbidden")
        docs = f.wait_final()
        self.assertEqual(docs, [{"id": f.id, "executionId": f.exec_id, "final": True,
                                 "status": None, "code": "AccessDeniedException",
                                 "retryable": False}])
        n = len(f.polls())
        time.sleep(2)
        self.assertEqual(len(f.polls()), n, "no poll after the end")
        self.assertEqual(len(f.messages()), 1)

    def test_follow_max_s_ends_with_one_final_message_and_the_last_status(self):
        f = Follow(self.dev, "lc-never")
        start = time.time()
        docs = f.wait_final(10)
        self.assertGreaterEqual(time.time() - start, 2.5)
        final = docs[-1]
        self.assertEqual(final, {"id": f.id, "executionId": f.exec_id, "final": True,
                                 "status": "IN_PROGRESS", "code": "Expired",
                                 "retryable": True})
        self.assertEqual(len([d for d in docs if d["final"]]), 1)
        time.sleep(2)
        self.assertEqual(len([d for d in f.docs() if d["final"]]), 1)



class Mqtt5(FollowCase):
    def test_correlation_data_on_every_message(self):
        corr = b"\x00corr-\xff"
        f = Follow(self.dev, "open-valve", {"duration_s": 3}, correlation=corr)
        f.wait_final(20)
        msgs = f.messages()
        self.assertGreaterEqual(len(msgs), 2)
        for m in msgs:
            self.assertEqual(m.properties.CorrelationData, corr)

    def test_response_topic_takes_the_reply_and_execution_topic_the_messages(self):
        corr = b"c-42"
        t = f"pump-rt-{os.getpid()}"
        f = Follow(self.dev, "open-valve", thing=t, correlation=corr,
                   response_topic=f"commands/{t}/answers/me")
        self.assertEqual(f.reply_msg.topic, f"commands/{t}/answers/me")
        final = f.wait_final()[-1]
        self.assertEqual(final["status"], "SUCCEEDED")
        self.assertEqual(f.messages()[-1].properties.CorrelationData, corr)


class WithoutFollow(FollowCase):
    def test_a_route_without_follow_publishes_nothing_extra(self):
        f = Follow(self.dev, "open-valve", prefix="plain")
        time.sleep(3)
        request = f"plain/{f.thing}/{f.command}/start"  # the device's own, seen back
        extra = [m.topic for m in self.dev.replies(f"plain/{f.thing}/")
                 if m.topic not in (f.reply_msg.topic, request)]
        self.assertEqual(extra, [])
        self.assertEqual(len(self.dev.replies(f"plain/{f.thing}/{f.command}/start/")), 1)
        self.assertEqual(f.polls(), [], "no GetCommandExecution for a route without follow")
        self.assertEqual(self.dev.replies(f"commands/{f.thing}/"), [])


class OwnRate(FollowCase):
    aws_extra = "follow_max_rate = 2.0;"

    def test_polls_keep_their_own_rate_and_never_starve_new_requests(self):
        fs = [Follow(self.dev, "lc-never") for _ in range(8)]
        time.sleep(4)
        t = sorted(p["time"] for p in polls())
        self.assertGreater(len(t), 4)
        # the bucket holds max(1, rate) tokens: over any 2 s at most 2*2+2 polls
        for i in range(len(t)):
            in_window = [x for x in t if t[i] <= x < t[i] + 2.0]
            self.assertLessEqual(len(in_window), 6, t)
        # a new request is answered at once meanwhile
        start = time.time()
        Follow(self.dev, "lc-never", prefix="plain")
        self.assertLess(time.time() - start, 1.0)
        # every follow got polled: round-robin across targets
        wait_for(lambda: all(f.polls() for f in fs), 8)
        self.assertTrue(all(f.polls() for f in fs), [len(f.polls()) for f in fs])


class Logs(FollowCase):
    def test_one_log_line_per_final_outcome(self):
        f = Follow(self.dev, "lc-fail")
        f.wait_final()
        ok = wait_for(lambda: f.exec_id in self.gw.text(), 5)
        self.assertTrue(ok)
        lines = [ln for ln in self.gw.text().splitlines()
                 if f.exec_id in ln and "outcome=" in ln and "follow" in ln]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("outcome=FAILED", lines[0])

    def test_the_log_line_counts_every_poll_made(self):
        f = Follow(self.dev, "open-valve")  # CREATED, IN_PROGRESS, SUCCEEDED: several polls
        f.wait_final()
        ok = wait_for(lambda: any(f.exec_id in ln and "outcome=" in ln
                                  for ln in self.gw.text().splitlines()), 5)
        self.assertTrue(ok)
        line = [ln for ln in self.gw.text().splitlines()
                if f.exec_id in ln and "outcome=" in ln][0]
        made = len(f.polls())
        self.assertGreater(made, 1)
        self.assertIn(f" polls={made} ", line)


class Stop(unittest.TestCase):
    def test_stopping_without_a_spool_still_sends_one_final_message(self):
        AWS.reset()
        gw = gateway()
        dev = Device(BROKER.port, subscribe=("commands/#",))
        try:
            f = Follow(dev, "lc-never")
            ok = wait_for(lambda: any(d["status"] == "IN_PROGRESS" for d in f.docs()), 8)
            self.assertTrue(ok, f.docs())
            self.assertEqual(gw.stop(), 0)
            final = f.wait_final(5)[-1]
            self.assertEqual(final, {"id": f.id, "executionId": f.exec_id, "final": True,
                                     "status": "IN_PROGRESS", "code": "Unavailable",
                                     "retryable": True})
        finally:
            dev.close()
            gw.stop()


class Stats(unittest.TestCase):
    def test_stats_count_follows_polls_and_final_statuses(self):
        AWS.reset()
        prom = os.path.join(TMP, f"follow-{time.time_ns()}.prom")
        extra = ROUTES + f'stats: {{ file = "{prom}"; topic = "cmdgate/{{client_id}}/stats"; interval = 1; }};'
        gw = gateway(extra=extra)
        dev = Device(BROKER.port, subscribe=("commands/#", "cmdgate/#"))
        try:
            Follow(dev, "open-valve").wait_final()
            Follow(dev, "lc-fail").wait_final()
            Follow(dev, "lc-never")

            def stats():
                docs = [json.loads(m.payload) for m in dev.replies("cmdgate/")
                        if m.topic.endswith("/stats")]
                return docs and docs[-1].get("follows")
            ok = wait_for(lambda: (stats() or {}).get("finished", {}).get("FAILED") == 1
                          and stats().get("active") == 1, 5)
            self.assertTrue(ok, stats())
            s = stats()
            self.assertEqual(s["finished"]["SUCCEEDED"], 1)
            self.assertGreaterEqual(s["polls"], 3)
            with open(prom) as fh:
                text = fh.read()
            self.assertIn('cmdgate_follows_finished_total{status="FAILED"} 1', text)
            self.assertIn("cmdgate_follows_active 1", text)
        finally:
            dev.close()
            gw.stop()


class CrashAndResume(unittest.TestCase):
    def test_sigkill_and_restart_with_a_spool_publish_the_final_message_once(self):
        AWS.reset()
        spool = tempfile.mkdtemp(prefix="spool-", dir=TMP)
        gx = f'spool_dir = "{spool}";'
        gw = gateway(gateway_extra=gx)
        dev = Device(BROKER.port, subscribe=("commands/#",))
        try:
            # IN_PROGRESS from 0.3 s to 6 s, then SUCCEEDED
            f = Follow(dev, "open-valve", {"duration_s": 6})
            ok = wait_for(lambda: any(d["status"] == "IN_PROGRESS" for d in f.docs()), 8)
            self.assertTrue(ok, f.docs())
            time.sleep(0.3)  # the STATUS record is written at the next loop turn
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(5)
            gw.stop()
            gw = gateway(gateway_extra=gx)
            docs = f.wait_final(20)
            time.sleep(2)
            docs = f.docs()
            self.assertEqual([d["status"] for d in docs if d["final"]], ["SUCCEEDED"], docs)
            self.assertEqual([d["status"] for d in docs].count("IN_PROGRESS"), 1, docs)
            self.assertIn("resumed from the spool", gw.text())
        finally:
            dev.close()
            gw.stop()
        # and a third start finds nothing left to follow
        gw = gateway(gateway_extra=gx)
        try:
            time.sleep(1)
            self.assertNotIn("resumed from the spool", gw.text())
        finally:
            gw.stop()


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report."""
    allowed_rc = (0, -9)  # -9: killed on purpose


if __name__ == "__main__":
    harness.main()
