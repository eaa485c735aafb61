"""A local stand-in for AWS IoT Core's MQTT side (SPEC section 9), for the
tests, the bench and scripts/demo.sh. Nothing here talks to AWS.

It is a real mosquitto on loopback with two listeners:

  - a TLS listener, `require_certificate true` and `use_identity_as_username
    true`, whose client certificates come from a test CA made here with
    `openssl` (per run, in a temp dir): one shared "gateway" certificate and,
    on demand, one per thing laid out as `identity_dir/<thing>/
    {certificate.pem.crt,private.pem.key}`. This is the account's
    `iot:Data-ATS` endpoint that cmdgate's proxied links connect to;
  - a plain listener for the commands service (tests/fake_commands.py inside
    tests/fake_aws.py), which logs in as the admin user and may touch every
    `$aws/...` topic, as AWS itself does.

AWS's per-device Commands policy lets a connection touch only the topics of
the thing it connected as: Connect on `client/${iot:Connection.Thing.
ThingName}`, Subscribe/Receive/Publish on `$aws/commands/things/${iot:
Connection.Thing.ThingName}/...`, where the thing name is the client id when
the certificate is attached to a thing of that name. Mosquitto's ACL is a
union of grants (user lines and patterns), with no "and", so the stand-in
splits that rule in two:

  - the ACL grants `pattern readwrite $aws/commands/things/%c/#` (and nothing
    else to certificate users): a link reads and writes only its client id's
    topics; mosquitto drops a publish elsewhere, refuses a subscription
    elsewhere and never delivers another thing's message;
  - the certificate's attachment (which client ids a certificate may connect
    as) is checked from the broker's log: every connect's client id must be
    one of the things attached to the certificate's CN, else it is recorded
    in violations(). Like AWS's connect limit of one per second per client
    id, two connects of one client id within one log second are recorded too.

Also from the log: each link's protocol, clean start flag, keepalive and
certificate (connections()), its subscriptions with their QoS
(subscriptions()), and its disconnects. Mosquitto grants a SUBSCRIBE to
another thing's topics (and then delivers nothing), where AWS refuses it:
violations() records such subscriptions too.

What it cannot know: the rest of the IoT policy language (conditions,
policy variables other than the thing name); the session expiry a link
asks for (mosquitto 2.0.11 does not log it; only its effect, a kept
session, is visible) and AWS's own cap on it; AWS's limits on payload size
(128 KB), publishes per second per connection, subscriptions per
connection, unacknowledged QoS 1 messages and keepalive below 30 s;
connects closer than one second across a log-second boundary; the real
endpoint's certificate chain (Amazon Root CA), SNI and ALPN; and what AWS
itself puts in the parts of the protocol its documentation leaves open
(see tests/fake_commands.py).

Persistence is on: stop()/start() keep sessions, subscriptions and queued
QoS 1 messages, as AWS keeps a persistent session across its own restarts.
"""
import os
import re
import shutil
import socket
import subprocess
import threading
import time

ADMIN = "iotcore-admin"
GATEWAY_CN = "cmdgate-gateway"
CONNECT_RE = re.compile(r"^(\d+): New client connected from \S+ as (\S+) "
                        r"\(p(\d+), c(\d+), k(\d+)(?:, u'([^']*)')?\)")
SUB_HEAD_RE = re.compile(r"^(\d+): Received SUBSCRIBE from (\S+)$")
SUB_LINE_RE = re.compile(r"^(\d+): \t(\S+) \(QoS (\d)\)$")
GONE_RE = re.compile(r"^(\d+): Client (\S+) (?:disconnected|closed its connection|has exceeded timeout)")
DENIED_RE = re.compile(r"^(\d+): Denied PUBLISH from (\S+) .*'([^']*)'")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cwd, *a):
    subprocess.run(a, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Pki:
    """A test CA, the endpoint's server certificate and client certificates
    (EC P-256: fast enough for 500 things, and a key type AWS IoT takes)."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        _run(d, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=iotcore stand-in CA",
             "-keyout", "ca.key", "-out", "ca.pem")
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
        self.ca = os.path.join(d, "ca.pem")
        self.server_cert, self.server_key = self.issue("localhost", ext="server.ext")

    def issue(self, cn, out_dir=None, cert_name=None, key_name=None, ext=None):
        """A client (or server) certificate for CN; returns (cert, key) paths.
        The key is mode 0600 (cmdgate's secret-file rule)."""
        out_dir = out_dir or self.dir
        os.makedirs(out_dir, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cn)
        cert = os.path.join(out_dir, cert_name or f"{safe}.pem")
        key = os.path.join(out_dir, key_name or f"{safe}.key")
        csr = os.path.join(self.dir, f"{safe}-{time.time_ns()}.csr")
        _run(self.dir, "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
        args = ["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                os.path.join(self.dir, "ca.key"), "-CAcreateserial", "-days", "2", "-out", cert]
        if ext:
            args += ["-extfile", os.path.join(self.dir, ext)]
        _run(self.dir, *args)
        os.unlink(csr)
        os.chmod(key, 0o600)
        return cert, key


class IotCore:
    """The stand-in endpoint. attach: {certificate CN: [thing, ...]}; the
    gateway certificate (CN GATEWAY_CN) is attached to `things`."""

    def __init__(self, tmp, things=(), port=None, admin_port=None, max_connections=-1,
                 log_all=True):
        self.dir = os.path.join(tmp, f"iotcore-{time.time_ns()}")
        os.makedirs(self.dir)
        self.pki = Pki(os.path.join(self.dir, "pki"))
        self.ca = self.pki.ca
        self.cert, self.key = self.pki.issue(GATEWAY_CN)
        self.lock = threading.Lock()
        self.attach = {GATEWAY_CN: set(things)}
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.max_connections = max_connections
        self.log_all = log_all  # every packet (tests) or connections only (bench)
        self.proc = None
        self.logpath = os.path.join(self.dir, "mosquitto.log")
        self._write_conf()
        self.start()

    # ---- identities and attachments --------------------------------------

    @property
    def endpoint(self):
        return f"ssl://127.0.0.1:{self.port}"

    @property
    def admin(self):
        return f"127.0.0.1:{self.admin_port}"

    def attach_things(self, things, cn=GATEWAY_CN):
        """Attach things to a certificate (AWS: AttachThingPrincipal)."""
        with self.lock:
            self.attach.setdefault(cn, set()).update(things)

    def identity_dir(self, path, things):
        """identity_dir/<thing>/{certificate.pem.crt,private.pem.key}, one
        certificate per thing, each attached to its own thing only."""
        for t in things:
            d = os.path.join(path, t)
            self.pki.issue(t, d, "certificate.pem.crt", "private.pem.key")
            self.attach_things([t], cn=t)
        return path

    def issue(self, cn, things=()):
        """Another certificate, attached to things; returns (cert, key)."""
        self.attach_things(things, cn=cn)
        return self.pki.issue(cn)

    # ---- the broker -------------------------------------------------------

    def _write_conf(self):
        acl = os.path.join(self.dir, "acl")
        with open(acl, "w") as f:
            f.write(f"user {ADMIN}\ntopic readwrite $aws/#\n\n"
                    "pattern readwrite $aws/commands/things/%c/#\n")
        store = os.path.join(self.dir, "store") + "/"
        os.makedirs(store, exist_ok=True)
        lines = ["per_listener_settings false", "allow_anonymous true", f"acl_file {acl}",
                 "persistence true", f"persistence_location {store}",
                 "set_tcp_nodelay true", "max_queued_messages 100000",
                 "max_inflight_messages 100", "log_timestamp true",
                 "log_type all" if self.log_all else "log_type notice",
                 f"log_dest file {self.logpath}", "connection_messages true",
                 # the plain listener: the commands service (AWS itself)
                 f"listener {self.admin_port} 127.0.0.1",
                 f"max_connections {self.max_connections}",
                 # the iot:Data-ATS endpoint: mTLS, the certificate's CN is the user
                 f"listener {self.port} 127.0.0.1", f"max_connections {self.max_connections}",
                 f"cafile {self.ca}", f"certfile {self.pki.server_cert}",
                 f"keyfile {self.pki.server_key}", "require_certificate true",
                 "use_identity_as_username true", "max_keepalive 1200", "max_qos 1"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        self.logf = open(self.logpath, "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        end = time.time() + timeout
        while time.time() < end:
            if self._listening(self.admin_port) and self._listening(self.port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("iotcore stand-in did not start:\n" + self.log_text()[-2000:])

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        """SIGTERM: mosquitto saves its sessions and queued messages."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- what it saw ------------------------------------------------------

    def log_text(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def connections(self):
        """Every connect on either listener, in order: {time, client_id,
        protocol (mosquitto's number: 2 = MQTT 3.1.1, 5 = MQTT 5), clean,
        keepalive, user}."""
        out = []
        for line in self.log_text().splitlines():
            m = CONNECT_RE.match(line)
            if m:
                out.append({"time": int(m.group(1)), "client_id": m.group(2),
                            "protocol": int(m.group(3)), "clean": m.group(4) == "1",
                            "keepalive": int(m.group(5)), "user": m.group(6)})
        return out

    def links(self, thing):
        """The connects made as thing (through a certificate)."""
        return [c for c in self.connections() if c["client_id"] == thing and c["user"] != ADMIN]

    def disconnects(self, client_id):
        """How many times client_id's connection ended (by either side)."""
        return sum(1 for x in self.log_text().splitlines()
                   if (m := GONE_RE.match(x)) and m.group(2) == client_id)

    def subscriptions(self, client_id):
        """Every (filter, qos) client_id subscribed to, in order."""
        out, who = [], None
        for line in self.log_text().splitlines():
            m = SUB_HEAD_RE.match(line)
            if m:
                who = m.group(2)
                continue
            m = SUB_LINE_RE.match(line)
            if m and who == client_id:
                out.append((m.group(2), int(m.group(3))))
            elif "Sending SUBACK" in line:
                who = None
        return out

    def denied(self):
        """Publishes the ACL dropped: (client id, topic)."""
        return [(m.group(2), m.group(3)) for m in
                (DENIED_RE.match(x) for x in self.log_text().splitlines()) if m]

    def violations(self):
        """What AWS would have refused that mosquitto let through, and what
        the ACL dropped: connects as a thing the certificate is not attached
        to, connects of one client id twice within a second, denied
        publishes and subscriptions."""
        out = []
        with self.lock:
            attach = {k: set(v) for k, v in self.attach.items()}
        seen = {}
        for c in self.connections():
            if c["user"] == ADMIN or c["user"] is None:
                continue
            if c["client_id"] not in attach.get(c["user"], ()):
                out.append(f"certificate {c['user']!r} is not attached to thing "
                           f"{c['client_id']!r} (connect refused by AWS)")
            key = (c["client_id"], c["time"])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                out.append(f"{c['client_id']!r} connected twice within a second "
                           "(AWS: 1 connect/s per client id)")
        for who in {c["client_id"] for c in self.connections() if c["user"] not in (ADMIN, None)}:
            own = f"$aws/commands/things/{who}/"
            for f, _ in self.subscriptions(who):
                if not f.startswith(own):
                    out.append(f"{who!r} subscribed to {f!r}: not its thing's topic "
                               "(AWS refuses it; mosquitto grants it and delivers nothing)")
        for who, topic in self.denied():
            out.append(f"{who!r} published to {topic!r}: not its thing's topic")
        for line in self.log_text().splitlines():
            if "not authorised" in line.lower() or "not authorized" in line.lower():
                out.append(line)
        return out


# ---- the commands service's records (tests/fake_commands.py in fake_aws) --

def _http(url, body=None):
    import json
    import urllib.request
    req = urllib.request.Request(url, json.dumps(body).encode() if body is not None else None,
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


def commands_control(aws_url, **kw):
    """POST /_commands on the fake (see tests/fake_commands.py)."""
    return _http(aws_url + "/_commands", kw)


def commands_state(aws_url):
    """GET /_commands: every execution, its publishes and updates."""
    return _http(aws_url + "/_commands")


def execution(aws_url, exec_id):
    return commands_state(aws_url)["executions"].get(exec_id)


def main():
    """Run the stand-in until SIGTERM/SIGINT, for scripts/demo.sh and bench:
    writes a JSON file with its endpoint, admin address and file paths."""
    import argparse
    import json
    import signal
    p = argparse.ArgumentParser(description="The local AWS IoT Core stand-in")
    p.add_argument("--dir", required=True, help="a directory for its CA, certificates and store")
    p.add_argument("--things", default="", help="comma-separated things the gateway certificate is attached to")
    p.add_argument("--identity-dir", default="", help="also issue one certificate per thing here")
    p.add_argument("--info", required=True, help="where to write the JSON description")
    p.add_argument("--quiet", action="store_true", help="log connections only, not every packet")
    a = p.parse_args()
    things = [t for t in a.things.split(",") if t]
    core = IotCore(a.dir, things=things, log_all=not a.quiet)
    if a.identity_dir:
        core.identity_dir(a.identity_dir, things)
    info = {"endpoint": core.endpoint, "admin": core.admin, "ca_file": core.ca,
            "cert_file": core.cert, "key_file": core.key, "log": core.logpath,
            "identity_dir": a.identity_dir, "pid": core.proc.pid}
    with open(a.info + ".tmp", "w") as f:
        json.dump(info, f)
    os.rename(a.info + ".tmp", a.info)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: done.set())
    signal.signal(signal.SIGINT, lambda *x: done.set())
    while not done.wait(1):
        pass
    core.stop()


if __name__ == "__main__":
    main()
