"""The local AWS IoT Core stand-in itself (tests/iotcore.py) and the commands
service it carries (tests/fake_commands.py inside tests/fake_aws.py), checked
without cmdgate: a paho client plays a proxied link. If these fail, the
section 9 tests (test_proxy.py) prove nothing. Every wait is bounded."""
import base64
import datetime
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from harness import AKID, SECRET, FakeAws, wait_for  # noqa: E402
import fake_aws  # noqa: E402  (its SigV4, to sign as a client would)
import iotcore  # noqa: E402
from iotcore import commands_control, execution  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

PASSES = "plain"  # no gateway runs here: nothing for the sanitizers to see
TMP = CORE = AWS = None
THINGS = ["press-1", "press-2", "robot-1"]


def setUpModule():
    global TMP, CORE, AWS
    TMP = tempfile.mkdtemp(prefix="cmdgate-iotcore-")
    CORE = iotcore.IotCore(TMP, things=THINGS)
    AWS = FakeAws(TMP, iotcore=CORE.admin)
    wait_for(lambda: any(c["user"] == iotcore.ADMIN for c in CORE.connections()), 5)


def tearDownModule():
    AWS.stop()
    CORE.cleanup()


def signed(method, path, query="", body=b"", service="iot-jobs-data"):
    """An HTTP call signed as the gateway signs it."""
    host = f"127.0.0.1:{AWS.http_port}"
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = [("host", host), ("x-amz-date", amz)]
    creq = fake_aws.canonical_request(method, path, query, headers, ["host", "x-amz-date"],
                                      hashlib.sha256(body).hexdigest())
    sig = fake_aws.sign(SECRET, amz, "eu-west-1", service, creq)
    auth = (f"AWS4-HMAC-SHA256 Credential={AKID}/{amz[:8]}/eu-west-1/{service}/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={sig}")
    req = urllib.request.Request(f"http://{host}{path}" + (f"?{query}" if query else ""),
                                 body if method == "POST" else None, method=method,
                                 headers={"X-Amz-Date": amz, "Authorization": auth,
                                          "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


def start(thing, command="open-valve", timeout=30, params=None):
    body = {"targetArn": f"arn:aws:iot:eu-west-1:123456789012:thing/{thing}",
            "commandArn": f"arn:aws:iot:eu-west-1:123456789012:command/{command}",
            "executionTimeoutSeconds": timeout}
    if params:
        body["parameters"] = params
    return signed("POST", "/command-executions", body=json.dumps(body).encode())["executionId"]


def get_execution(thing, exec_id):
    q = ("includeResult=true&targetArn=" +
         urllib.parse.quote(f"arn:aws:iot:eu-west-1:123456789012:thing/{thing}", safe=""))
    return signed("GET", f"/command-executions/{exec_id}", q, service="iot")


class Link:
    """A proxied link as cmdgate should hold it: client id = thing, clean
    start off, persistent session, the five subscriptions of section 9."""

    def __init__(self, thing, cert=None, key=None, version=5, client_id=None, subscribe=True,
                 filters=None):
        self.thing = thing
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=client_id or thing,
                             protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
                             clean_session=None if version == 5 else False)
        self.c.tls_set(ca_certs=CORE.ca, certfile=cert or CORE.cert, keyfile=key or CORE.key)
        self.c.on_message = self._on_message
        self.connected = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        if version == 5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = 3600
            self.c.connect("127.0.0.1", CORE.port, 60, clean_start=False, properties=p)
        else:
            self.c.connect("127.0.0.1", CORE.port, 60)
        self.c.loop_start()
        assert self.connected.wait(5)
        base = f"$aws/commands/things/{thing}/executions/+/"
        if subscribe:
            for f in filters or ("request/json", "request/cbor", "request",
                                 "response/accepted/json", "response/rejected/json"):
                self.c.subscribe(base + f if not f.startswith("$") else f, qos=1)
        time.sleep(0.2)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def got(self, part):
        with self.lock:
            return [m for m in self.msgs if part in m.topic]

    def wait(self, part, n=1, timeout=5):
        ok = wait_for(lambda: len(self.got(part)) >= n, timeout)
        if not ok:
            raise AssertionError(f"{self.thing}: no message on *{part}* in {timeout}s: "
                                 f"{[m.topic for m in self.msgs]}")
        return self.got(part)

    def answer(self, exec_id, doc):
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        t = f"$aws/commands/things/{self.thing}/executions/{exec_id}/response/json"
        self.c.publish(t, data, qos=1).wait_for_publish(5)

    def verdict(self, exec_id, n=1):
        got = self.wait(f"/executions/{exec_id}/response/", n)
        return [json.loads(m.payload) for m in got], got

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class StandIn(unittest.TestCase):
    def setUp(self):
        AWS.reset()
        commands_control(AWS.url, reset=True)

    def test_start_publishes_the_request_with_content_type_and_expiry(self):
        link = Link("press-1")
        try:
            exec_id = start("press-1", timeout=30, params={"speed": {"I": 5}})
            m = link.wait(f"/executions/{exec_id}/request/json")[0]
            self.assertEqual(m.topic, f"$aws/commands/things/press-1/executions/{exec_id}/request/json")
            self.assertEqual(json.loads(m.payload)["parameters"], {"speed": {"I": 5}})
            self.assertEqual(m.properties.ContentType, "application/json")
            self.assertIn(m.properties.MessageExpiryInterval, (29, 30))
            self.assertEqual(m.qos, 1)
        finally:
            link.close()

    def test_cbor_and_raw_formats_and_their_topics(self):
        commands_control(AWS.url, formats={
            "cb": {"format": "cbor", "payload_b64": base64.b64encode(b"\xa1\x61a\x01").decode()},
            "rw": {"format": "raw", "payload_b64": base64.b64encode(b"\x00\xffbin").decode(),
                   "content_type": "application/x-press"}})
        link = Link("press-1")
        try:
            e1, e2 = start("press-1", "cb"), start("press-1", "rw")
            m = link.wait(f"/executions/{e1}/request/cbor")[0]
            self.assertEqual((m.payload, m.properties.ContentType), (b"\xa1\x61a\x01", "application/cbor"))
            link.wait(f"/executions/{e2}/request")
            m = [x for x in link.msgs if x.topic.endswith(f"{e2}/request")][0]
            self.assertEqual((m.payload, m.properties.ContentType), (b"\x00\xffbin", "application/x-press"))
        finally:
            link.close()

    def test_answer_accepted_and_get_command_execution_shows_it(self):
        link = Link("press-1")
        try:
            exec_id = start("press-1")
            link.wait(f"{exec_id}/request")
            link.answer(exec_id, {"status": "IN_PROGRESS"})
            docs, _ = link.verdict(exec_id)
            self.assertEqual(docs, [{"executionId": exec_id}])
            self.assertEqual(get_execution("press-1", exec_id)["status"], "IN_PROGRESS")
            link.answer(exec_id, {"status": "SUCCEEDED",
                                  "statusReason": {"reasonCode": "OK", "reasonDescription": "done"},
                                  "result": {"pos": {"s": "open"}, "ok": {"b": True},
                                             "raw": {"bin": "AP8="}}})
            docs, msgs = link.verdict(exec_id, 2)
            self.assertTrue(msgs[1].topic.endswith("/response/accepted/json"))
            g = get_execution("press-1", exec_id)
            self.assertEqual(g["status"], "SUCCEEDED")
            self.assertEqual(g["result"], {"pos": {"S": "open"}, "ok": {"B": True}, "raw": {"BIN": "AP8="}})
            self.assertEqual(g["statusReason"]["reasonCode"], "OK")
            # a terminal state is final
            link.answer(exec_id, {"status": "FAILED"})
            docs, msgs = link.verdict(exec_id, 3)
            self.assertEqual(docs[2]["error"], "TerminalStateReached")
            self.assertEqual([u["verdict"] for u in execution(AWS.url, exec_id)["updates"]],
                             ["accepted", "accepted", "TerminalStateReached"])
        finally:
            link.close()

    def test_bad_updates_are_rejected_by_aws_rules(self):
        link = Link("press-2")
        try:
            cases = [({"status": "DONE"}, "InvalidRequest"),
                     ({"status": "CREATED"}, "InvalidStateTransition"),
                     ({"status": "FAILED", "statusReason": {"reasonCode": "bad code"}}, "InvalidRequest"),
                     ({"status": "FAILED", "statusReason": {"reasonCode": "X",
                                                            "reasonDescription": "d" * 1025}}, "InvalidRequest"),
                     ({"status": "SUCCEEDED", "result": {}}, "InvalidRequest"),
                     ({"status": "SUCCEEDED", "result": {"a": {"s": 5}}}, "InvalidRequest"),
                     ({"status": "SUCCEEDED", "result": {"a": {"S": "x"}}}, "InvalidRequest"),
                     ({"status": "SUCCEEDED", "clientToken": "x"}, "InvalidRequest"),
                     (b"not json", "InvalidJson")]
            for i, (doc, code) in enumerate(cases):
                exec_id = commands_control(AWS.url, execute={"thing": "press-2"})["executionId"]
                link.answer(exec_id, doc)
                docs, msgs = link.verdict(exec_id)
                self.assertTrue(msgs[0].topic.endswith("/response/rejected/json"), doc)
                self.assertEqual(docs[0]["error"], code, doc)
                self.assertEqual(docs[0]["executionId"], exec_id)
                self.assertEqual(execution(AWS.url, exec_id)["status"], "CREATED")
        finally:
            link.close()

    def test_aws_timeout_is_not_terminal_and_a_late_answer_counts(self):
        link = Link("robot-1")
        try:
            exec_id = commands_control(AWS.url, execute={"thing": "robot-1", "timeout_s": 1})["executionId"]
            ok = wait_for(lambda: execution(AWS.url, exec_id)["status"] == "TIMED_OUT", 3)
            self.assertTrue(ok)
            self.assertEqual(get_execution("robot-1", exec_id)["statusReason"]["reasonCode"],
                             "$NO_RESPONSE_FROM_DEVICE")
            link.answer(exec_id, {"status": "SUCCEEDED"})
            docs, _ = link.verdict(exec_id)
            self.assertEqual(docs, [{"executionId": exec_id}])
            # a device-sent TIMED_OUT is terminal
            e2 = commands_control(AWS.url, execute={"thing": "robot-1"})["executionId"]
            link.answer(e2, {"status": "TIMED_OUT"})
            link.answer(e2, {"status": "SUCCEEDED"})
            docs, _ = link.verdict(e2, 2)
            self.assertEqual(docs[1]["error"], "TerminalStateReached")
        finally:
            link.close()

    def test_data_conflict_while_applying_and_injected_errors(self):
        commands_control(AWS.url, apply_ms=500)
        link = Link("robot-1")
        try:
            exec_id = commands_control(AWS.url, execute={"thing": "robot-1"})["executionId"]
            link.answer(exec_id, {"status": "IN_PROGRESS"})
            link.answer(exec_id, {"status": "IN_PROGRESS"})
            docs, _ = link.verdict(exec_id, 2)
            self.assertEqual(docs[0]["error"], "DataConflict")
            self.assertEqual(docs[1], {"executionId": exec_id})
            commands_control(AWS.url, apply_ms=0, update_rules=[
                {"execution": exec_id, "times": 1, "error": "RequestThrottled"}])
            link.answer(exec_id, {"status": "SUCCEEDED"})
            link.answer(exec_id, {"status": "SUCCEEDED"})
            docs, _ = link.verdict(exec_id, 4)
            self.assertEqual([d.get("error") for d in docs[2:]], ["RequestThrottled", None])
        finally:
            link.close()

    def test_a_link_touches_only_its_own_thing(self):
        a = Link("press-1", filters=("$aws/commands/things/press-2/executions/+/request/json",
                                     "request/json"))
        try:
            e2 = commands_control(AWS.url, execute={"thing": "press-2"})["executionId"]
            e1 = commands_control(AWS.url, execute={"thing": "press-1"})["executionId"]
            a.wait(f"{e1}/request")
            time.sleep(0.3)
            self.assertEqual(a.got(e2), [])  # never delivered to press-1's link
            a.c.publish(f"$aws/commands/things/press-2/executions/{e2}/response/json",
                        b'{"status":"SUCCEEDED"}', qos=1).wait_for_publish(5)
            time.sleep(0.3)
            self.assertEqual(execution(AWS.url, e2)["updates"], [])
            v = CORE.violations()
            self.assertTrue(any("subscribed to '$aws/commands/things/press-2" in x for x in v), v)
            self.assertTrue(any("published to '$aws/commands/things/press-2" in x for x in v), v)
        finally:
            a.close()

    def test_certificates_connect_only_as_their_things(self):
        d = os.path.join(TMP, "ids")
        CORE.identity_dir(d, ["robot-9"])
        cert = os.path.join(d, "robot-9", "certificate.pem.crt")
        key = os.path.join(d, "robot-9", "private.pem.key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        before = len(CORE.violations())
        ok = Link("robot-9", cert, key, subscribe=False)
        ok.close()
        self.assertEqual(len(CORE.violations()), before)
        bad = Link("press-1", cert, key, subscribe=False, client_id="press-1")
        bad.close()
        self.assertTrue(wait_for(lambda: any("'robot-9' is not attached to thing 'press-1'" in x
                                             for x in CORE.violations()), 3))
        ungated = Link("not-a-thing", subscribe=False)
        ungated.close()
        self.assertTrue(wait_for(lambda: any("not attached to thing 'not-a-thing'" in x
                                             for x in CORE.violations()), 3))
        # no certificate at all: the TLS listener refuses the connection
        c = mqtt.Client(client_id="press-1", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=CORE.ca)
        with self.assertRaises(Exception):
            c.connect("127.0.0.1", CORE.port, 10)
            c.loop(2)
            c.loop(2)

    def test_persistent_session_keeps_requests_while_away_and_across_a_restart(self):
        link = Link("press-2")
        link.close()
        e1 = commands_control(AWS.url, execute={"thing": "press-2"})["executionId"]
        CORE.restart()
        self.assertTrue(wait_for(lambda: any(c["user"] == iotcore.ADMIN
                                             for c in CORE.connections()[-3:]), 5))
        link = Link("press-2", subscribe=False)
        try:
            link.wait(f"{e1}/request/json")
            conn = CORE.links("press-2")[-1]
            self.assertEqual((conn["protocol"], conn["clean"], conn["user"]),
                             (5, False, iotcore.GATEWAY_CN))
            subs = [f for f, q in CORE.subscriptions("press-2") if q == 1]
            self.assertEqual(len(set(subs)), 5, subs)
        finally:
            link.close()

    def test_mqtt_311_link(self):
        link = Link("robot-1", version=4)
        try:
            exec_id = commands_control(AWS.url, execute={"thing": "robot-1"})["executionId"]
            link.wait(f"{exec_id}/request/json")
            link.answer(exec_id, {"status": "SUCCEEDED"})
            docs, _ = link.verdict(exec_id)
            self.assertEqual(docs, [{"executionId": exec_id}])
            self.assertEqual(CORE.links("robot-1")[-1]["protocol"], 2)
        finally:
            link.close()


if __name__ == "__main__":
    __import__("harness").main()
