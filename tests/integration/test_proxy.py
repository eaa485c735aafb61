"""Standing in for LAN machines (SPEC section 9, issue 17): the request path
(AWS IoT Core -> cmdgate's link -> the local broker -> the machine) and the
answer path (the machine -> cmdgate's checks -> AWS -> the verdict back),
one test per sentence, against the local AWS IoT Core stand-in
(tests/iotcore.py: real mosquitto, mTLS, a link may touch only its own
thing's topics) and the Commands service in tests/fake_aws.py
(tests/fake_commands.py: AWS's update rules, every update recorded). Links,
durability, reload, versions, --check, stats and the whole loop are in
test_proxy_ops.py. Every wait is bounded."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_kit import Machine, World, json, main, prop_count, props, wait_for  # noqa: E402
import harness  # noqa: E402
import iotcore  # noqa: E402

W = None


def setUpModule():
    global W
    W = World("proxy")


def tearDownModule():
    W.stop()


class Case(unittest.TestCase):
    """One gateway (MQTT 5 on both sides, a spool) standing in for N things,
    one machine per thing."""
    n_things = 3

    @classmethod
    def setUpClass(cls):
        cls.things = W.things(cls.n_things)
        cls.spool = os.path.join(W.tmp, f"spool-{cls.__name__}")
        os.makedirs(cls.spool, mode=0o700)
        cls.gw = W.gateway(cls.things, gateway_extra=f'spool_dir = "{cls.spool}";')
        cls.machines = {t: Machine(W.broker.port, t) for t in cls.things}

    @classmethod
    def tearDownClass(cls):
        for m in cls.machines.values():
            m.close()
        cls.gw.stop()

    def tearDown(self):
        W.control(reset=True)

    def thing(self, i=0):
        return self.things[i], self.machines[self.things[i]]


class Links(Case):
    def test_one_link_per_thing_client_id_is_the_thing_clean_start_off(self):
        for t in self.things:
            c = W.core.links(t)[-1]
            self.assertEqual((c["client_id"], c["protocol"], c["clean"], c["user"], c["keepalive"]),
                             (t, 5, False, iotcore.GATEWAY_CN, 30), c)
            self.assertEqual(len(W.core.links(t)), 1, W.core.links(t))

    def test_each_link_subscribes_to_the_five_topics_at_qos_1(self):
        for t in self.things:
            subs = set(W.core.subscriptions(t))
            want = {(f"$aws/commands/things/{t}/executions/+/{f}", 1) for f in
                    ("request/json", "request/cbor", "request", "response/accepted/json",
                     "response/rejected/json")}
            self.assertEqual(subs, want)

    def test_the_local_connection_stays_the_one_it_is(self):
        # the links are on AWS's side only: the local broker sees the
        # gateway's one client, connected once, and no thing's client id
        import re
        with open(self.gw.conf) as f:
            cid = re.search(r'client_id = "([^"]+)"', f.read()).group(1)
        with open(W.broker.log.name) as f:
            log = f.read()
        self.assertEqual(log.count(f" as {cid} "), 1, cid)
        for t in self.things:
            self.assertNotIn(f" as {t} ", log)
        self.assertEqual(self.gw.text().count("ready: subscribed"), 1)


class RequestPath(Case):
    def test_json_request_delivered_byte_for_byte_on_aws_own_topic(self):
        t, m = self.thing()
        payload = b'{ "op" :"open",\n  "speed":  5 , "x":"\xc3\xa9" }'
        e = W.run(t, payload, "json", timeout_s=30)
        got = m.wait_request(e)
        self.assertEqual(got.topic, f"$aws/commands/things/{t}/executions/{e}/request/json")
        self.assertEqual(got.payload, payload)
        self.assertEqual(got.qos, 1)
        self.assertEqual(props(got, "ContentType"), "application/json")

    def test_remaining_message_expiry_in_whole_seconds(self):
        t, m = self.thing()
        e = W.run(t, timeout_s=20, expiry=20)
        got = m.wait_request(e)
        # 20 s on AWS's publish; each broker and cmdgate round down
        self.assertIn(props(got, "MessageExpiryInterval"), (17, 18, 19, 20))

    def test_cbor_request_delivered_byte_for_byte(self):
        t, m = self.thing(1)
        cbor = bytes.fromhex("a2636f7064656f70656e657370656564182a")  # {"op":"open","speed":42}
        e = W.run(t, cbor, "cbor")
        got = m.wait_request(e)
        self.assertEqual(got.topic, f"$aws/commands/things/{t}/executions/{e}/request/cbor")
        self.assertEqual(got.payload, cbor)
        self.assertEqual(props(got, "ContentType"), "application/cbor")

    def test_raw_request_of_32_kib_delivered_byte_for_byte(self):
        t, m = self.thing(2)
        raw = bytes(range(256)) * 128  # 32 KiB, every byte value, NULs included
        e = W.run(t, raw, "raw", content_type="application/x-plc")
        got = m.wait_request(e)
        self.assertEqual(got.topic, f"$aws/commands/things/{t}/executions/{e}/request")
        self.assertEqual(got.payload, raw)
        self.assertEqual(props(got, "ContentType"), "application/x-plc")

    def test_a_request_without_message_expiry_is_forwarded_without_one(self):
        t, m = self.thing()
        e = W.run(t, expiry=None)
        got = m.wait_request(e)
        self.assertIsNone(props(got, "MessageExpiryInterval"))

    def test_expired_request_is_not_forwarded_and_is_logged(self):
        t, m = self.thing(1)
        late = W.run(t, expiry=1)  # less than 1 s left once cmdgate has it
        marker = W.run(t)
        m.wait_request(marker)
        time.sleep(0.5)
        self.assertEqual(m.requests(late), [])
        self.assertTrue(wait_for(lambda: any(late in x and "expir" in x.lower()
                                             for x in self.gw.text().splitlines()), 5),
                        self.gw.text()[-2000:])

    def test_duplicates_from_aws_are_forwarded_once(self):
        t, m = self.thing(2)
        e = W.run(t)
        m.wait_request(e)
        W.control(redeliver=e)
        W.control(redeliver=e)
        marker = W.run(t)
        m.wait_request(marker)
        time.sleep(0.3)
        self.assertEqual(len(W.execution(e)["publishes"]), 3)
        self.assertEqual(len(m.requests(e)), 1)


    def test_an_execution_is_forgotten_once_its_final_answer_is_accepted(self):
        t, m = self.thing()
        e = W.run(t)
        m.wait_request(e)
        m.answer(e, {"status": "SUCCEEDED"})
        m.wait_verdicts(e)
        time.sleep(0.2)
        W.control(redeliver=e)  # a delivery after the end is a new one
        self.assertTrue(wait_for(lambda: len(m.requests(e)) == 2, 5), len(m.requests(e)))


BAD = [  # (answer, field the message must name)
    ({"status": "DONE"}, "status"),
    ({"status": "CREATED"}, "status"),
    ({}, "status"),
    ({"status": "FAILED", "statusReason": {"reasonCode": "not upper"}}, "statusReason.reasonCode"),
    ({"status": "FAILED", "statusReason": {"reasonCode": "X" * 65}}, "statusReason.reasonCode"),
    ({"status": "FAILED", "statusReason": {"reasonCode": "E1", "reasonDescription": "d" * 1025}},
     "statusReason.reasonDescription"),
    ({"status": "FAILED", "statusReason": {"reasonCode": "E1", "reasonDescription": "a\x01b"}},
     "statusReason.reasonDescription"),
    ({"status": "SUCCEEDED", "result": {}}, "result"),
    ({"status": "SUCCEEDED", "result": {"pos": {"s": 5}}}, "result.pos"),
    ({"status": "SUCCEEDED", "result": {"ok": {"b": "yes"}}}, "result.ok"),
    ({"status": "SUCCEEDED", "result": {"a": {"s": "x", "b": True}}}, "result.a"),
    ({"status": "SUCCEEDED", "result": {"a": {"n": 1}}}, "result.a"),
]


class AnswerChecks(Case):
    def test_each_bad_answer_is_rejected_locally_naming_the_field_and_not_sent(self):
        t, m = self.thing()
        for doc, field in BAD:
            e = W.run(t)
            m.wait_request(e)
            m.answer(e, doc)
            v = m.wait_verdicts(e)[0]
            self.assertEqual(v.topic, f"$aws/commands/things/{t}/executions/{e}/response/rejected/json", doc)
            body = json.loads(v.payload)
            self.assertEqual(set(body), {"error", "errorMessage", "executionId"}, body)
            self.assertEqual((body["error"], body["executionId"]), ("InvalidRequest", e), body)
            self.assertTrue(body["errorMessage"].startswith(field + ":") or
                            body["errorMessage"].startswith(field + "."), (doc, body))
        time.sleep(0.5)
        sent = [u for ex in iotcore.commands_state(W.aws.url)["executions"].values()
                if ex["thing"] == t for u in ex["updates"]]
        self.assertEqual(sent, [])

    def test_not_json_is_invalid_json(self):
        t, m = self.thing(1)
        e = W.run(t)
        m.wait_request(e)
        m.answer(e, b"SUCCEEDED, honest")
        body = json.loads(m.wait_verdicts(e)[0].payload)
        self.assertEqual((body["error"], body["executionId"]), ("InvalidJson", e))
        time.sleep(0.3)
        self.assertEqual(W.updates(e), [])

    def test_upper_case_result_types_are_lowered_and_extra_members_dropped(self):
        t, m = self.thing(2)
        e = W.run(t)
        m.wait_request(e)
        m.answer(e, {"status": "SUCCEEDED", "executionId": e, "clientToken": "sdk-adds-this",
                     "statusReason": {"reasonCode": "OK", "reasonDescription": "open"},
                     "result": {"pos": {"S": "open"}, "ok": {"B": True}, "blob": {"BIN": "AP8="}}})
        u = W.wait_updates(e, 1)[0]
        sent = json.loads(u["raw"])
        self.assertEqual(sent, {"status": "SUCCEEDED",
                                "statusReason": {"reasonCode": "OK", "reasonDescription": "open"},
                                "result": {"pos": {"s": "open"}, "ok": {"b": True},
                                           "blob": {"bin": "AP8="}}})
        self.assertEqual(u["verdict"], "accepted")
        self.assertEqual(W.execution(e)["result"],
                         {"pos": {"S": "open"}, "ok": {"B": True}, "blob": {"BIN": "AP8="}})


class AnswerPath(Case):
    def test_answers_reach_aws_and_verdicts_come_back_byte_for_byte_once(self):
        t, m = self.thing()
        e = W.run(t)
        m.wait_request(e)
        m.answer(e, {"status": "IN_PROGRESS"})
        m.wait_verdicts(e, 1)
        m.answer(e, {"status": "SUCCEEDED", "result": {"pos": {"s": "open"}}})
        m.wait_verdicts(e, 2)
        m.answer(e, {"status": "FAILED"})  # after a terminal state: AWS's own rejection
        vs = m.wait_verdicts(e, 3)
        time.sleep(0.5)
        vs = m.verdicts(e)
        us = W.updates(e)
        self.assertEqual([json.loads(u["raw"])["status"] for u in us], ["IN_PROGRESS", "SUCCEEDED", "FAILED"])
        self.assertEqual(len(vs), 3)
        for v, u in zip(vs, us):
            self.assertEqual(v.topic, u["answer_topic"])  # the same topic, mirrored
            self.assertEqual(v.payload.decode(), u["answer"])  # AWS's bytes, not re-encoded
        self.assertEqual(json.loads(vs[2].payload)["error"], "TerminalStateReached")
        self.assertEqual(W.execution(e)["status"], "SUCCEEDED")

    def test_one_update_in_flight_per_execution(self):
        t, m = self.thing(1)
        e = W.run(t)
        m.wait_request(e)
        W.control(update_rules=[{"execution": e, "times": 1, "delay_ms": 600}])
        m.answer(e, {"status": "IN_PROGRESS"})
        m.answer(e, {"status": "SUCCEEDED"})
        us = W.wait_updates(e, 2)
        self.assertGreaterEqual(us[1]["time"], us[0]["answered"], us)
        self.assertEqual([u["verdict"] for u in us], ["accepted", "accepted"])
        self.assertEqual(len(m.wait_verdicts(e, 2)), 2)

    def test_no_verdict_within_update_timeout_sends_the_same_update_again(self):
        t, m = self.thing(2)
        e = W.run(t)
        m.wait_request(e)
        W.control(update_rules=[{"execution": e, "times": 1, "drop": True}])
        m.answer(e, {"status": "IN_PROGRESS", "statusReason": {"reasonCode": "WARMING_UP"}})
        us = W.wait_updates(e, 2, 5)
        self.assertEqual(us[0]["raw"], us[1]["raw"])
        self.assertGreaterEqual(us[1]["time"] - us[0]["time"], 0.9)  # update_timeout_ms = 1000
        time.sleep(0.3)
        self.assertEqual([json.loads(v.payload) for v in m.verdicts(e)], [{"executionId": e}])

    def test_data_conflict_is_retried_then_accepted(self):
        t, m = self.thing()
        e = W.run(t)
        m.wait_request(e)
        W.control(update_rules=[{"execution": e, "times": 2, "error": "DataConflict"}])
        m.answer(e, {"status": "SUCCEEDED"})
        us = W.wait_updates(e, 3)
        self.assertEqual([u["verdict"] for u in us], ["DataConflict", "DataConflict", "accepted"])
        self.assertGreater(us[2]["time"] - us[1]["time"], 0.0)
        time.sleep(0.3)
        vs = m.verdicts(e)
        self.assertEqual(len(vs), 1)  # the conflicts stay between cmdgate and AWS
        self.assertTrue(vs[0].topic.endswith("/response/accepted/json"))
        self.assertEqual(vs[0].payload.decode(), us[2]["answer"])

    def test_data_conflict_while_aws_still_applies_an_update(self):
        t, m = self.thing(1)
        e = W.run(t)
        m.wait_request(e)
        # AWS takes 1.5 s to apply: cmdgate's re-send after 1 s meets DataConflict
        W.control(apply_ms=1500)
        m.answer(e, {"status": "SUCCEEDED", "result": {"n": {"s": "1"}}})
        vs = m.wait_verdicts(e, 1, 10)
        time.sleep(1.5)
        vs = m.verdicts(e)
        self.assertEqual(len(vs), 1, [v.payload for v in vs])
        self.assertTrue(vs[0].topic.endswith("/response/accepted/json"))
        self.assertEqual(W.execution(e)["status"], "SUCCEEDED")

    def test_request_throttled_is_retried_with_backoff(self):
        t, m = self.thing(2)
        e = W.run(t)
        m.wait_request(e)
        W.control(update_rules=[{"execution": e, "times": 1, "error": "RequestThrottled"}])
        m.answer(e, {"status": "FAILED", "statusReason": {"reasonCode": "JAMMED"}})
        us = W.wait_updates(e, 2)
        self.assertEqual([u["verdict"] for u in us], ["RequestThrottled", "accepted"])
        time.sleep(0.3)
        self.assertEqual(len(m.verdicts(e)), 1)

    def test_terminal_state_reached_after_a_resend_counts_as_accepted(self):
        t, m = self.thing()
        e = W.run(t)
        m.wait_request(e)
        # applied, but the verdict is lost: the re-send meets TerminalStateReached
        W.control(update_rules=[{"execution": e, "times": 1, "apply_then_drop": True}])
        m.answer(e, {"status": "SUCCEEDED"})
        us = W.wait_updates(e, 2, 5)
        self.assertEqual([u["verdict"] for u in us], ["applied-dropped", "TerminalStateReached"])
        vs = m.wait_verdicts(e)
        time.sleep(0.5)
        vs = m.verdicts(e)
        self.assertEqual(len(vs), 1)
        self.assertEqual(vs[0].topic, f"$aws/commands/things/{t}/executions/{e}/response/accepted/json")
        self.assertEqual(vs[0].payload, b'{"executionId":"' + e.encode() + b'"}')

    def test_a_late_answer_after_aws_timed_out_is_still_sent(self):
        t, m = self.thing(1)
        e = W.run(t, timeout_s=1, expiry=5)
        m.wait_request(e)
        self.assertTrue(wait_for(lambda: W.execution(e)["status"] == "TIMED_OUT", 5))
        self.assertEqual(W.execution(e)["statusReason"]["reasonCode"], "$NO_RESPONSE_FROM_DEVICE")
        m.answer(e, {"status": "SUCCEEDED"})
        v = m.wait_verdicts(e)[0]
        self.assertTrue(v.topic.endswith("/accepted/json"))
        self.assertEqual(W.execution(e)["status"], "SUCCEEDED")

    def test_one_log_line_per_execution_end(self):
        t, m = self.thing(2)
        e = W.run(t)
        m.wait_request(e)
        m.answer(e, {"status": "IN_PROGRESS"})
        m.wait_verdicts(e, 1)
        m.answer(e, {"status": "REJECTED", "statusReason": {"reasonCode": "BUSY"}})
        m.wait_verdicts(e, 2)
        # thing, executionId, final status and latency, on one line, once
        def ends():
            return [x for x in self.gw.text().splitlines()
                    if e in x and t in x and "REJECTED" in x and "latency" in x.lower()]
        self.assertTrue(wait_for(ends, 5), self.gw.text()[-2000:])
        time.sleep(0.3)
        self.assertEqual(len(ends()), 1, ends())


class Prefix(unittest.TestCase):
    def test_custom_local_prefix_carries_requests_and_answers(self):
        t, = W.things(1)
        gw = W.gateway([t], local_prefix="plant/line-1/cmd")
        m = Machine(W.broker.port, t, prefix="plant/line-1/cmd")
        spy = Machine(W.broker.port, t, client_id=f"spy-{t}")  # on $aws/commands locally
        try:
            e = W.run(t, b"\x01\x02", "raw")
            got = m.wait_request(e)
            self.assertEqual(got.topic, f"plant/line-1/cmd/things/{t}/executions/{e}/request")
            self.assertEqual(got.payload, b"\x01\x02")
            m.answer(e, {"status": "SUCCEEDED"})
            v = m.wait_verdicts(e)[0]
            self.assertEqual(v.topic, f"plant/line-1/cmd/things/{t}/executions/{e}/response/accepted/json")
            time.sleep(0.3)
            self.assertEqual(spy.msgs, [])
            # an answer on AWS's own topic is not the machine's, with another prefix
            spy.answer(e, {"status": "FAILED"})
            time.sleep(0.5)
            self.assertEqual(len(W.updates(e)), 1)
        finally:
            m.close()
            spy.close()
            gw.stop()


class Versions(unittest.TestCase):
    """MQTT 5 and 3.1.1 on both sides: the same topics and bytes; properties
    only where both hops are MQTT 5."""

    def run_versions(self, local, aws):
        t, = W.things(1)
        gw = W.gateway([t], version=aws, mqtt_extra=f"version = {local};")
        m = Machine(W.broker.port, t, version=5)
        try:
            self.assertEqual(W.core.links(t)[-1]["protocol"], 5 if aws == 5 else 2)
            payload = b'{"op":"close"}'
            e = W.run(t, payload, expiry=30)
            got = m.wait_request(e)
            self.assertEqual((got.topic, got.payload),
                             (f"$aws/commands/things/{t}/executions/{e}/request/json", payload))
            if local == 5 and aws == 5:
                self.assertEqual(props(got, "ContentType"), "application/json")
                self.assertIsNotNone(props(got, "MessageExpiryInterval"))
            else:
                self.assertEqual(prop_count(got), 0, (local, aws))
            m.answer(e, {"status": "SUCCEEDED", "result": {"a": {"b": False}}})
            v = m.wait_verdicts(e)[0]
            self.assertTrue(v.topic.endswith("/response/accepted/json"))
            self.assertEqual(W.execution(e)["status"], "SUCCEEDED")
        finally:
            m.close()
            gw.stop()

    def test_local_311_aws_311(self):
        self.run_versions(4, 4)

    def test_local_5_aws_311(self):
        self.run_versions(5, 4)

    def test_local_311_aws_5(self):
        self.run_versions(4, 5)


class ZzStandIn(unittest.TestCase):
    def test_no_link_touched_another_things_topics(self):
        self.assertEqual(W.core.violations(), [])
        self.assertEqual(iotcore.commands_state(W.aws.url)["orphans"], [])


class ZzEveryGatewayRun(harness.EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report."""


if __name__ == "__main__":
    main()
