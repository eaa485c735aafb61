"""A rogue device harms only itself (issue 18, items 1-4 and the follow cap).

The attacker is a device on the factory LAN with a valid broker login of its
own. It tries to act for another thing (the shipped deploy/ broker files,
run unchanged but for ports and paths), to make the gateway write where it
must not (the MQTT 5 Response Topic), to lock other devices out (a flood),
to poison another thing's client token, and to make the gateway follow
executions without bound. Each test says what held.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Device, FakeAws, Gateway, Mosquitto, config, free_port,  # noqa
                     make_pki, wait_for)

import paho.mqtt.client as mqtt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = BROKER = AWS = None


def setUpModule():
    global TMP, BROKER, AWS
    TMP = tempfile.mkdtemp(prefix="cmdgate-rogue-")
    BROKER = Mosquitto(TMP)
    AWS = FakeAws(TMP)


def tearDownModule():
    AWS.stop()
    BROKER.stop()


def calls_for(thing):
    return [c for c in AWS.calls() if c.get("thing") == thing]


# ---- 1. identity bound to authentication (deploy/) ----------------------

class DeployBroker:
    """Mosquitto from deploy/mosquitto.conf and deploy/acl, unchanged but for
    the listeners' ports (bound to loopback) and the /mosquitto/config/ paths.
    Users: cmdgate (the gateway), dev-a and victim-9 (devices)."""
    PASSWORDS = {"cmdgate": "gw-pass", "dev-a": "a-pass", "victim-9": "v-pass"}

    def __init__(self, certificates=False):
        # mosquitto started as root drops to its own user, who must read these:
        # a directory of its own, outside the module's private one
        self.dir = tempfile.mkdtemp(prefix="cmdgate-rogue-deploy-")
        os.chmod(self.dir, 0o755)
        self.pki = make_pki(self.dir)
        shutil.copy(os.path.join(ROOT, "deploy/acl"), os.path.join(self.dir, "acl"))
        passwd = os.path.join(self.dir, "passwd")
        for i, (user, pw) in enumerate(self.PASSWORDS.items()):
            subprocess.run(["mosquitto_passwd"] + (["-c"] if i == 0 else []) +
                           ["-b", passwd, user, pw], check=True)
        self.port, self.tls_port = free_port(), free_port()
        with open(os.path.join(ROOT, "deploy/mosquitto.conf")) as f:
            text = f.read()
        self.conf_text = text
        if certificates:  # the documented alternative: uncomment its two lines
            self.certs = {u: self.device_cert(u) for u in ("dev-a", "victim-9")}
            text = text.replace("#require_certificate true\n", "require_certificate true\n")
            text = text.replace("#use_identity_as_username true\n",
                                "use_identity_as_username true\n")
        text = (text.replace("listener 1883\n", f"listener {self.port} 127.0.0.1\n")
                .replace("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n")
                .replace("/mosquitto/config/server.pem", self.pki["cert"])
                .replace("/mosquitto/config/server.key", self.pki["key"])
                .replace("/mosquitto/config/", self.dir + "/"))
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(text)
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)
        self.log = open(os.path.join(self.dir, "mosquitto.log"), "w")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not wait_for(self.listening, 10):
            with open(self.log.name) as f:
                why = f.read()
            self.stop()
            raise RuntimeError("the deploy/ mosquitto did not start:\n" + why)

    def device_cert(self, cn):
        """A device certificate whose common name is its thing name."""
        key, csr, pem = (os.path.join(self.dir, f"{cn}.{x}") for x in ("key", "csr", "pem"))
        for args in (["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                      "-keyout", key, "-out", csr],
                     ["x509", "-req", "-in", csr, "-CA", self.pki["ca"], "-CAkey",
                      os.path.join(self.dir, "ca.key"), "-CAcreateserial", "-days", "2",
                      "-out", pem]):
            subprocess.run(["openssl"] + args, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return pem, key

    def listening(self):
        import socket
        try:
            for p in (self.port, self.tls_port):
                socket.create_connection(("127.0.0.1", p), 0.2).close()
            return True
        except OSError:
            return False

    def client(self, user, client_id, tls=True):
        """A device over TLS (the gateway: plain), logged in as user."""
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        cert = getattr(self, "certs", {}).get(user) if tls else None
        if not cert:
            c.username_pw_set(user, self.PASSWORDS[user])
        if tls:
            c.tls_set(ca_certs=self.pki["ca"], certfile=cert and cert[0],
                      keyfile=cert and cert[1])
        c.msgs = []
        c.on_message = lambda cl, u, m: c.msgs.append(m)
        c.connect("127.0.0.1", self.tls_port if tls else self.port, keepalive=30)
        c.loop_start()
        if not wait_for(c.is_connected, 5):
            raise AssertionError(f"{user} could not connect")
        return c

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def close(*clients):
    for c in clients:
        c.loop_stop()
        c.disconnect()


class IdentityIsTheLogin(unittest.TestCase):
    """deploy/mosquitto.conf + deploy/acl on a real mosquitto with cmdgate:
    a device reaches its own thing only, whatever client id it picks."""

    @classmethod
    def setUpClass(cls):
        cls.broker = DeployBroker()
        pw = os.path.join(TMP, "gw-password")
        with open(pw, "w") as f:
            f.write(DeployBroker.PASSWORDS["cmdgate"])
        os.chmod(pw, 0o600)
        conf = config(cls.broker.port, AWS.url, mqtt_extra=(
            f'client_id = "cmdgate"; username = "cmdgate"; password_file = "{pw}";'))
        cls.gw = Gateway(TMP, conf)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.broker.stop()

    def test_shipped_files_bind_identity_to_the_login(self):
        text = self.broker.conf_text
        self.assertIn("use_username_as_clientid true", text)
        self.assertIn("allow_anonymous false", text)
        with open(os.path.join(ROOT, "deploy/acl")) as f:
            acl = f.read()
        self.assertNotIn("%c", acl)
        self.assertIn("pattern readwrite commands/%u/#", acl)
        self.assertIn("pattern readwrite $aws/commands/things/%u/#", acl)

    def test_a_device_cannot_publish_for_another_thing_by_picking_its_client_id(self):
        dev = self.broker.client("dev-a", "victim-9")
        try:
            dev.publish("commands/victim-9/open/start", json.dumps({"id": "evil"}),
                        qos=1).wait_for_publish(5)
            # (a request that gets through is signed within ~10 ms)
            self.assertFalse(wait_for(lambda: calls_for("victim-9"), 2),
                             "the gateway signed a call for victim-9")
            dev.subscribe("commands/dev-a/#", 1)
            time.sleep(0.2)
            # its own requests still work
            dev.publish("commands/dev-a/open/start", json.dumps({"id": "mine"}),
                        qos=1).wait_for_publish(5)
            self.assertTrue(wait_for(lambda: any(
                m.topic == "commands/dev-a/open/start/accepted" for m in dev.msgs), 10))
        finally:
            close(dev)

    def test_a_device_cannot_read_another_things_replies(self):
        spy = self.broker.client("dev-a", "victim-9")
        victim = self.broker.client("victim-9", "victim-9-real")
        try:
            spy.subscribe("commands/#", 1)
            spy.subscribe("commands/victim-9/#", 1)
            victim.subscribe("commands/victim-9/#", 1)
            time.sleep(0.2)
            victim.publish("commands/victim-9/open/start", json.dumps({"id": "v-1"}),
                           qos=1).wait_for_publish(5)
            self.assertTrue(wait_for(lambda: any(
                m.topic == "commands/victim-9/open/start/accepted" for m in victim.msgs), 10))
            time.sleep(0.3)
            self.assertEqual([m.topic for m in spy.msgs if "victim-9" in m.topic], [])
        finally:
            close(spy, victim)

    def test_nobody_can_take_the_gateways_client_id(self):
        before = self.gw.text()
        rogue = self.broker.client("dev-a", "cmdgate")
        try:
            rogue.subscribe("commands/dev-a/#", 1)
            time.sleep(0.5)
            rogue.publish("commands/dev-a/open/start", json.dumps({"id": "after"}),
                          qos=1).wait_for_publish(5)
            self.assertTrue(wait_for(lambda: any(
                m.topic == "commands/dev-a/open/start/accepted" and
                json.loads(m.payload).get("id") == "after" for m in rogue.msgs), 10))
            after = self.gw.text()[len(before):]
            self.assertNotIn("connection lost", after)
            self.assertNotIn("disconnected us", after)
        finally:
            close(rogue)

    def test_a_client_without_a_login_gets_nowhere(self):
        c = mqtt.Client(client_id="anon", protocol=mqtt.MQTTv5)
        rc = []
        c.on_connect = lambda cl, u, f, r, p=None: rc.append(r)
        c.connect("127.0.0.1", self.broker.port, 30)
        c.loop_start()
        try:
            self.assertTrue(wait_for(lambda: rc, 5))
            self.assertNotEqual(rc[0], 0)  # not authorized: no anonymous login
        finally:
            c.loop_stop()


class IdentityIsTheCertificate(unittest.TestCase):
    """The same files with device certificates (require_certificate and
    use_identity_as_username uncommented): the certificate's name is the
    thing, whatever client id or user name the device sends."""

    def test_a_device_with_a_certificate_reaches_its_own_thing_only(self):
        broker = DeployBroker(certificates=True)
        pw = os.path.join(TMP, "gw-password-cert")
        with open(pw, "w") as f:
            f.write(DeployBroker.PASSWORDS["cmdgate"])
        os.chmod(pw, 0o600)
        gw = Gateway(TMP, config(broker.port, AWS.url, mqtt_extra=(
            f'client_id = "cmdgate"; username = "cmdgate"; password_file = "{pw}";')))
        dev = broker.client("dev-a", "victim-9")
        try:
            dev.subscribe("commands/#", 1)
            time.sleep(0.2)
            dev.publish("commands/victim-9/open/start", json.dumps({"id": "evil"}),
                        qos=1).wait_for_publish(5)
            self.assertFalse(wait_for(lambda: calls_for("victim-9"), 2),
                             "the gateway signed a call for victim-9")
            dev.publish("commands/dev-a/open/start", json.dumps({"id": "cert"}),
                        qos=1).wait_for_publish(5)
            self.assertTrue(wait_for(lambda: any(
                m.topic == "commands/dev-a/open/start/accepted" for m in dev.msgs), 10))
        finally:
            close(dev)
            gw.stop()
            broker.stop()


# ---- 2. Response Topic confined -----------------------------------------

class ResponseTopicConfined(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(TMP, config(BROKER.port, AWS.url,
                                     mqtt_extra='client_id = "gw-rogue-rt";'))
        cls.dev = Device(BROKER.port, subscribe=("commands/#", "cmdgate/#"))

    @classmethod
    def tearDownClass(cls):
        cls.dev.close()
        cls.gw.stop()

    def forbidden(self, response_topic, thing):
        AWS.reset()
        before = len(self.dev.replies(response_topic))
        r, m = self.dev.request(thing, "open", {"id": "r-42"}, response_topic=response_topic,
                                correlation=b"c-1")
        self.assertEqual(m.topic, f"commands/{thing}/open/start/rejected")
        self.assertEqual(r["code"], "Forbidden")
        self.assertEqual(r["id"], "r-42")
        self.assertFalse(r["retryable"])
        self.assertNotIn("clientToken", r)
        self.assertEqual(AWS.calls(), [])
        time.sleep(0.2)
        self.assertEqual(len(self.dev.replies(response_topic)), before)

    def test_reply_into_another_things_reply_topic_is_forbidden(self):
        self.forbidden("commands/victim-9/open/start/accepted", "rt-a1")

    def test_reply_into_another_things_execution_topic_is_forbidden(self):
        self.forbidden("commands/victim-9/open/executions/e-1", "rt-a2")

    def test_reply_into_the_gateways_status_topic_is_forbidden(self):
        self.forbidden("cmdgate/gw-rogue-rt/status", "rt-a3")

    def test_reply_onto_a_request_topic_is_forbidden(self):
        self.forbidden("commands/rt-a4/other/start", "rt-a4")

    def test_reply_into_the_things_own_subtree_is_honoured(self):
        AWS.reset()
        self.dev.publish("commands/rt-a5/open/start", {"id": "mine"},
                         response_topic="commands/rt-a5/inbox", correlation=b"c-5")
        got = self.dev.wait_reply("commands/rt-a5/inbox")
        r = json.loads(got[0].payload)
        self.assertEqual(r["status"], "accepted")
        self.assertEqual(got[0].properties.CorrelationData, b"c-5")


# ---- 3. fair share --------------------------------------------------------

class FairShare(unittest.TestCase):
    def test_a_flooding_device_with_a_slow_endpoint_does_not_lock_others_out(self):
        """queue_size 80, per_thing_queue at its default (64): a device sends
        120 requests for its thing, each call taking 1 s; ten other devices
        are still admitted and answered accepted."""
        AWS.reset()
        AWS.control(rules=[{"thing": "flood-1", "delay_ms": 1000}])
        gw = Gateway(TMP, config(BROKER.port, AWS.url, gateway_extra="queue_size = 80;"))
        flood = Device(BROKER.port, subscribe=("commands/flood-1/#",))
        dev = Device(BROKER.port, subscribe=("commands/+/c1/start/+",))
        try:
            for i in range(120):
                flood.c.publish("commands/flood-1/c1/start", json.dumps({"id": i}), qos=1)
            # the flood is in: the queue could take 80 waiting (and one call on
            # the wire), this thing only 64
            self.assertTrue(wait_for(lambda: len(
                flood.replies("commands/flood-1/c1/start/rejected")) >= 120 - 81, 5))
            time.sleep(0.2)
            t0 = time.time()
            for i in range(10):
                dev.publish(f"commands/other-{i}/c1/start", {"id": f"o-{i}"})
            # promptly: not once the flood has expired (8 s)
            got = dev.wait_reply("commands/other-", 10, timeout=3)
            took = time.time() - t0
            codes = [(m.topic, json.loads(m.payload).get("code")) for m in got]
            self.assertTrue(all(t.endswith("/accepted") for t, _ in codes), codes)
            over = [json.loads(m.payload)["code"]
                    for m in flood.replies("commands/flood-1/c1/start/rejected")]
            self.assertEqual(over.count("Overloaded"), 120 - 64)
            print(f"  flood: {len(over)} of 120 Overloaded; others: 10 of 10 accepted "
                  f"in {took:.2f} s", file=sys.stderr)
        finally:
            AWS.reset()
            flood.close()
            dev.close()
            gw.stop()


# ---- 4. token poisoning -------------------------------------------------

class TokenBinding(unittest.TestCase):
    def test_an_explicit_token_cannot_poison_another_things_id(self):
        AWS.reset()
        gw = Gateway(TMP, config(BROKER.port, AWS.url))
        dev = Device(BROKER.port)
        try:
            victims = hashlib.sha256(b"tok-victim\nopen\nr-42").hexdigest()
            r, _ = dev.request("tok-rogue", "open", {"id": "x", "clientToken": victims})
            self.assertEqual(r["status"], "accepted")
            r, _ = dev.request("tok-victim", "open", {"id": "r-42"})
            self.assertEqual(r["status"], "accepted", r)  # not a 409 ConflictException
            self.assertEqual(r["clientToken"], victims)
            sent = hashlib.sha256(f"token\ntok-rogue\nopen\n{victims}".encode()).hexdigest()
            self.assertEqual(calls_for("tok-rogue")[0]["clientToken"], sent)
            # the rogue's own repeat is still idempotent
            r2, _ = dev.request("tok-rogue", "open", {"id": "x", "clientToken": victims})
            self.assertEqual(r2["clientToken"], sent)
            self.assertEqual(r2["executionId"], calls_for("tok-rogue")[0]["executionId"])
            self.assertEqual([c["outcome"] for c in calls_for("tok-rogue")],
                             ["started", "replayed"])
        finally:
            dev.close()
            gw.stop()


# ---- 5. follows capped ----------------------------------------------------

class FollowCap(unittest.TestCase):
    def test_one_follow_beyond_follow_max_ends_at_once_overloaded(self):
        AWS.reset()
        gw = Gateway(TMP, config(BROKER.port, AWS.url, gateway_extra="follow_max = 2;",
                                 extra="routes = ( { follow = true; } );",
                                 aws_extra=f'control_endpoint = "{AWS.url}";'))
        dev = Device(BROKER.port)
        try:
            ex = {}
            for i in range(3):
                r, _ = dev.request("fcap-1", "lc-never", {"id": f"f-{i}"})
                self.assertEqual(r["status"], "accepted")
                ex[i] = r["executionId"]
            topic = f"commands/fcap-1/lc-never/executions/{ex[2]}"
            got = dev.wait_reply(topic, 1, timeout=5)
            m = json.loads(got[0].payload)
            self.assertEqual(m, {"id": "f-2", "executionId": ex[2], "final": True,
                                 "status": None, "code": "Overloaded", "retryable": True})
            self.assertIn("gateway.follow_max", gw.text())
            # the two within the cap are still followed (not ended)
            self.assertTrue(wait_for(lambda: dev.replies(
                f"commands/fcap-1/lc-never/executions/{ex[0]}"), 5))
            for i in (0, 1):
                for msg in dev.replies(f"commands/fcap-1/lc-never/executions/{ex[i]}"):
                    self.assertFalse(json.loads(msg.payload)["final"])
        finally:
            dev.close()
            gw.stop()


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    pass


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    sys.exit(1 if failed or result.testsRun == 0 else 0)
