"""Other brokers (issue 11): RabbitMQ 3.10 (MQTT plugin, 3.1.1), ejabberd
23.01 (mod_mqtt, MQTT 5 and 3.1.1) and aedes 1.2 (Node, 3.1.1), each started
here on loopback on free ports and stopped afterwards. For each: requests
and replies, the status and the will, a burst, QoS 2 and a broker restart;
what each says to MQTT 5 or $share when it has none. A broker that is not
installed fails the test (scripts/deps.sh installs them; aedes comes from
npm into the build directory).

Also, against a scripted TCP peer: MQTT 3.1.1 is pinned (never a 3.1
MQIsdp fallback) and a CONNACK refusal is logged with its code; against
mosquitto: a DISCONNECT from the broker is logged with its reason."""
import json
import os
import shutil
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
from harness import (CMDGATE, Device, FakeAws, Gateway, Mosquitto, config, free_port,  # noqa: E402
                     wait_for)

# scripts/ptest.py --modules: the passes this module runs in (the other
# brokers' behaviour, not the gateway's memory, is what it is about)
PASSES = "plain"

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.dirname(os.path.abspath(CMDGATE)), "broker-cache")
AEDES_VERSION = "1.2.0"
TMP = AWS = None
TIMES = {}


def setUpModule():
    global TMP, AWS
    TMP = tempfile.mkdtemp(prefix="cmdgate-brokers-")
    AWS = FakeAws(TMP)


def tearDownModule():
    AWS.stop()
    for k, v in sorted(TIMES.items()):
        print(f"  {k}: {v:.1f}s", file=sys.stderr)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Broker:
    """A broker process group started by the test; restartable on its ports."""
    name = "?"
    username = ""      # clients must give one (any, with any password)
    versions = (4,)
    qos2 = True        # grants QoS 2 subscriptions
    start_timeout = 60

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.prepare()
        self.start()

    def start(self):
        t0 = time.time()
        self.log = open(os.path.join(self.dir, "broker.log"), "a")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env(), cwd=self.dir, start_new_session=True,
                                     **self.popen_user())
        if not wait_for(lambda: port_open(self.port) or self.proc.poll() is not None,
                        self.start_timeout, 0.1) or self.proc.poll() is not None:
            self.stop()
            with open(os.path.join(self.dir, "broker.log")) as f:
                raise AssertionError(f"{self.name} did not start:\n{f.read()[-3000:]}")
        TIMES.setdefault(f"{self.name} start", time.time() - t0)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # children of the group (beam under a wrapper) go with it
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        wait_for(lambda: not port_open(self.port), 10)
        self.log.close()

    def close(self):
        self.stop()

    def env(self):
        return dict(os.environ)

    def popen_user(self):
        return {}

    def prepare(self):
        pass


class RabbitMQ(Broker):
    name = "rabbitmq"
    versions = (4,)
    qos2 = False  # the plugin downgrades QoS 2 to 1
    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def prepare(self):
        if not os.path.exists(self.SERVER):
            raise AssertionError("rabbitmq-server is not installed (run scripts/deps.sh)")
        self.epmd_port, self.amqp_port, self.dist_port = free_port(), free_port(), free_port()
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
                    f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
                    "mqtt.allow_anonymous = true\nloopback_users = none\n")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        self.epmd_log = open(os.path.join(self.dir, "epmd.log"), "w")
        self.epmd = subprocess.Popen([epmd, "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                                     stdout=self.epmd_log, stderr=subprocess.STDOUT)

    def command(self):
        return [self.SERVER]

    def env(self):
        e = dict(os.environ)
        d = self.dir
        e.update(HOME=d, ERL_EPMD_PORT=str(self.epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
                 RABBITMQ_NODENAME=f"cgt{self.port}@localhost",
                 RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq.conf"),
                 RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(d, "enabled_plugins"),
                 RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"),
                 RABBITMQ_LOG_BASE=os.path.join(d, "log"),
                 RABBITMQ_PID_FILE=os.path.join(d, "rabbit.pid"),
                 RABBITMQ_DIST_PORT=str(self.dist_port),
                 RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        return e

    def close(self):
        self.stop()
        self.epmd.terminate()
        self.epmd.wait(10)
        self.epmd_log.close()


class Ejabberd(Broker):
    name = "ejabberd"
    versions = (5, 4)
    username = "cmdgate"  # anonymous login: any name, any password, but one is needed

    def prepare(self):
        if not shutil.which("ejabberdctl") and not os.path.exists("/usr/sbin/ejabberdctl"):
            raise AssertionError("ejabberd is not installed (run scripts/deps.sh)")
        d = self.dir
        with open(os.path.join(d, "ejabberd.yml"), "w") as f:
            f.write(f"""hosts:
  - localhost
loglevel: info
listen:
  -
    port: {self.port}
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1000
auth_method: [anonymous]
anonymous_protocol: login_anon
allow_multiple_connections: true
modules:
  mod_mqtt:
    max_queue: 100000
    access_publish:
      "#":
        - allow: all
    access_subscribe:
      "#":
        - allow: all
""")
        with open(os.path.join(d, "ejabberdctl.cfg"), "w") as f:
            f.write(f"ERLANG_NODE=cgt{self.port}@localhost\nERL_DIST_PORT={free_port()}\n"
                    "INET_DIST_INTERFACE=127.0.0.1\n")
        for sub in ("spool", "logs"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if os.geteuid() == 0:  # ejabberdctl runs the node as user ejabberd
            subprocess.run(["chown", "-R", "ejabberd:", d], check=True)
            os.chmod(os.path.dirname(d), 0o755)

    def command(self):
        d = self.dir
        return ["ejabberdctl", "--config-dir", d, "--config", os.path.join(d, "ejabberd.yml"),
                "--ctl-config", os.path.join(d, "ejabberdctl.cfg"), "--logs",
                os.path.join(d, "logs"), "--spool", os.path.join(d, "spool"), "foreground"]

    def env(self):
        e = dict(os.environ)
        e["HOME"] = self.dir
        return e

    def popen_user(self):
        # As root, ejabberdctl would "su" to ejabberd, whose new session a
        # stop could not reach: start it as that user, in our process group.
        return {"user": "ejabberd", "group": "ejabberd"} if os.geteuid() == 0 else {}


class Aedes(Broker):
    name = "aedes"
    versions = (4,)

    def prepare(self):
        self.modules = os.path.join(CACHE, "aedes")
        pkg = os.path.join(self.modules, "node_modules", "aedes", "package.json")
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            raise AssertionError("node and npm are needed for aedes (run scripts/deps.sh)")
        if not os.path.exists(pkg):
            os.makedirs(self.modules, exist_ok=True)
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", self.modules,
                                f"aedes@{AEDES_VERSION}"], capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0:
                raise AssertionError("npm install aedes failed:\n" + r.stderr[-2000:])
        with open(pkg) as f:
            self.version = json.load(f)["version"]

    def command(self):
        return ["node", os.path.join(HERE, "aedes_broker.mjs"), str(self.port), self.modules]


def gw_conf(port, version, mqtt_extra="", username="", **kw):
    if username:
        pw = os.path.join(TMP, "mqtt-password")
        with open(pw, "w") as f:
            f.write("anything\n")
        os.chmod(pw, 0o600)  # the gateway refuses a password others may read
        mqtt_extra += f' username = "{username}"; password_file = "{pw}";'
    return config(port, AWS.url, mqtt_extra=f"version = {version}; {mqtt_extra}", **kw)


class UserDevice(Device):
    """harness.Device that logs in with a user name first."""

    def __init__(self, port, version=5, subscribe=("commands/#",), username=""):
        import paho.mqtt.client as mqtt
        self.version = version
        self.c = mqtt.Client(client_id=f"dev-{time.time_ns()}",
                             protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311)
        if username:
            self.c.username_pw_set(username, "anything")
        self.msgs = []
        self.lock = threading.Lock()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        for t in subscribe:
            self.c.subscribe(t, qos=1)
        time.sleep(0.1)


def answers(dev, prefix):
    return [m for m in dev.replies(prefix) if m.topic.endswith(("/accepted", "/rejected"))]


class BrokerChecks:
    """The checks every broker gets; subclasses set BROKER."""
    BROKER = None

    @classmethod
    def setUpClass(cls):
        cls.broker = cls.BROKER(TMP)
        cls.t0 = time.time()

    @classmethod
    def tearDownClass(cls):
        TIMES[f"{cls.BROKER.name} checks"] = time.time() - cls.t0
        cls.broker.close()

    def gw(self, version, mqtt_extra="", **kw):
        return Gateway(TMP, gw_conf(self.broker.port, version, mqtt_extra,
                                    username=self.BROKER.username, **{
                                        k: v for k, v in kw.items() if k != "wait_ready"}),
                       wait_ready=kw.get("wait_ready", True))

    def dev(self, version, subscribe=("commands/#",)):
        return UserDevice(self.broker.port, version, subscribe, self.BROKER.username)

    def timed(self, what, t0):
        TIMES[f"{self.BROKER.name} {what}"] = time.time() - t0

    def test_requests_and_replies(self):
        t0 = time.time()
        for v in self.BROKER.versions:
            gw = self.gw(v)
            dev = self.dev(v)
            try:
                for i in range(3):
                    r, m = dev.request(f"{self.BROKER.name}-{v}-{i}", "open", {"id": f"r{i}"})
                    self.assertEqual((r["status"], r["id"]), ("accepted", f"r{i}"))
                    self.assertTrue(m.topic.endswith("/accepted"))
                r, m = dev.request(f"{self.BROKER.name}-{v}-bad", "open", "not json")
                self.assertEqual(r["code"], "InvalidRequest")
                self.assertTrue(m.topic.endswith("/rejected"))
                self.assertIn(f"mqtt: connected (MQTT {'5' if v == 5 else '3.1.1'}", gw.text())
            finally:
                dev.close()
                self.assertEqual(gw.stop(), 0)
        self.timed("requests", t0)

    def test_status_online_then_will_offline_on_kill(self):
        t0 = time.time()
        v = self.BROKER.versions[0]
        cid = f"gw-will-{time.time_ns()}"
        gw = self.gw(v, f'client_id = "{cid}";')
        watcher = self.dev(v, (f"cmdgate/{cid}/status",))  # RabbitMQ: retained only for exact filters
        try:
            got = wait_for(lambda: watcher.replies(f"cmdgate/{cid}/status"), 10)
            self.assertTrue(got, "no online status")
            self.assertEqual(json.loads(got[-1].payload)["state"], "online")
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(5)
            self.assertTrue(wait_for(lambda: json.loads(
                watcher.replies(f"cmdgate/{cid}/status")[-1].payload)["state"] == "offline", 15),
                "the will (offline) was not published")
        finally:
            watcher.close()
            gw.stop()
            harness.STARTED.remove(gw)  # killed on purpose
        self.timed("will", t0)

    def test_burst_every_request_answered_once(self):
        t0 = time.time()
        v = self.BROKER.versions[0]
        gw = self.gw(v, gateway_extra="queue_size = 400; max_inflight = 16;")
        dev = self.dev(v)
        n = 200
        try:
            for i in range(n):
                dev.c.publish(f"commands/burst-{i % 20}/c{i}/start", json.dumps({"id": i}), qos=1)
            prefix = "commands/burst-"
            got = wait_for(lambda: len(answers(dev, prefix)) >= n, 60)
            time.sleep(0.5)  # a duplicate would arrive now
            replies = answers(dev, prefix)
            self.assertTrue(got, f"{len(replies)} of {n} answered")
            topics = [m.topic for m in replies]
            self.assertEqual(len(topics), n)
            self.assertEqual(len(set(topics)), n, "a request was answered twice")
            self.assertTrue(all(t.endswith("/accepted") for t in topics))
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)
        self.timed(f"burst of {n}", t0)

    def test_qos2_request_and_reply(self):
        t0 = time.time()
        v = self.BROKER.versions[0]
        gw = self.gw(v, "qos = 2;")
        dev = self.dev(v, ())
        dev.c.subscribe("commands/#", qos=2)
        time.sleep(0.2)
        try:
            r, m = dev.request(f"{self.BROKER.name}-q2", "open", {"id": "q2"}, qos=2)
            self.assertEqual(r["status"], "accepted")
            if self.BROKER.qos2:
                self.assertEqual(m.qos, 2)
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)
        self.timed("qos2", t0)

    def test_broker_restart_reconnects_resubscribes_and_says_ready(self):
        t0 = time.time()
        v = self.BROKER.versions[0]
        gw = self.gw(v)
        try:
            self.assertEqual(gw.text().count(" ready: subscribed"), 1)
            self.broker.stop()
            self.assertTrue(wait_for(lambda: "connection lost" in gw.text()
                                     or "disconnected us" in gw.text(), 20), gw.text()[-2000:])
            t1 = time.time()
            self.broker.start()
            self.assertTrue(wait_for(lambda: gw.text().count(" ready: subscribed") >= 2, 60),
                            gw.text()[-3000:])
            TIMES[f"{self.BROKER.name} ready after its restart"] = time.time() - t1
            dev = self.dev(v)
            try:
                r, _ = dev.request(f"{self.BROKER.name}-after", "open", {"id": "after"})
                self.assertEqual(r["status"], "accepted")
            finally:
                dev.close()
        finally:
            self.assertEqual(gw.stop(), 0)
        self.timed("restart", t0)


class Only311Checks:
    def test_mqtt5_says_the_broker_may_not_support_it(self):
        gw = self.gw(5, wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: "the broker may not support MQTT 5: try mqtt.version = 4"
                                     in gw.text(), 20), gw.text()[-2000:])
            self.assertNotIn("ready:", gw.text())
        finally:
            self.assertEqual(gw.stop(), 0)


    def test_shared_group_is_not_supported_and_the_broker_does_not_say_so(self):
        # README: "no, and it does not say so". If this broker starts to
        # support $share (or to refuse it), this test says the table is stale.
        gw = self.gw(4, 'shared_group = "cg";', wait_ready=False)
        dev = self.dev(4)
        try:
            self.assertTrue(wait_for(lambda: " ready: subscribed" in gw.text(), 20), gw.text()[-2000:])
            dev.publish(f"commands/{self.BROKER.name}-share/open/start", {"id": "s"})
            time.sleep(3)
            self.assertEqual(answers(dev, f"commands/{self.BROKER.name}-share/"), [])
            self.assertNotIn("refused", gw.text())
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)


class T1RabbitMQ(BrokerChecks, Only311Checks, unittest.TestCase):
    BROKER = RabbitMQ


class T2Ejabberd(BrokerChecks, unittest.TestCase):
    BROKER = Ejabberd

    def test_shared_group_fails_loudly(self):
        for v in (5, 4):
            gw = self.gw(v, 'shared_group = "cg";', wait_ready=False)
            try:
                # MQTT 5: CONNACK says so, then a DISCONNECT with reason 158;
                # 3.1.1: the connection is closed while subscribing
                said = ("disconnected us: reason 158 (Shared subscriptions not supported)"
                        if v == 5 else "closed the connection while we subscribed")
                self.assertTrue(wait_for(lambda: said in gw.text(), 20), gw.text()[-2000:])
                self.assertIn("shared_group", gw.text())
                if v == 5:
                    self.assertIn("the broker says it has no shared subscriptions", gw.text())
                self.assertNotIn(" ready: subscribed", gw.text())
            finally:
                self.assertEqual(gw.stop(), 0)


class T3Aedes(BrokerChecks, Only311Checks, unittest.TestCase):
    BROKER = Aedes


class ScriptedPeer:
    """Accepts TCP connections, records each CONNECT's protocol name and
    level, answers CONNACK with a fixed return code (3.1.1 format)."""

    def __init__(self, code, connack=None, then=None):
        self.code = code
        self.connack = connack or bytes([0x20, 0x02, 0x00, code])
        self.then = then
        self.seen = []
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.stop_flag = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.s.settimeout(0.2)
        while not self.stop_flag:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            try:
                c.settimeout(2)
                data = c.recv(4096)
                i = 1
                while data[i] & 0x80:  # remaining length
                    i += 1
                i += 1
                n = int.from_bytes(data[i:i + 2], "big")
                self.seen.append((data[i + 2:i + 2 + n].decode(), data[i + 2 + n]))
                c.sendall(self.connack)
                time.sleep(0.3)
                if self.then:
                    c.sendall(self.then)
                    time.sleep(0.1)
            except (OSError, IndexError):
                pass
            finally:
                c.close()

    def close(self):
        self.stop_flag = True
        self.s.close()


class ProtocolPinning(unittest.TestCase):
    def test_mqtt311_is_pinned_and_the_connack_code_is_logged(self):
        peer = ScriptedPeer(5)  # not authorized
        gw = Gateway(TMP, gw_conf(peer.port, 4), wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: len(peer.seen) >= 3, 20), peer.seen)
            self.assertEqual(set(peer.seen), {("MQTT", 4)}, "fell back to another version")
            self.assertTrue(wait_for(lambda: "connect failed: CONNACK return code 5 (not authorized)"
                                     in gw.text(), 5), gw.text()[-2000:])
        finally:
            peer.close()
            self.assertEqual(gw.stop(), 0)

    def test_mqtt5_refused_by_a_311_broker_gives_the_hint(self):
        peer = ScriptedPeer(1)  # unacceptable protocol version, as a 3.1.1 broker says it
        gw = Gateway(TMP, gw_conf(peer.port, 5), wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: "the broker may not support MQTT 5: try mqtt.version = 4"
                                     in gw.text(), 15), gw.text()[-2000:])
            self.assertEqual(set(peer.seen), {("MQTT", 5)})
        finally:
            peer.close()
            self.assertEqual(gw.stop(), 0)


class BrokerDisconnect(unittest.TestCase):
    def test_disconnect_from_the_broker_is_logged_with_its_reason(self):
        reason = b"maintenance window"
        props = bytes([0x1F]) + len(reason).to_bytes(2, "big") + reason
        body = bytes([0x98, len(props)]) + props  # Administrative action
        peer = ScriptedPeer(0, connack=bytes([0x20, 0x03, 0x00, 0x00, 0x00]),
                            then=bytes([0xE0, len(body)]) + body)
        gw = Gateway(TMP, gw_conf(peer.port, 5), wait_ready=False)
        try:
            self.assertTrue(wait_for(lambda: "the broker disconnected us: reason 152 "
                                     "(Administrative action): maintenance window" in gw.text(),
                                     10), gw.text()[-2000:])
            # and it comes back by itself
            self.assertTrue(wait_for(lambda: len(peer.seen) >= 2, 20), gw.text()[-2000:])
        finally:
            peer.close()
            self.assertEqual(gw.stop(), 0)


class ZzEveryGatewayRun(harness.EveryGatewayRun):
    pass


if __name__ == "__main__":
    harness.main()
