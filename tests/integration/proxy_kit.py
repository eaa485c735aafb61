"""What the section 9 tests (test_proxy.py, test_proxy_ops.py) share: the
module's world (a local mosquitto, the AWS IoT Core stand-in of
tests/iotcore.py, tests/fake_aws.py with its Commands service), a gateway
config with a `proxy` section, and a Machine — a LAN machine on the local
broker as firmware written for AWS IoT Commands would be. Every wait is
bounded."""
import atexit
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402
from harness import FakeAws, Gateway, Mosquitto, config, wait_for  # noqa: E402
import iotcore  # noqa: E402
from iotcore import commands_control, commands_state, execution  # noqa: E402

SEQ = itertools.count(1)
FILTERS = ("request/json", "request/cbor", "request", "response/accepted/json",
           "response/rejected/json")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class World:
    """One module's broker, stand-in and fake AWS."""

    def __init__(self, name):
        self.stopped = False
        # a module stopped from outside (timeout's SIGTERM) still stops its
        # broker, stand-in and fake AWS: they would outlive it otherwise
        atexit.register(self.stop)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt)
        self.tmp = tempfile.mkdtemp(prefix=f"cmdgate-{name}-")
        self.broker = self.core = self.aws = None
        self.broker = Mosquitto(self.tmp)
        self.core = iotcore.IotCore(self.tmp)
        self.aws = FakeAws(self.tmp, iotcore=self.core.admin)
        if not wait_for(lambda: any(c["user"] == iotcore.ADMIN for c in self.core.connections()), 10):
            raise RuntimeError("the commands service did not connect to the stand-in")

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        for g in harness.STARTED:  # gateways a test had no time to stop
            if g.proc.poll() is None:
                g.proc.kill()
                g.proc.wait()
        if self.aws:
            self.aws.stop()
        if self.core:
            self.core.cleanup()
        if self.broker:
            self.broker.stop()

    def things(self, n, stem="m"):
        """n fresh thing names, attached to the gateway certificate."""
        names = [f"{stem}{next(SEQ)}-{os.getpid()}" for _ in range(n)]
        self.core.attach_things(names)
        return names

    # ---- the gateway ------------------------------------------------------

    def proxy_section(self, names, **kw):
        """The proxy section for names; kw overrides or adds keys (None drops one)."""
        keys = {"endpoint": self.core.endpoint, "ca_file": self.core.ca,
                "cert_file": self.core.cert, "key_file": self.core.key, "things": list(names),
                "update_timeout_ms": 1000, "keepalive": 30, "connect_rate": 50.0}
        keys.update(kw)
        parts = []
        for k, v in keys.items():
            if v is None:
                continue
            if isinstance(v, str):
                parts.append(f'{k} = "{v}";')
            elif isinstance(v, (list, tuple)):
                parts.append(f"{k} = [ " + ", ".join(f'"{x}"' for x in v) + " ];")
            else:
                parts.append(f"{k} = {v};")
        return "proxy: { " + " ".join(parts) + " };\n"

    def conf(self, names, routes="", mqtt_extra="", gateway_extra="", extra="", **proxy):
        return config(self.broker.port, self.aws.url, routes + self.proxy_section(names, **proxy) + extra,
                      mqtt_extra=mqtt_extra, gateway_extra=gateway_extra,
                      aws_extra=f'control_endpoint = "{self.aws.url}";')

    def gateway(self, names, wait_links=True, **kw):
        gw = Gateway(self.tmp, self.conf(names, **kw))
        if wait_links:
            self.wait_links(names, gw)
        return gw

    def link_up(self, thing, connects=1):
        """thing's link has connected `connects` times and holds its five
        subscriptions."""
        subs = {f for f, _ in self.core.subscriptions(thing)}
        want = {f"$aws/commands/things/{thing}/executions/+/{f}" for f in FILTERS}
        return len(self.core.links(thing)) >= connects and want <= subs

    def wait_links(self, things, gw=None, timeout=20, connects=None):
        connects = connects or {}
        ok = wait_for(lambda: all(self.link_up(t, connects.get(t, 1)) for t in things), timeout, 0.05)
        if not ok:
            down = [t for t in things if not self.link_up(t, connects.get(t, 1))]
            raise AssertionError(f"links not up in {timeout}s: {down}\n" +
                                 (gw.text()[-3000:] if gw else ""))
        time.sleep(0.1)  # the SUBACKs

    # ---- AWS's side -------------------------------------------------------

    def run(self, thing, payload=b'{"op":"open"}', fmt="json", timeout_s=30, **kw):
        """An execution created on AWS and published to thing; its id."""
        import base64
        e = {"thing": thing, "format": fmt, "timeout_s": timeout_s,
             "payload_b64": base64.b64encode(payload).decode()}
        e.update(kw)
        return commands_control(self.aws.url, execute=e)["executionId"]

    def control(self, **kw):
        return commands_control(self.aws.url, **kw)

    def execution(self, exec_id):
        return execution(self.aws.url, exec_id)

    def updates(self, exec_id):
        ex = self.execution(exec_id)
        return ex["updates"] if ex else []

    def wait_updates(self, exec_id, n, timeout=10):
        ok = wait_for(lambda: len(self.updates(exec_id)) >= n, timeout, 0.05)
        if not ok:
            raise AssertionError(f"AWS got {len(self.updates(exec_id))} updates of {exec_id}, "
                                 f"wanted {n}: {self.updates(exec_id)}")
        return self.updates(exec_id)


class Machine:
    """A LAN machine: subscribes to its requests and verdicts on the local
    broker, answers on .../response/json. version 5 or 4 (3.1.1);
    session_expiry > 0 keeps its session while it is away."""

    def __init__(self, port, thing, version=5, prefix="$aws/commands", session_expiry=0,
                 client_id=None, first=True):
        self.thing, self.prefix, self.version = thing, prefix, version
        self.msgs = []
        self.lock = threading.Lock()
        self.cid = client_id or f"machine-{thing}"
        v5 = version == 5
        self.c = mqtt.Client(client_id=self.cid, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else (session_expiry == 0))
        self.c.on_message = self._on_message
        up = threading.Event()
        self.c.on_connect = lambda *a: up.set()
        if v5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = session_expiry
            self.c.connect("127.0.0.1", port, 30, clean_start=first, properties=p)
        else:
            self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not up.wait(5):
            raise AssertionError("machine did not connect")
        if first:
            base = f"{prefix}/things/{thing}/executions/+/"
            for f in ("request/#", "response/accepted/json", "response/rejected/json"):
                self.c.subscribe(base + f, qos=1)
            time.sleep(0.15)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def topic(self, exec_id, suffix):
        return f"{self.prefix}/things/{self.thing}/executions/{exec_id}/{suffix}"

    def requests(self, exec_id):
        base = self.topic(exec_id, "request")
        with self.lock:
            return [m for m in self.msgs if m.topic == base or m.topic.startswith(base + "/")]

    def wait_request(self, exec_id, timeout=10):
        if not wait_for(lambda: self.requests(exec_id), timeout, 0.02):
            raise AssertionError(f"{self.thing}: no request {exec_id} in {timeout}s")
        return self.requests(exec_id)[0]

    def verdicts(self, exec_id):
        a, r = self.topic(exec_id, "response/accepted/json"), self.topic(exec_id, "response/rejected/json")
        with self.lock:
            return [m for m in self.msgs if m.topic in (a, r)]

    def wait_verdicts(self, exec_id, n=1, timeout=10):
        if not wait_for(lambda: len(self.verdicts(exec_id)) >= n, timeout, 0.02):
            raise AssertionError(f"{self.thing}: {len(self.verdicts(exec_id))} verdicts for "
                                 f"{exec_id} in {timeout}s, wanted {n}")
        return self.verdicts(exec_id)

    def answer(self, exec_id, doc):
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.c.publish(self.topic(exec_id, "response/json"), data, qos=1).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def props(m, name):
    """An MQTT 5 property of message m, or None (none at all for 3.1.1)."""
    p = getattr(m, "properties", None)
    return getattr(p, name, None) if p is not None else None


def prop_count(m):
    p = getattr(m, "properties", None)
    if p is None:
        return 0
    return sum(1 for n in ("ContentType", "MessageExpiryInterval") if hasattr(p, n))


def main():
    harness.main()


__all__ = ["World", "Machine", "props", "prop_count", "main", "wait_for", "harness",
           "commands_state", "iotcore", "Gateway", "json", "time"]
