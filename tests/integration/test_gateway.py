"""Integration tests: docs/protocol.md and docs/running.md against a real mosquitto, the
local AWS endpoint (which verifies every signature) and build/cmdgate."""
import calendar
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (AKID, ClosedPort, CMDGATE, SECRET, TOKEN, Device, FakeAws, Gateway, Mosquitto,  # noqa
                     config, free_port, make_pki, wait_for)

TMP = None
PKI = None
BROKER = None
AWS = None


setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-it-", pki=True, broker_pki=True, aws_pki=True)


class GatewayCase(unittest.TestCase):
    """One gateway per test class, with the class's configuration."""
    extra = ""
    mqtt_extra = ""
    aws_extra = ""
    gateway_extra = ""
    env = None
    endpoint = None

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(TMP, config(BROKER.port, cls.endpoint or AWS.url, cls.extra,
                                     cls.mqtt_extra, cls.aws_extra, cls.gateway_extra),
                         env=cls.env)
        cls.dev = Device(BROKER.port)

    @classmethod
    def tearDownClass(cls):
        cls.dev.close()
        cls.rc = cls.gw.stop()

    def setUp(self):
        AWS.reset()

    def thing(self):
        return f"t{time.time_ns() % 10**12}"

    def settled(self, token, how="accepted", timeout=10):
        """Lift the endpoint's rules and wait until the gateway has settled
        the call of unknown fate of token (SPEC section 5), so that no
        settling call reaches the next test."""
        AWS.control(rules=[], reset=True)
        line = f"token={token} settled={how}"
        self.assertTrue(wait_for(lambda: line in self.gw.text(), timeout),
                        f"no '{line}':\n" + self.gw.text()[-2000:])


class Accepted(GatewayCase):
    def test_accepted_reply_carries_execution_id_and_token(self):
        t = self.thing()
        r, m = self.dev.request(t, "open-valve", {"id": "r-42", "parameters": {"speed": 5}})
        self.assertEqual(m.topic, f"commands/{t}/open-valve/start/accepted")
        self.assertEqual(r["status"], "accepted")
        self.assertEqual(r["id"], "r-42")
        self.assertTrue(r["executionId"])
        calls = AWS.calls()
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0]["outcome"], "started")
        self.assertEqual(r["executionId"], calls[0]["executionId"])
        self.assertEqual(r["clientToken"], calls[0]["clientToken"])
        self.assertFalse(m.retain)

    def test_body_follows_the_model(self):
        t = self.thing()
        self.dev.request(t, "c1", {"id": 7, "timeout": 30, "parameters": {"a": {"BIN": "AP8="}}})
        body = json.loads(AWS.calls()[0]["body"])
        self.assertEqual(list(body), ["targetArn", "commandArn", "parameters",
                                      "executionTimeoutSeconds", "clientToken"])
        self.assertEqual(body["targetArn"], f"arn:aws:iot:eu-west-1:123456789012:thing/{t}")
        self.assertEqual(body["commandArn"], "arn:aws:iot:eu-west-1:123456789012:command/c1")
        self.assertEqual(body["parameters"], {"a": {"BIN": "AP8="}})
        self.assertEqual(body["executionTimeoutSeconds"], 30)

    def test_request_headers_are_signed_as_aws_requires(self):
        self.dev.request(self.thing(), "c1", {})
        h = AWS.calls()[0]["headers"]
        self.assertEqual(h["content-type"], "application/json")
        self.assertIn("Credential=AKIDCMDGATETEST/", h["authorization"])
        self.assertIn("/eu-west-1/iot-jobs-data/aws4_request", h["authorization"])
        self.assertIn("SignedHeaders=content-type;host;x-amz-date,", h["authorization"])
        self.assertNotIn("x-amz-security-token", h)

    def test_same_id_never_starts_a_second_execution(self):
        t = self.thing()
        r1, _ = self.dev.request(t, "c1", {"id": "once"})
        r2, _ = self.dev.request(t, "c1", {"id": "once"})
        self.assertEqual(r1["executionId"], r2["executionId"])
        self.assertEqual(r1["clientToken"], r2["clientToken"])
        self.assertEqual([c["outcome"] for c in AWS.calls()], ["started", "replayed"])

    def test_without_id_each_request_gets_a_fresh_uuid_token(self):
        t = self.thing()
        r1, _ = self.dev.request(t, "c1", b"")
        r2, _ = self.dev.request(t, "c1", b"")
        self.assertNotIn("id", r1)
        uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertRegex(r1["clientToken"], uuid)
        self.assertNotEqual(r1["clientToken"], r2["clientToken"])

    def test_explicit_client_token_is_bound_to_its_thing_and_command(self):
        t = self.thing()
        r, _ = self.dev.request(t, "c1", {"clientToken": "my-token-1"})
        want = hashlib.sha256(f"token\n{t}\nc1\nmy-token-1".encode()).hexdigest()
        self.assertEqual(r["clientToken"], want)
        self.assertEqual(AWS.calls()[0]["clientToken"], want)

    def test_reply_uses_the_request_qos(self):
        t = self.thing()
        for qos in (0, 1):
            r, m = self.dev.request(t, "c1", {}, qos=qos)
            self.assertEqual(m.qos, qos)

    def test_mqtt5_response_topic_and_correlation_data(self):
        corr = bytes([0, 1, 2, 255, 254, 10])
        t = self.thing()
        self.dev.publish(f"commands/{t}/c1/start", {"id": "x"},
                         response_topic=f"commands/{t}/replies/dev-9", correlation=corr)
        got = self.dev.wait_reply(f"commands/{t}/replies/dev-9")
        self.assertEqual(json.loads(got[-1].payload)["status"], "accepted")
        self.assertEqual(got[-1].properties.CorrelationData, corr)

    def test_wildcard_response_topic_is_forbidden_on_the_reply_topic(self):
        t = self.thing()
        r, m = self.dev.request(t, "c1", {}, response_topic=f"commands/{t}/+")
        self.assertEqual(m.topic, f"commands/{t}/c1/start/rejected")
        self.assertEqual(r["code"], "Forbidden")
        self.assertEqual(AWS.calls(), [])

    def test_mqtt311_device(self):
        d = Device(BROKER.port, version=4)
        try:
            r, m = d.request(self.thing(), "c1", {"id": 1})
            self.assertEqual(r["status"], "accepted")
            self.assertEqual(r["id"], 1)
        finally:
            d.close()

    def test_every_request_logs_one_line_with_its_facts(self):
        t = self.thing()
        r, _ = self.dev.request(t, "c1", {"id": "log-me"})
        line = wait_for(lambda: [l for l in self.gw.text().splitlines()
                                 if "request thing=" + t in l])
        self.assertEqual(len(line), 1)
        for part in (f"thing={t}", "command=c1", 'id="log-me"', "token=" + r["clientToken"],
                     "outcome=accepted", "latency_ms="):
            self.assertIn(part, line[0])


class GatewayRejections(GatewayCase):
    gateway_extra = "max_payload = 64;"
    extra = """routes = (
      { request_topic = "commands/{thing}/{command}/start"; },
      { request_topic = "valves/{thing}/open"; reply_topic = "valves/{thing}/open/{status}";
        command = "open-valve"; commands = [ "open-valve" ]; },
      { request_topic = "limited/{thing}/{command}"; reply_topic = "limited/{thing}/{command}/{status}";
        commands = [ "open-valve" ]; } );"""

    def reply_on(self, topic, payload, prefix):
        self.dev.c.subscribe(prefix + "#", qos=1)
        time.sleep(0.05)
        before = len(self.dev.replies(prefix))
        self.dev.publish(topic, payload)
        got = self.dev.wait_reply(prefix, before + 1)
        return json.loads(got[before].payload), got[before]

    def check_gateway(self, r, code, retryable):
        self.assertEqual(r["status"], "rejected")
        self.assertEqual(r["code"], code)
        self.assertEqual(r["source"], "gateway")
        self.assertIs(r["retryable"], retryable)
        self.assertNotIn("httpStatus", r)
        self.assertTrue(r["message"])

    def test_invalid_request_names_the_member_and_keeps_the_id(self):
        r, m = self.dev.request(self.thing(), "c1", {"id": "r-1", "speed": 5})
        self.assertTrue(m.topic.endswith("/rejected"))
        self.check_gateway(r, "InvalidRequest", False)
        self.assertIn("speed", r["message"])
        self.assertEqual(r["id"], "r-1")
        self.assertNotIn("clientToken", r)
        self.assertEqual(AWS.calls(), [])

    def test_not_json(self):
        r, _ = self.dev.request(self.thing(), "c1", b"\xff\xfe not json")
        self.check_gateway(r, "InvalidRequest", False)

    def test_payload_too_large(self):
        r, _ = self.dev.request(self.thing(), "c1", {"id": "x" * 60})
        self.check_gateway(r, "PayloadTooLarge", False)

    def test_bad_placeholder_value(self):
        r, m = self.dev.request("bad.thing", "c1", {})
        self.check_gateway(r, "InvalidRequest", False)
        self.assertIn("thing", r["message"])

    def test_fixed_command_route(self):
        t = self.thing()
        r, m = self.reply_on(f"valves/{t}/open", {"id": 3}, f"valves/{t}/open/")
        self.assertEqual(r["status"], "accepted")
        self.assertEqual(m.topic, f"valves/{t}/open/accepted")
        self.assertIn("command/open-valve", AWS.calls()[0]["body"])

    def test_forbidden_command(self):
        t = self.thing()
        r, m = self.reply_on(f"limited/{t}/self-destruct", {"id": 4},
                            f"limited/{t}/self-destruct/")
        self.check_gateway(r, "Forbidden", False)
        self.assertEqual(r["id"], 4)
        self.assertEqual(AWS.calls(), [])


class CustomTemplates(GatewayCase):
    mqtt_extra = 'client_id = "gw-templates";'
    extra = """routes = ( { request_topic = "site/{site}/{thing}/{command}";
        reply_topic = "site/{site}/{thing}/{command}/{status}/{client_id}/{region}";
        target_arn = "arn:aws:iot:{region}:{account}:thing/{site}-{thing}"; } );"""

    def test_captures_and_fixed_names_fill_every_template(self):
        self.dev.c.subscribe("site/#", qos=1)
        time.sleep(0.1)
        # (a thing name has no '.': AWS would refuse thing/hall.2-pump-1)
        self.dev.publish("site/hall_2/pump-1/c9", {"id": 1})
        got = self.dev.wait_reply("site/hall_2/pump-1/c9/")
        self.assertEqual(got[0].topic, "site/hall_2/pump-1/c9/accepted/gw-templates/eu-west-1")
        body = json.loads(AWS.calls()[0]["body"])
        self.assertEqual(body["targetArn"], "arn:aws:iot:eu-west-1:123456789012:thing/hall_2-pump-1")

    def test_other_captures_have_their_own_rule(self):
        self.dev.c.subscribe("site/#", qos=1)
        time.sleep(0.1)
        self.dev.publish("site/hall 2/pump-1/c9", {"id": 2})
        got = self.dev.wait_reply("site/hall 2/pump-1/c9/")
        r = json.loads(got[0].payload)
        self.assertEqual(r["code"], "InvalidRequest")
        self.assertIn("{site}", r["message"])


class AwsErrors(GatewayCase):
    aws_extra = "max_attempts = 3;"

    def rule(self, **kw):
        AWS.control(rules=[kw])

    def check_aws(self, r, code, status, retryable):
        self.assertEqual(r["status"], "rejected")
        self.assertEqual(r["code"], code)
        self.assertEqual(r["source"], "aws")
        self.assertEqual(r["httpStatus"], status)
        self.assertIs(r["retryable"], retryable)
        self.assertIn("clientToken", r)

    def test_client_errors_are_not_retried(self):
        for status, code in ((400, "ValidationException"),
                             (402, "ServiceQuotaExceededException"),
                             (403, "AccessDeniedException"),
                             (404, "ResourceNotFoundException"),
                             (409, "ConflictException")):
            AWS.reset()
            self.rule(status=status, code=code, message="m-" + code)
            r, _ = self.dev.request(self.thing(), "c1", {"id": code})
            self.check_aws(r, code, status, False)
            self.assertEqual(r["message"], "m-" + code)
            self.assertEqual(len(AWS.calls()), 1)

    def test_code_from_body_type_and_code_members(self):
        self.rule(status=404, code="ResourceNotFoundException", where="body")
        r, _ = self.dev.request(self.thing(), "c1", {})
        self.check_aws(r, "ResourceNotFoundException", 404, False)
        AWS.reset()
        self.rule(status=403, code="AccessDeniedException", message="Nope", where="code")
        r, _ = self.dev.request(self.thing(), "c1", {})
        self.check_aws(r, "AccessDeniedException", 403, False)
        self.assertEqual(r["message"], "Nope")

    def test_no_code_is_unknown_error(self):
        self.rule(status=418, where="none")
        r, _ = self.dev.request(self.thing(), "c1", {})
        self.check_aws(r, "UnknownError", 418, False)

    def test_throttling_is_retried_with_same_token_and_body(self):
        t = self.thing()
        self.rule(thing=t, status=429, code="ThrottlingException", times=2)
        r, _ = self.dev.request(t, "c1", {"id": "th", "parameters": {"p": 1}})
        self.assertEqual(r["status"], "accepted")
        calls = AWS.calls()
        self.assertEqual(len(calls), 3)
        self.assertEqual(len({c["body"] for c in calls}), 1)
        self.assertEqual(len({c["clientToken"] for c in calls}), 1)

    def test_each_retry_is_re_signed_with_its_own_date(self):
        # each throttled answer takes 1.1 s, so the three attempts are more
        # than a second apart: a retry that reuses an earlier signature (or
        # an earlier time) carries a date that is not its own
        t = self.thing()
        self.rule(thing=t, status=429, code="ThrottlingException", times=2, delay_ms=1100)
        r, _ = self.dev.request(t, "c1", {"id": "resign"}, timeout=15)
        self.assertEqual(r["status"], "accepted")
        calls = AWS.calls()
        # the fake verified every attempt's signature against that attempt's
        # X-Amz-Date (a bad one would be InvalidSignatureException)
        self.assertEqual([c["outcome"] for c in calls],
                         ["ThrottlingException", "ThrottlingException", "started"])
        self.assertGreater(calls[-1]["time"] - calls[0]["time"], 2.0)
        dates = [c["headers"]["x-amz-date"] for c in calls]
        self.assertEqual(len(set(dates)), 3, dates)
        self.assertEqual(len({c["headers"]["authorization"] for c in calls}), 3)
        for c in calls:
            signed_at = calendar.timegm(time.strptime(c["headers"]["x-amz-date"],
                                                      "%Y%m%dT%H%M%SZ"))
            # the date is the attempt's own: at most a second (truncation)
            # before the fake received it, and never after
            self.assertLessEqual(signed_at, c["time"] + 0.1, c)
            self.assertGreater(signed_at, c["time"] - 1.5, c)

    def test_server_error_after_all_attempts(self):
        self.rule(status=500, code="InternalServerException")
        r, _ = self.dev.request(self.thing(), "c1", {})
        self.check_aws(r, "InternalServerException", 500, True)
        self.assertIn(f"token={r['clientToken']} outcome=rejected code=InternalServerException "
                      "attempts=3", self.gw.text())
        # a 5xx leaves the fate unknown: the same call is settled afterwards
        self.settled(r["clientToken"])

    def test_dropped_connection_is_retried(self):
        t = self.thing()
        self.rule(thing=t, drop=True, times=1)
        r, _ = self.dev.request(t, "c1", {"id": "drop"})
        self.assertEqual(r["status"], "accepted")
        calls = AWS.calls()
        self.assertEqual([c["outcome"] for c in calls], ["dropped", "started"])
        self.assertEqual(calls[0]["body"], calls[1]["body"])

    def test_always_dropped_is_unavailable(self):
        self.rule(drop=True)
        r, _ = self.dev.request(self.thing(), "c1", {"id": "d"})
        self.assertEqual(r["code"], "Unavailable")
        self.assertEqual(r["source"], "gateway")
        self.assertIs(r["retryable"], True)
        self.assertIn(f"token={r['clientToken']} outcome=rejected code=Unavailable attempts=3",
                      self.gw.text())
        self.settled(r["clientToken"])

    def test_clock_skew_is_corrected_once_and_kept(self):
        AWS.control(skew_s=900)
        try:
            r, _ = self.dev.request(self.thing(), "c1", {"id": "skew"})
            self.assertEqual(r["status"], "accepted")
            self.assertEqual([c["outcome"] for c in AWS.calls()],
                             ["InvalidSignatureException", "started"])
            AWS.control(reset=True, skew_s=900)
            r, _ = self.dev.request(self.thing(), "c1", {"id": "skew2"})
            self.assertEqual([c["outcome"] for c in AWS.calls()], ["started"])
        finally:
            AWS.control(reset=True, skew_s=0)
            self.dev.request(self.thing(), "c1", {})  # let the gateway re-learn the clock

    def test_error_type_header_suffix_and_prefix_are_dropped(self):
        # x-amzn-ErrorType: "aws.iot#ValidationException:http://internal.amazon.com/..."
        self.rule(status=400, code="aws.iot#ValidationException")
        r, _ = self.dev.request(self.thing(), "c1", {})
        self.assertEqual(r["code"], "ValidationException")
        self.assertEqual(AWS.calls()[0]["outcome"], "aws.iot#ValidationException")



class ThrottledToTheDeadline(GatewayCase):
    """A 429 is the account's quota, not the request: the request waits for
    a send slot until its deadline, without using up aws.max_attempts, and
    is answered ThrottlingException only then."""
    aws_extra = "max_attempts = 3;"
    gateway_extra = "deadline_ms = 3000;"

    def test_throttled_request_waits_to_its_deadline(self):
        AWS.control(rules=[dict(status=429, code="ThrottlingException", message="Rate exceeded")])
        t0 = time.monotonic()
        r, _ = self.dev.request(self.thing(), "c1", {"id": "th2"}, timeout=15)
        waited = time.monotonic() - t0
        self.assertEqual(r["status"], "rejected")
        self.assertEqual(r["code"], "ThrottlingException")
        self.assertEqual(r["httpStatus"], 429)
        self.assertIs(r["retryable"], True)
        self.assertGreaterEqual(waited, 2.5)
        n = len(AWS.calls())
        self.assertGreater(n, 3)  # attempts were not used up by the 429s
        self.assertLess(n, 200)   # and the gateway slowed down

class SlowEndpoint(GatewayCase):
    gateway_extra = "max_inflight = 1; queue_size = 2; deadline_ms = 1500;"

    def test_deadline_passes_before_aws_answers(self):
        t = self.thing()
        AWS.control(rules=[{"thing": t, "delay_ms": 3000}])
        start = time.time()
        r, _ = self.dev.request(t, "c1", {"id": "slow"}, timeout=10)
        self.assertEqual(r["code"], "Expired")
        self.assertIs(r["retryable"], True)
        self.assertLess(time.time() - start, 3.0)
        self.settled(r["clientToken"])  # its settling call holds the one call slot

    def test_queue_full_is_overloaded_at_once(self):
        t = self.thing()
        AWS.control(delay_ms=600)
        try:
            base = f"commands/{t}/c1/start"
            start = time.time()
            for i in range(8):
                self.dev.publish(base, {"id": i})
            # at most one call in flight and two waiting: five or more are
            # answered Overloaded at once, before the first call (600 ms) ends
            early = self.dev.wait_reply(base + "/", 5, timeout=2)
            self.assertLess(time.time() - start, 0.5)
            self.assertEqual([json.loads(m.payload).get("code") for m in early[:5]],
                             ["Overloaded"] * 5)
            got = self.dev.wait_reply(base + "/", 8, timeout=15)
            codes = [json.loads(m.payload).get("code", "accepted") for m in got]
            self.assertGreaterEqual(codes.count("Overloaded"), 5)
            self.assertGreaterEqual(codes.count("accepted"), 2)
            self.assertEqual(len(got), 8)
            for m in got:
                r = json.loads(m.payload)
                if r.get("code") == "Overloaded":
                    self.assertIs(r["retryable"], True)
                    self.assertIn("clientToken", r)
        finally:
            AWS.control(delay_ms=0)


class Unreachable(GatewayCase):
    closed = ClosedPort()  # held for the module's life: nothing ever answers
    endpoint = f"http://127.0.0.1:{closed.port}"
    aws_extra = "max_attempts = 2; connect_timeout_ms = 500;"
    gateway_extra = "deadline_ms = 2500;"

    def test_unreachable_endpoint_waits_for_the_deadline_then_is_unavailable(self):
        start = time.time()
        r, _ = self.dev.request(self.thing(), "c1", {"id": "u"}, timeout=10)
        took = time.time() - start
        self.assertEqual(r["code"], "Unavailable")
        self.assertIs(r["retryable"], True)
        self.assertIn("endpoint unreachable", r["message"])
        # more than max_attempts tries were made: it waited, then gave up at the deadline
        self.assertGreater(took, 2.0)
        self.assertLess(took, 4.0)
        self.assertGreater(self.gw.text().count("attempt="), 2)


class NoCredentials(GatewayCase):
    env = {}

    def test_credentials_unavailable_at_once(self):
        start = time.time()
        r, _ = self.dev.request(self.thing(), "c1", {"id": "nc"})
        self.assertEqual(r["code"], "CredentialsUnavailable")
        self.assertIs(r["retryable"], True)
        self.assertLess(time.time() - start, 2)
        self.assertEqual(AWS.calls(), [])


class Https(unittest.TestCase):
    def test_private_ca_and_session_token(self):
        aws = FakeAws(TMP, PKI, session_token=TOKEN)
        try:
            url = f"https://127.0.0.1:{aws.https_port}"
            env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
                   "AWS_SESSION_TOKEN": TOKEN}
            gw = Gateway(TMP, config(BROKER.port, url, aws_extra=f'ca_file = "{PKI["ca"]}";'),
                         env=env)
            dev = Device(BROKER.port)
            try:
                r, _ = dev.request("tls-1", "c1", {"id": "s"})
                self.assertEqual(r["status"], "accepted")
                h = aws.calls()[0]["headers"]
                self.assertEqual(h["x-amz-security-token"], TOKEN)
                self.assertIn("x-amz-security-token", h["authorization"].split("SignedHeaders=")[1].split(",")[0])
                log = gw.text()
            finally:
                dev.close()
                self.assertEqual(gw.stop(), 0)
            # debug-level log: no secret, no token, no signature
            self.assertIn("debug", log)
            for secret in (SECRET, TOKEN, "Signature=", "AWS4-HMAC-SHA256"):
                self.assertNotIn(secret, log)
        finally:
            aws.stop()

    def test_tls_verification_is_on(self):
        aws = FakeAws(TMP, PKI)
        try:
            url = f"https://127.0.0.1:{aws.https_port}"
            gw = Gateway(TMP, config(BROKER.port, url, aws_extra="max_attempts = 1;"))
            dev = Device(BROKER.port)
            try:
                r, _ = dev.request("tls-2", "c1", {})
                self.assertEqual(r["code"], "Unavailable")
                self.assertEqual(aws.calls(), [])
            finally:
                dev.close()
                gw.stop()
        finally:
            aws.stop()

    def test_missing_session_token_is_rejected_by_aws(self):
        aws = FakeAws(TMP, session_token=TOKEN)
        try:
            gw = Gateway(TMP, config(BROKER.port, aws.url))
            dev = Device(BROKER.port)
            try:
                r, _ = dev.request("tok-1", "c1", {})
                self.assertEqual(r["code"], "UnrecognizedClientException")
                self.assertEqual(r["httpStatus"], 403)
            finally:
                dev.close()
                gw.stop()
        finally:
            aws.stop()


class MqttVariants(unittest.TestCase):
    def test_gateway_speaking_mqtt311(self):
        gw = Gateway(TMP, config(BROKER.port, AWS.url, mqtt_extra="version = 4;"))
        dev = Device(BROKER.port)
        try:
            r, _ = dev.request("v4-1", "c1", {"id": 1})
            self.assertEqual(r["status"], "accepted")
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_ssl_broker_with_verification(self):
        conf = config(BROKER.tls_port, AWS.url, mqtt_extra=f'ca_file = "{PKI["ca"]}";',
                      uri=f"ssl://localhost:{BROKER.tls_port}")
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        try:
            r, _ = dev.request("ssl-1", "c1", {})
            self.assertEqual(r["status"], "accepted")
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_ssl_broker_with_unknown_ca_is_not_trusted(self):
        conf = config(BROKER.tls_port, AWS.url, uri=f"ssl://localhost:{BROKER.tls_port}")
        gw = Gateway(TMP, conf, wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: "connect failed" in gw.text(), 10))
            self.assertNotIn("ready: subscribed", gw.text())
        finally:
            gw.stop()

    def test_status_topic_is_retained_online_then_offline(self):
        cid = f"st-{time.time_ns()}"
        conf = config(BROKER.port, AWS.url, mqtt_extra=f'client_id = "{cid}-x{time.time_ns()}";')
        gw = Gateway(TMP, conf)
        try:
            watcher = Device(BROKER.port, subscribe=("cmdgate/#",))
            got = wait_for(lambda: watcher.replies(f"cmdgate/{cid}-x"), 5)
            self.assertEqual(json.loads(got[-1].payload)["state"], "online")
            self.assertTrue(got[-1].retain)
        finally:
            gw.stop()
        self.assertTrue(wait_for(lambda: json.loads(watcher.replies(f"cmdgate/{cid}-x")[-1].payload)
                                 ["state"] == "offline", 5))
        watcher.close()


class Lifecycle(unittest.TestCase):
    def test_sigterm_drains_in_flight_and_exits_0(self):
        gw = Gateway(TMP, config(BROKER.port, AWS.url, gateway_extra="max_inflight = 1; drain_ms = 5000;"))
        dev = Device(BROKER.port)
        AWS.control(reset=True, delay_ms=800)
        try:
            dev.publish("commands/drain-1/c1/start", {"id": "inflight"})
            dev.publish("commands/drain-2/c1/start", {"id": "queued"})
            wait_for(lambda: AWS.calls(), 5)
            gw.signal(signal.SIGTERM)
            self.assertEqual(gw.proc.wait(15), 0)
            got = dev.wait_reply("commands/drain-", 2, timeout=5)
            by_id = {json.loads(m.payload)["id"]: json.loads(m.payload) for m in got}
            self.assertEqual(by_id["inflight"]["status"], "accepted")
            self.assertEqual(by_id["queued"]["code"], "Unavailable")
        finally:
            AWS.control(reset=True, delay_ms=0)
            dev.close()
            gw.stop()

    def test_sigint_stops_like_sigterm(self):
        gw = Gateway(TMP, config(BROKER.port, AWS.url))
        gw.signal(signal.SIGINT)
        self.assertEqual(gw.proc.wait(15), 0)
        self.assertIn("stopped:", gw.text())
        gw.stop()

    def test_other_fatal_errors_exit_1(self):
        # a spool directory that cannot be created: valid config, fatal at start
        conf = config(BROKER.port, AWS.url, gateway_extra='spool_dir = "/proc/cmdgate/spool";')
        gw = Gateway(TMP, conf, wait_ready=False)
        self.assertEqual(gw.proc.wait(15), 1)
        self.assertIn("spool: cannot create /proc/cmdgate/spool", gw.text())
        self.assertNotIn("Sanitizer", gw.text())
        gw.stop()
        __import__("harness").STARTED.remove(gw)  # exit 1 is the point here

    def test_mqtt_password_file_readable_by_others_is_refused(self):
        pw = os.path.join(TMP, "mqtt-pw-open")
        with open(pw, "w") as f:
            f.write("s3cret-mqtt-password\n")
        os.chmod(pw, 0o644)
        conf = config(BROKER.port, AWS.url,
                      mqtt_extra=f'username = "gw"; password_file = "{pw}";')
        gw = Gateway(TMP, conf, wait_ready=False)
        self.assertEqual(gw.proc.wait(15), 1)
        self.assertIn("mqtt.password_file", gw.text())
        self.assertIn("chmod 600", gw.text())
        self.assertNotIn("s3cret-mqtt-password", gw.text())
        gw.stop()
        __import__("harness").STARTED.remove(gw)  # exit 1 is the point here
        # the same file at 0600 is taken (mosquitto here accepts any password)
        os.chmod(pw, 0o600)
        gw = Gateway(TMP, conf)
        self.assertEqual(gw.stop(), 0)

    def test_sighup_reloads_routes_and_keeps_config_on_error(self):
        conf = config(BROKER.port, AWS.url)
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port, subscribe=("commands/#", "v2/#"))
        try:
            gw.rewrite(conf + 'routes = ( { request_topic = "v2/{thing}/{command}"; '
                              'reply_topic = "v2/{thing}/{command}/{status}"; } );\n')
            gw.signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "configuration reloaded" in gw.text(), 5))
            time.sleep(0.2)
            dev.publish("v2/hup-1/c1", {"id": 1})
            got = dev.wait_reply("v2/hup-1/c1/")
            self.assertEqual(json.loads(got[0].payload)["status"], "accepted")
            gw.rewrite("this is { not valid")
            gw.signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "reload failed, keeping" in gw.text(), 5))
            dev.publish("v2/hup-2/c1", {"id": 2})
            got = dev.wait_reply("v2/hup-2/c1/")
            self.assertEqual(json.loads(got[0].payload)["status"], "accepted")
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_systemd_ready_status_and_watchdog(self):
        path = os.path.join(TMP, f"notify-{time.time_ns()}.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(5)
        env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
               "WATCHDOG_USEC": "200000"}
        gw = Gateway(TMP, config(BROKER.port, AWS.url), notify=path, env=env)
        try:
            seen = []
            end = time.time() + 5
            while time.time() < end and not ("READY=1" in seen and seen.count("WATCHDOG=1") >= 3
                                             and any(x.startswith("STATUS=mqtt connected")
                                                     for x in seen)):
                seen.append(s.recv(4096).decode())
            self.assertIn("READY=1", seen)
            self.assertGreaterEqual(seen.count("WATCHDOG=1"), 3)
            self.assertTrue(any(x.startswith("STATUS=mqtt connected") for x in seen), seen)
            gw.signal(signal.SIGTERM)
            self.assertTrue(wait_for(lambda: "STOPPING=1" in seen or
                                     seen.append(s.recv(4096).decode()), 5))
        finally:
            gw.stop()
            s.close()

    def test_log_level_option_overrides_the_file(self):
        gw = Gateway(TMP, config(BROKER.port, AWS.url), args=["--log-level", "warn"],
                     wait_ready=False)
        dev = Device(BROKER.port)
        try:
            time.sleep(0.5)
            r, _ = dev.request("lvl-1", "c1", {})
            self.assertEqual(r["status"], "accepted")
            gw.signal(signal.SIGHUP)  # the file says debug; --log-level still wins
            time.sleep(0.5)
            r, _ = dev.request("lvl-2", "c1", {})
            self.assertEqual(r["status"], "accepted")
        finally:
            dev.close()
            gw.stop()
        text = gw.text()
        self.assertNotIn(" info ", text)
        self.assertNotIn(" debug ", text)

    def test_json_log_format(self):
        conf = config(BROKER.port, AWS.url, level="info", log_extra='format = "json";')
        gw = Gateway(TMP, conf, wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: "ready: subscribed" in gw.text(), 10))
        finally:
            gw.stop()
        for line in gw.text().splitlines():
            rec = json.loads(line)
            self.assertEqual(set(rec), {"time", "level", "msg"})


class CommandLine(unittest.TestCase):
    def run_gw(self, *args):
        return subprocess.run([CMDGATE, *args], capture_output=True, text=True, timeout=10)

    def write(self, text):
        p = os.path.join(TMP, f"cl-{time.time_ns()}.conf")
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_check_good_file(self):
        p = self.write('aws: { region = "eu-west-1"; account = "1"; };\n')
        r = self.run_gw("--check", "-c", p)
        self.assertEqual((r.returncode, r.stdout), (0, "configuration OK\n"))

    def test_check_wrong_type_gives_file_and_line(self):
        p = self.write('aws: { region = "eu-west-1"; account = "1"; };\nmqtt: {\n  qos = "one";\n};\n')
        r = self.run_gw("--check", "-c", p)
        self.assertEqual(r.returncode, 78)
        self.assertTrue(r.stderr.startswith(f"{p}:3: "), r.stderr)

    def test_check_unknown_key(self):
        p = self.write('aws: { region = "eu-west-1"; account = "1"; regoin = "x"; };\n')
        r = self.run_gw("--check", "-c", p)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{p}:1: unknown key 'aws.regoin'", r.stderr)

    def test_check_looping_reply_topic(self):
        p = self.write('aws: { region = "eu-west-1"; account = "1"; };\n'
                       'routes = ( { request_topic = "a/{thing}/{command}";\n'
                       '  reply_topic = "a/{thing}/{status}"; } );\n')
        r = self.run_gw("--check", "-c", p)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{p}:3:", r.stderr)
        self.assertIn("loop", r.stderr)

    def test_missing_file_is_a_configuration_error(self):
        r = self.run_gw("--check", "-c", "/nonexistent/cmdgate.conf")
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/cmdgate.conf", r.stderr)

    def test_usage_errors_exit_64(self):
        self.assertEqual(self.run_gw("--bogus").returncode, 64)
        self.assertEqual(self.run_gw("--log-level", "loud").returncode, 64)
        self.assertEqual(self.run_gw("extra-arg").returncode, 64)

    def test_version_and_help(self):
        r = self.run_gw("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^cmdgate \d+\.\d+\.\d+")
        r = self.run_gw("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check", r.stdout)


class LocalEndpointModel(unittest.TestCase):
    """The local endpoint refuses what AWS refuses, or the tests above could
    pass with a gateway that sends AWS something it would reject."""

    def post(self, body):
        import hashlib
        import urllib.error
        import urllib.request
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        import fake_aws
        raw = json.dumps(body).encode()
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        host = f"127.0.0.1:{AWS.http_port}"
        headers = [("content-type", "application/json"), ("host", host), ("x-amz-date", date)]
        signed = [h for h, _ in headers]
        creq = fake_aws.canonical_request("POST", "/command-executions", "", headers, signed,
                                          hashlib.sha256(raw).hexdigest())
        sig = fake_aws.sign(SECRET, date, "eu-west-1", fake_aws.SERVICE, creq)
        auth = (f"AWS4-HMAC-SHA256 Credential={AKID}/{date[:8]}/eu-west-1/{fake_aws.SERVICE}/"
                f"aws4_request, SignedHeaders={';'.join(signed)}, Signature={sig}")
        req = urllib.request.Request(AWS.url + "/command-executions", raw,
                                     dict(headers[:1] + headers[2:] + [("authorization", auth)]))
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_only_valid_bodies_are_accepted(self):
        AWS.reset()
        good = {"targetArn": "arn:aws:iot:eu-west-1:123456789012:thing/t1",
                "commandArn": "arn:aws:iot:eu-west-1:123456789012:command/c1"}
        for ok in (good, dict(good, clientToken="abc"), dict(good, parameters={"a.b$_-": {"S": "x"}}),
                   dict(good, targetArn="arn:aws:iot:eu-west-1:123456789012:thinggroup/line_3"),
                   dict(good, targetArn="arn:aws-cn:iot:cn-north-1:123456789012:thing/a:b"),
                   dict(good, targetArn="arn:aws-us-gov:iot:us-gov-west-1:123456789012:thing/x")):
            status, r = self.post(ok)
            self.assertEqual(status, 200, (ok, r))
        for bad in (dict(good, clientToken="abc\n"), dict(good, parameters={"ab\n": {"S": "x"}}),
                    dict(good, targetArn="not-an-arn"),
                    dict(good, targetArn="arn:aws:iot:eu-west-1:123456789012:thing/"),
                    dict(good, targetArn="arn:aws:iot:eu-west-1:123456789012:thing/a.b"),
                    dict(good, targetArn="arn:aws:iot:eu-west-1:123456789012:command/c1"),
                    dict(good, targetArn="arn:aws:iot:eu-west-1:1234:thing/t1"),
                    dict(good, targetArn="arn:aws:s3:eu-west-1:123456789012:thing/t1"),
                    dict(good, targetArn=good["targetArn"] + "\n")):
            status, r = self.post(bad)
            self.assertEqual(status, 400, bad)
            self.assertEqual(AWS.calls()[-1]["outcome"], "ValidationException", bad)


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report."""


if __name__ == "__main__":
    harness.main()
