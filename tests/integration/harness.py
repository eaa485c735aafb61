"""Test harness: real mosquitto, the local AWS endpoint and build/cmdgate,
all on loopback and free ports, started and stopped by the tests.

Everything waits with a bound: no test can hang past its own timeout.

The API a module uses: `module_world(globals(), prefix)` for its broker,
AWS endpoint and temporary directory (TMP, BROKER, AWS, PKI); `config(...)`
for a gateway's configuration (level=, uri= instead of editing the text);
`Gateway`, `Device`; `Replies(dev)`, the one reply collector; `soak(n, N)`
for repetition counts (N with CMDGATE_SOAK=1); `main()` as the module's
last line, which prints the "N passed, N failed" line scripts/test.sh counts.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CMDGATE = os.environ.get("CMDGATE", os.path.join(ROOT, "build", "cmdgate"))
FAKE = os.path.join(ROOT, "tests", "fake_aws.py")
AKID = "AKIDCMDGATETEST"
SECRET = "cmdgate-test-secret"
TOKEN = "FQoGZXIvYXdzEXAMPLEsessiontoken/+=="
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
# CMDGATE_SOAK=1: the repetition loops run in full (README, "Testing")
SOAK = os.environ.get("CMDGATE_SOAK", "") == "1"


def soak(default, full):
    """How many times a loop repeats: DEFAULT, or FULL with CMDGATE_SOAK=1."""
    return full if SOAK else default


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClosedPort:
    """A loopback port that refuses connections until release(): it is bound
    (so no other test module running at the same time can take it) but not
    listening. free_port() alone leaves a window in which a parallel module's
    server may take the port and answer in place of "nothing there"."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def release(self):
        """Free the port for the server that is about to take it."""
        if self.sock:
            self.sock.close()
            self.sock = None


def listening(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port."""
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


def wait_for(pred, timeout=10.0, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def stop_process(proc, log):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def make_pki(d):
    """A test CA and a server certificate for 127.0.0.1/localhost."""
    def run(*a):
        subprocess.run(a, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=cmdgate test CA", "-keyout", "ca.key", "-out", "ca.pem")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    # a device certificate for mutual TLS (the AWS IoT credentials provider)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gw-thing",
        "-keyout", "client.key", "-out", "client.csr")
    run("openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "client.pem")
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"),
             ("client_cert", "client.pem"), ("client_key", "client.key"))}


class Mosquitto:
    def __init__(self, tmp, pki=None, port=None, persistence=False):
        self.port = port or free_port()
        self.tls_port = free_port() if pki else None
        conf = os.path.join(tmp, f"mosquitto-{self.port}.conf")
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "set_tcp_nodelay true", "max_queued_messages 100000"]
        if persistence:
            # sessions, subscriptions and queued messages survive a restart on
            # the same port (saved when it is stopped), as on a real broker
            store = os.path.join(tmp, f"mosquitto-{self.port}.db") + "/"
            os.makedirs(store, exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp
        if pki:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {pki['ca']}",
                      f"certfile {pki['cert']}", f"keyfile {pki['key']}"]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(tmp, f"mosquitto-{self.port}.log"), "w")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        ok = wait_for(lambda: listening(self.port), 10)
        if not ok:
            raise RuntimeError("mosquitto did not start")

    def stop(self):
        stop_process(self.proc, self.log)


class FakeAws:
    def __init__(self, tmp, pki=None, session_token="", region="eu-west-1", container_token="",
                 mtls=False, http_port=0, iotcore=""):
        pf = os.path.join(tmp, f"fake-{time.time_ns()}.ports")
        args = [PYTHON, FAKE, "--port-file", pf, "--region", region, "--access-key", AKID,
                "--secret", SECRET]
        if session_token:
            args += ["--session-token", session_token]
        if pki:
            args += ["--cert", pki["cert"], "--key", pki["key"]]
        if pki and mtls:
            args += ["--client-ca", pki["ca"]]
        if container_token:
            args += ["--container-token", container_token]
        if http_port:
            args += ["--http-port", str(http_port)]
        if iotcore:  # HOST:PORT: also the Commands service of tests/iotcore.py
            args += ["--iotcore", iotcore]
        self.log = open(pf + ".log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: os.path.exists(pf), 10):
            raise RuntimeError("fake AWS did not start")
        with open(pf) as f:
            ports = f.read().split()
        self.http_port = int(ports[0])
        self.https_port = int(ports[1]) if len(ports) > 1 else None
        self.mtls_port = int(ports[2]) if len(ports) > 2 else None
        self.url = f"http://127.0.0.1:{self.http_port}"

    def control(self, **kw):
        req = urllib.request.Request(self.url + "/_control", json.dumps(kw).encode(),
                                     {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()

    def reset(self):
        self.control(reset=True)

    def calls(self):
        return json.loads(urllib.request.urlopen(self.url + "/_log", timeout=5).read())

    def cred_calls(self):
        return json.loads(urllib.request.urlopen(self.url + "/_credlog", timeout=5).read())

    def secrets(self):
        """Every secret and token the endpoint issued or was given."""
        return json.loads(urllib.request.urlopen(self.url + "/_secrets", timeout=5).read())

    def tls_failures(self):
        """Handshakes its mTLS listener refused (e.g. an unknown client CA)."""
        return json.loads(urllib.request.urlopen(self.url + "/_tlslog", timeout=5).read())

    def stop(self):
        stop_process(self.proc, self.log)


STARTED = []  # (log path, exit status or None) of every gateway run


class Gateway:
    """build/cmdgate with a config written from text; stderr captured to a file."""

    def __init__(self, tmp, conf, env=None, args=(), wait_ready=True, notify=None):
        self.tmp = tmp
        self.conf = os.path.join(tmp, f"gw-{time.time_ns()}.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.logpath = self.conf + ".log"
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        # IMDS is never reached by accident: only a test that points it at
        # loopback turns it on.
        e["AWS_EC2_METADATA_DISABLED"] = "true"
        e.update(env if env is not None else {"AWS_ACCESS_KEY_ID": AKID,
                                               "AWS_SECRET_ACCESS_KEY": SECRET})
        if notify:
            e["NOTIFY_SOCKET"] = notify
        self.logf = open(self.logpath, "w")
        cmd = list(os.environ.get("CMDGATE_WRAPPER", "").split()) + [CMDGATE, "-c", self.conf] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=e)
        STARTED.append(self)
        self.rc = None
        if wait_ready and not wait_for(lambda: "ready: subscribed" in self.text(), 30):
            self.stop()
            raise RuntimeError("gateway not ready:\n" + self.text())

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def rewrite(self, conf):
        with open(self.conf, "w") as f:
            f.write(conf)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.rc = rc
        return rc


def config(mqtt_port, endpoint, extra="", mqtt_extra="", aws_extra="", gateway_extra="",
           credentials='source = "env";', level="debug", uri=None, log_extra=""):
    uri = uri or f"tcp://127.0.0.1:{mqtt_port}"
    return f"""
mqtt: {{ uri = "{uri}"; {"" if "client_id" in mqtt_extra else f'client_id = "gw-{time.time_ns()}";'} {mqtt_extra} }};
aws: {{ region = "eu-west-1"; account = "123456789012"; endpoint = "{endpoint}";
        credentials: {{ {credentials} }}; {aws_extra} }};
gateway: {{ {"" if "deadline_ms" in gateway_extra else "deadline_ms = 8000;"} {gateway_extra} }};
log: {{ level = "{level}"; {log_extra + " " if log_extra else ""}}};
{extra}
"""


class Device:
    """An MQTT client as a device would use it; collects every message it sees."""

    def __init__(self, port, version=5, subscribe=("commands/#",), host="127.0.0.1", tls_ca=None,
                 session_expiry=0):
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.version = version
        self.c = mqtt.Client(client_id=f"dev-{time.time_ns()}", protocol=proto)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        self.msgs = []
        self.lock = threading.Lock()
        self.c.on_message = self._on_message
        self.subacked = set()
        self.c.on_subscribe = self._on_subscribe
        if version == 5 and session_expiry:
            # the broker keeps this device's subscriptions and queues its
            # messages while it is away. Clean start stays off on the first
            # connect too: Mosquitto 2.0 does not write a session begun with
            # clean start to its persistence file, so it would not survive a
            # broker restart (the client id is new: there is nothing to resume)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
            self.c.connect(host, port, keepalive=30, clean_start=False, properties=props)
        else:
            self.c.connect(host, port, keepalive=30)
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        mids = [self.c.subscribe(t, qos=1)[1] for t in subscribe]
        # subscribed once the broker says so (SUBACK), not after a while
        if not wait_for(lambda: self.subacked.issuperset(mids), 10):
            raise RuntimeError(f"no SUBACK for {subscribe}")

    def _on_subscribe(self, c, u, mid, *rest):
        self.subacked.add(mid)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def publish(self, topic, payload, qos=1, response_topic=None, correlation=None):
        props = None
        if self.version == 5 and (response_topic or correlation is not None):
            props = Properties(PacketTypes.PUBLISH)
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos=qos, properties=props).wait_for_publish(5)

    def replies(self, prefix):
        with self.lock:
            return [m for m in self.msgs if m.topic.startswith(prefix)]

    def wait_reply(self, prefix, n=1, timeout=10):
        got = wait_for(lambda: len(self.replies(prefix)) >= n and self.replies(prefix), timeout)
        if not got:
            raise AssertionError(f"no reply on {prefix}* within {timeout}s")
        return got

    def request(self, thing, command, payload, timeout=10, **kw):
        """Publish and return the decoded reply (and its topic)."""
        base = f"commands/{thing}/{command}/start"
        before = len(self.replies(base + "/"))
        self.publish(base, payload, **kw)
        got = self.wait_reply(base + "/", before + 1, timeout)
        m = got[before]
        return json.loads(m.payload), m

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class Replies:
    """The one reply collector: every reply (accepted or rejected) a device
    sees, by request topic and by request id. With a device that repeats
    what stays unanswered (wait_all's retry_after), `resent` counts repeats."""

    def __init__(self, dev):
        self.dev = dev
        self.lock = threading.Lock()
        self.replies = {}  # request topic -> [decoded reply, ...]
        self.ids = {}  # request id -> [decoded reply, ...]
        self.resent = 0
        dev.c.on_message = self.on_message

    def on_message(self, c, u, m):
        if not m.topic.endswith(("/accepted", "/rejected")):
            return
        body = json.loads(m.payload)
        with self.lock:
            self.replies.setdefault(m.topic.rsplit("/", 1)[0], []).append(body)
            self.ids.setdefault(body.get("id"), []).append(body)

    def answered(self, base):
        with self.lock:
            return base in self.replies

    def count(self):
        """Request ids answered at least once."""
        with self.lock:
            return len(self.ids)

    def counts(self):
        """({id: replies seen}, {code or "accepted": replies seen})."""
        with self.lock:
            by_id = {k: len(v) for k, v in self.ids.items()}
            codes = {}
            for rs in self.ids.values():
                for r in rs:
                    codes[r.get("code", "accepted")] = codes.get(r.get("code", "accepted"), 0) + 1
            return by_id, codes

    def bodies(self):
        """{id: [decoded reply, ...]}"""
        with self.lock:
            return {k: list(v) for k, v in self.ids.items()}

    def wait_all(self, requests, timeout, retry_after=None):
        """requests: {topic: payload}; repeat unanswered ones after retry_after
        s. Returns the topics still unanswered at the timeout."""
        sent = {t: time.time() for t in requests}
        end = time.time() + timeout
        while time.time() < end:
            missing = [t for t in requests if not self.answered(t)]
            if not missing:
                return []
            if retry_after:
                for t in missing:
                    if time.time() - sent[t] > retry_after:
                        self.dev.publish(t, requests[t])
                        self.resent += 1
                        sent[t] = time.time()
            time.sleep(0.05)
        return [t for t in requests if not self.answered(t)]


def module_world(g, prefix, pki=False, broker_pki=False, aws_pki=False, broker=True, **aws_kw):
    """setUpModule and tearDownModule for a module's broker, AWS endpoint and
    temporary directory, set as its globals TMP, PKI, BROKER and AWS:
        setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-x-")
    pki makes a test CA and certificates; broker_pki / aws_pki give them a
    TLS listener; aws_kw goes to FakeAws."""
    def set_up():
        g["TMP"] = tempfile.mkdtemp(prefix=prefix)
        g["PKI"] = make_pki(g["TMP"]) if pki else None
        g["BROKER"] = Mosquitto(g["TMP"], g["PKI"] if broker_pki else None) if broker else None
        g["AWS"] = FakeAws(g["TMP"], g["PKI"] if aws_pki else None, **aws_kw)

    def tear_down():
        for k in ("AWS", "BROKER"):
            if g.get(k):
                g[k].stop()
    return set_up, tear_down


import unittest  # noqa: E402


class TimedResult(unittest.TextTestResult):
    """Each test's time, for the slowest-tests list main() prints."""
    took = {}

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        TimedResult.took[test.id()] = time.monotonic() - self._t0
        super().stopTest(test)


def main():
    """A module's last line: run its tests, print the slowest, then the
    "N passed, N failed" line scripts/test.sh counts; exit 0 only if all
    passed (and some ran)."""
    import sys
    runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult)
    result = unittest.main(exit=False, testRunner=runner).result
    slow = sorted(TimedResult.took.items(), key=lambda kv: -kv[1])[:8]
    print("slowest: " + "; ".join(f"{k.split('.', 1)[1]} {v:.1f}s" for k, v in slow))
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    sys.exit(1 if failed or result.testsRun == 0 else 0)




class EveryGatewayRun(unittest.TestCase):
    """Subclass it as the last class of a test module (name it Zz...): no
    gateway started by the module crashed or had a sanitizer report."""
    allowed_rc = (0,)

    def test_no_crash_and_no_sanitizer_report(self):
        self.assertGreater(len(STARTED), 0)
        for g in STARTED:
            if g.rc is None:
                g.stop()
            text = g.text()
            for marker in ("Sanitizer", "runtime error:", "Segmentation", "Aborted"):
                self.assertNotIn(marker, text, g.logpath)
            # a run the test SIGKILLed on purpose (g.killed = True) may end -9
            allowed = self.allowed_rc + ((-9,) if getattr(g, "killed", False) else ())
            self.assertIn(g.rc, allowed, g.logpath + "\n" + text[-2000:])
