#!/usr/bin/env python3
"""A local stand-in for the AWS IoT Jobs data plane, for tests and the demo.

Serves POST /command-executions (StartCommandExecution) over HTTP and HTTPS on
loopback and checks what AWS checks, with its own SigV4 implementation (not
the C one): the Authorization header, the credential scope (day, region,
service iot-jobs-data), the signed host/x-amz-date/x-amz-security-token
headers, the payload hash over the exact body bytes and the request time
(5 minutes either way, against its own possibly skewed clock). The body is
validated against the AWS model rules; clientToken gives AWS's idempotency
(same token and body: same executionId; same token, other body: 409).

It also stands in for the credential sources a gateway uses: the container
credentials endpoint (GET /creds/container), IMDSv2 (PUT /latest/api/token,
GET /latest/meta-data/iam/security-credentials/...) and, on a listener that
requires a client certificate, the AWS IoT credentials provider (GET
/role-aliases/{alias}/credentials). Each issues fresh temporary credentials
(lifetime set by control) that the signature check then accepts until they
expire, with ExpiredTokenException after.

Tests steer it through /_control (JSON):
  {"rules": [{"thing": "t1", "times": 2, "status": 429,
              "code": "ThrottlingException", "message": "slow down",
              "where": "header|body|type|none", "drop": false,
              "delay_ms": 0}],
   "delay_ms": 0, "skew_s": 0, "reset": true,
   "creds": {"lifetime_s": 900, "fail": 0, "malformed": "", "expire_all": false}}
A rule without "thing" applies to any request; "times" counts down (absent:
forever). GET /_log returns every request seen, in order; GET /_secrets
every secret and token it issued or was given (never reset); GET /_tlslog the
handshakes its mTLS listener refused.

Quota mode (an account's call quota): a token bucket of "rate" calls/s and
"burst" calls; a signed call beyond it is answered 429 ThrottlingException.
Set at start with --quota RATE [--quota-burst N] (burst defaults to RATE),
changed at run time with {"quota": {"rate": 20, "burst": 20}} on /_control
({"quota": {"rate": 0}} lifts it; "reset" goes back to the command line's).
GET /_quota returns {"rate", "burst", "accepted": [t...], "throttled": [t...]}
(time.time() of every call answered 2xx, quota or not, and of every quota
429), so a test can compute rates.

GetCommandExecution (SPEC section 8): GET /command-executions/{id}
?includeResult=true&targetArn=... answers for the executions it started, with
its own SigV4 check for service "iot" and targetArn checked against the
execution's target. Each execution plays a scripted lifecycle, in seconds
from its start, chosen by its command name "lc-<name>" or by its parameter
"lifecycle" (S), default "succeed"; "duration_s" (a number parameter)
stretches it:
  succeed        CREATED, IN_PROGRESS at 0.3 s, SUCCEEDED with a result at 1 s
  fail           ... FAILED with a statusReason at 1 s
  reject         CREATED, REJECTED with a statusReason at 0.5 s
  timeout-late   ... TIMED_OUT $NO_RESPONSE_FROM_DEVICE at 1 s, SUCCEEDED at 3 s
  timeout        ... TIMED_OUT (reason DEVICE_TIMEOUT, final) at 1 s
  notfound-first 404 ResourceNotFoundException for 2 s, then as succeed
  slow           IN_PROGRESS until 12 s, then SUCCEEDED
  forbidden      403 AccessDeniedException on every poll
  never          IN_PROGRESS for ever
_control also takes {"poll_rules": [...]} (rules as above, for polls only) and
{"poll_delay_ms": N}; GET /_polls returns every poll seen, in order.

Frozen endpoint (a call whose fate the caller cannot know): {"freeze":
{"ms": W, "calls": N, "hold_ms": H}} freezes StartCommandExecution for the
next W ms (or the next N calls, whichever ends first; either may be left
out): each call arriving then is read in full and held H ms -- past the
caller's timeout -- and then carried out as usual (creating the execution if
its token is new), the answer going to a connection the caller has usually
given up. {"freeze": null} thaws it for calls arriving from then on. GET
/_created returns every execution in the order it was created: {"order",
"time", "thing", "clientToken", "executionId", "frozen"}; each /_log entry of
a call held so has "frozen_ms".

With --iotcore HOST:PORT (the plain listener of tests/iotcore.py, the local
AWS IoT Core stand-in) it also plays the Commands service's device side
(tests/fake_commands.py, SPEC section 9): each execution it starts is
published to its target thing over MQTT, the thing's answers are judged by
AWS's rules, and GetCommandExecution shows what the thing said instead of a
scripted lifecycle. POST/GET /_commands steer and read it.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import random
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "iot-jobs-data"
CONTROL_SERVICE = "iot"  # GetCommandExecution is on the control plane


# ---- SigV4, written independently of src/sigv4.c -------------------------

def _enc(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def canonical_request(method, path, query, headers, signed, payload_hash):
    segs = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    cpath = "/" + "/".join(_enc(urllib.parse.unquote(s)) for s in segs)
    if path.endswith("/") and segs:
        cpath += "/"
    pairs = []
    if query:
        for part in query.split("&"):
            if not part:
                continue
            k, _, v = part.partition("=")
            pairs.append((_enc(urllib.parse.unquote(k)), _enc(urllib.parse.unquote(v))))
    cquery = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    lines = []
    for name in signed:
        vals = [" ".join(v.split()) for (n, v) in headers if n.lower() == name]
        lines.append(f"{name}:{','.join(vals)}\n")
    return "\n".join([method, cpath, cquery, "".join(lines), ";".join(signed), payload_hash])


def signing_key(secret, day, region, service):
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def sign(secret, amz_date, region, service, creq):
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service),
                    sts.encode(), hashlib.sha256).hexdigest()


# ---- the StartCommandExecution model rules --------------------------------

PARAM_NAME = re.compile(r"^[.$a-zA-Z0-9_-]{1,192}$")
TOKEN = re.compile(r"^[\x21-\x7e]{1,64}$")
# StartCommandExecution targets an IoT thing or thing group, nothing else.
TARGET_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iot:[a-z0-9-]+:[0-9]{12}:(thing|thinggroup)/[a-zA-Z0-9:_-]{1,128}")


def validate_value(name, v):
    if not isinstance(v, dict) or len(v) != 1:
        return f"parameters.{name} must have exactly one of S B I L D BIN UL"
    (t, x), = v.items()
    ok = {
        "S": lambda: isinstance(x, str) and len(x) >= 1,
        "B": lambda: isinstance(x, bool),
        "I": lambda: type(x) is int and -2**31 <= x < 2**31,
        "L": lambda: type(x) is int and -2**63 <= x < 2**63,
        "D": lambda: type(x) in (int, float) and x == x and abs(x) != float("inf"),
        "BIN": lambda: isinstance(x, str) and len(x) > 0 and len(base64.b64decode(x, validate=True)) > 0,
        "UL": lambda: isinstance(x, str) and re.fullmatch(r"[0-9]{1,20}", x) is not None and int(x) <= 2**64 - 1,
    }.get(t)
    try:
        good = ok is not None and ok()
    except Exception:
        good = False
    return None if good else f"parameters.{name}.{t} is invalid"


def validate_body(raw):
    try:
        body = json.loads(raw.decode("utf-8"))
    except Exception:
        return None, "body is not JSON"
    if not isinstance(body, dict):
        return None, "body is not an object"
    allowed = {"targetArn", "commandArn", "parameters", "executionTimeoutSeconds", "clientToken"}
    extra = set(body) - allowed
    if extra:
        return None, f"unknown members {sorted(extra)}"
    t = body.get("targetArn")
    if not isinstance(t, str) or not 1 <= len(t) <= 2048:
        return None, "targetArn is required, at most 2048 characters"
    if not TARGET_ARN.fullmatch(t):
        return None, f"targetArn {t!r} is not the ARN of an IoT thing or thing group"
    if not isinstance(body.get("commandArn"), str) or not body["commandArn"]:
        return None, "commandArn is required"
    if "parameters" in body:
        p = body["parameters"]
        if not isinstance(p, dict) or len(p) < 1:
            return None, "parameters must be a non-empty map"
        for k, v in p.items():
            if not PARAM_NAME.fullmatch(k):
                return None, f"parameter name {k!r} is invalid"
            e = validate_value(k, v)
            if e:
                return None, e
    if "executionTimeoutSeconds" in body:
        x = body["executionTimeoutSeconds"]
        if type(x) is not int or x < 1:
            return None, "executionTimeoutSeconds must be an integer >= 1"
    if "clientToken" in body:
        if not isinstance(body["clientToken"], str) or not TOKEN.fullmatch(body["clientToken"]):
            return None, "clientToken is invalid"
    return body, None


# ---- the server -----------------------------------------------------------

class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        # every secret and token this endpoint ever handed out or was given
        # (kept across reset): none may appear in a gateway's log
        self.secrets = [x for x in (args.secret, args.session_token, args.container_token) if x]
        self.commands = None  # tests/fake_commands.py, with --iotcore
        self.reset()

    def reset(self):
        self.rules = []
        self.delay_ms = 0
        self.jitter_ms = 0  # each call waits a random 0..jitter_ms before it is served
        self.skew_s = 0
        self.log = []
        self.tokens = {}
        self.executions = 0
        self.issued = {}  # access key id -> (secret, token, expiry)
        self.creds = {"lifetime_s": 900, "fail": 0, "malformed": ""}
        self.imds_tokens = set()
        self.cred_log = []
        self.tls_log = []  # handshakes the mTLS listener refused
        self.set_quota(getattr(self.args, "quota", 0), getattr(self.args, "quota_burst", 0))
        self.quota_accepted = []
        self.quota_throttled = []
        self.reset_follow()
        self.freeze = None  # {"until", "calls", "hold_ms"}: see "Frozen endpoint"
        self.created_log = []
        if self.commands:
            self.commands.reset()

    def freeze_take(self):
        """The ms a call arriving now is held (0: not frozen)."""
        with self.lock:
            f = self.freeze
            if not f:
                return 0
            if (f.get("until") is not None and time.monotonic() >= f["until"]) or \
                    f.get("calls") == 0:
                self.freeze = None
                return 0
            if f.get("calls") is not None:
                f["calls"] -= 1
            return f["hold_ms"]

    def set_freeze(self, f):
        if not f:
            self.freeze = None
            return
        self.freeze = {"until": time.monotonic() + f["ms"] / 1000.0 if "ms" in f else None,
                       "calls": f.get("calls"), "hold_ms": f.get("hold_ms", 1000)}

    def reset_follow(self):
        self.started = {}  # executionId -> execution record (GetCommandExecution)
        self.polls = []
        self.poll_rules = []
        self.poll_delay_ms = 0

    def take_poll_rule(self, exec_id):
        with self.lock:
            for r in self.poll_rules:
                if r.get("execution") not in (None, exec_id):
                    continue
                if "times" in r:
                    if r["times"] <= 0:
                        continue
                    r["times"] -= 1
                return dict(r)
        return None

    def set_quota(self, rate, burst=None):
        """A token bucket of rate calls/s (0 or None: no quota), full at first."""
        self.quota_rate = float(rate or 0)
        self.quota_burst = float(burst if burst else max(self.quota_rate, 1.0))
        self.quota_tokens = self.quota_burst
        self.quota_ms = time.monotonic()

    def quota_take(self):
        """True when a call may pass the quota now (a token is taken)."""
        with self.lock:
            if self.quota_rate <= 0:
                return True
            now = time.monotonic()
            self.quota_tokens = min(self.quota_burst,
                                    self.quota_tokens + (now - self.quota_ms) * self.quota_rate)
            self.quota_ms = now
            if self.quota_tokens >= 1.0:
                self.quota_tokens -= 1.0
                return True
            self.quota_throttled.append(time.time())
            return False

    def take_rule(self, thing):
        with self.lock:
            for r in self.rules:
                if r.get("thing") not in (None, thing):
                    continue
                if "times" in r:
                    if r["times"] <= 0:
                        continue
                    r["times"] -= 1
                return dict(r)
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-aws"

    def setup(self):
        # Headers and body go out in two writes; without this, Nagle and the
        # client's delayed ACK add ~40 ms to every answer.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            sys.stderr.write("fake_aws: " + (fmt % a) + "\n")

    def reply(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        try:
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            if not getattr(self, "frozen", False):
                raise
            self.close_connection = True  # a frozen call's caller is gone

    def error(self, status, code, message, where="header"):
        st = self.server.state
        now = time.time() + st.skew_s
        hdrs = [("Date", formatdate(now, usegmt=True))]
        body = {"message": message}
        if where == "header":
            hdrs.append(("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.iot/"))
        elif where == "body":
            body["__type"] = f"com.amazonaws.iot#{code}"
        elif where == "code":
            body = {"code": code, "Message": message}
        self.reply(status, body, hdrs)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        st = self.server.state
        if self.path == "/_log":
            with st.lock:
                self.reply(200, st.log)
        elif self.path == "/_quota":
            with st.lock:
                self.reply(200, {"rate": st.quota_rate, "burst": st.quota_burst,
                                 "accepted": st.quota_accepted,
                                 "throttled": st.quota_throttled})
        elif self.path == "/_credlog":
            with st.lock:
                self.reply(200, st.cred_log)
        elif self.path == "/_secrets":
            with st.lock:
                self.reply(200, st.secrets)
        elif self.path == "/_tlslog":
            with st.lock:
                self.reply(200, st.tls_log)
        elif self.path == "/_polls":
            with st.lock:
                self.reply(200, st.polls)
        elif self.path == "/_created":
            with st.lock:
                self.reply(200, st.created_log)
        elif self.path == "/_commands" and st.commands:
            self.reply(200, st.commands.dump())
        elif self.path.startswith("/command-executions/"):
            self.get_command_execution()
        elif self.path.startswith("/creds/container"):
            want = st.args.container_token
            if want and self.headers.get("Authorization") != want:
                self.cred_answer(None, 401, {"message": "bad authorization token"})
            else:
                self.cred_answer("container")
        elif self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") not in st.imds_tokens:
                self.cred_answer(None, 401, {"message": "missing or invalid token"})
            elif self.path.endswith("/security-credentials/"):
                with st.lock:
                    st.cred_log.append({"path": self.path, "kind": "imds-role", "status": 200,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_text(200, "cmdgate-role")
            elif self.path.endswith("/security-credentials/cmdgate-role"):
                self.cred_answer("imds")
            else:
                self.cred_answer(None, 404, {"message": "no such role"})
        elif self.path.startswith("/role-aliases/"):
            if not getattr(self.server, "mtls", False):
                self.cred_answer(None, 403, {"message": "client certificate required"})
                return
            parts = self.path.split("/")
            if len(parts) != 4 or parts[3] != "credentials" or parts[2] != "cmdgate-alias":
                self.cred_answer(None, 404, {"message": "Role alias does not exist"})
            elif self.headers.get("x-amzn-iot-thingname") != st.args.iot_thing:
                self.cred_answer(None, 403, {"message": "Invalid thing name passed"})
            else:
                self.cred_answer("iot")
        else:
            self.reply(404, {"message": "not found"})

    def do_PUT(self):
        st = self.server.state
        self.read_body()
        if self.path == "/latest/api/token" and self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            tok = uuid.uuid4().hex
            with st.lock:
                st.imds_tokens.add(tok)
                st.secrets.append(tok)
            self.send_text(200, tok)
        else:
            self.reply(400, {"message": "bad token request"})

    def send_text(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def cred_answer(self, kind, status=200, body=None):
        """Issue temporary credentials in the shape of `kind`, or an error."""
        st = self.server.state
        with st.lock:
            st.cred_log.append({"path": self.path, "kind": kind, "status": status,
                                "headers": {k.lower(): v for k, v in self.headers.items()}})
            if kind and st.creds.get("fail", 0) > 0:
                st.creds["fail"] -= 1
                kind, status, body = None, 500, {"message": "injected failure"}
            malformed = st.creds.get("malformed", "") if kind else ""
            life = st.creds.get("lifetime_s", 900)
        if not kind:
            self.reply(status, body)
            return
        if malformed == "notjson":
            self.send_text(200, "<html>not json</html>")
            return
        akid = "ASIA" + uuid.uuid4().hex[:16].upper()
        secret, token = uuid.uuid4().hex + uuid.uuid4().hex, "tok-" + uuid.uuid4().hex
        exp = time.time() + life
        exptxt = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
        if malformed == "badexp":
            exptxt = "next tuesday"
        with st.lock:
            st.issued[akid] = (secret, token, exp)
            st.secrets += [secret, token]
        if kind == "iot":
            c = {"accessKeyId": akid, "secretAccessKey": secret, "sessionToken": token,
                 "expiration": exptxt}
            if malformed == "missing":
                del c["sessionToken"]
            self.reply(200, {"credentials": c})
        else:
            c = {"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                 "Expiration": exptxt}
            if kind == "imds":
                c.update({"Code": "Success", "Type": "AWS-HMAC",
                          "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
            if malformed == "missing":
                del c["SecretAccessKey"]
            self.reply(200, c)

    def do_POST(self):
        st = self.server.state
        raw = self.read_body()
        if self.path == "/_commands" and st.commands:
            self.reply(200, st.commands.control(json.loads(raw or b"{}")))
            return
        if self.path == "/_control":
            ctl = json.loads(raw or b"{}")
            with st.lock:
                if ctl.get("reset"):
                    st.reset()
                st.rules.extend(ctl.get("rules", []))
                st.delay_ms = ctl.get("delay_ms", st.delay_ms)
                st.jitter_ms = ctl.get("jitter_ms", st.jitter_ms)
                st.skew_s = ctl.get("skew_s", st.skew_s)
                st.poll_rules.extend(ctl.get("poll_rules", []))
                st.poll_delay_ms = ctl.get("poll_delay_ms", st.poll_delay_ms)
                c = ctl.get("creds", {})
                if c.pop("expire_all", False):
                    for k, (sec, tok, _) in list(st.issued.items()):
                        st.issued[k] = (sec, tok, time.time() - 1)
                st.creds.update(c)
                if "freeze" in ctl:
                    st.set_freeze(ctl["freeze"])
                if "quota" in ctl:
                    q = ctl["quota"] or {}
                    st.set_quota(q.get("rate", 0), q.get("burst"))
            self.reply(200, {"ok": True})
            return
        path, _, query = self.path.partition("?")
        if path != "/command-executions":
            self.error(404, "UnknownOperationException", "no such operation")
            return
        entry = {"time": time.time(), "body": raw.decode("utf-8", "replace"),
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        try:
            doc = json.loads(raw)
        except Exception:
            doc = {}
        entry["clientToken"] = doc.get("clientToken") if isinstance(doc, dict) else None
        thing = ""
        if isinstance(doc, dict) and isinstance(doc.get("targetArn"), str):
            thing = doc["targetArn"].rsplit("/", 1)[-1]
        entry["thing"] = thing
        with st.lock:
            st.log.append(entry)
            delay = st.delay_ms
        hold_ms = st.freeze_take()
        if hold_ms:
            entry["frozen_ms"] = hold_ms
            self.frozen = True
            time.sleep(hold_ms / 1000.0)
        rule = st.take_rule(thing)
        delay = (rule or {}).get("delay_ms", delay)
        if st.jitter_ms:  # the network or AWS reorders calls that overlap
            delay += random.uniform(0, st.jitter_ms)
        if delay:
            time.sleep(delay / 1000.0)
        if rule and rule.get("drop"):
            entry["outcome"] = "dropped"
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        problem = self.check_signature(raw, path, query)
        if problem:
            entry["outcome"] = problem[1]
            self.error(403, problem[1], problem[2])
            return
        if not st.quota_take():
            entry["outcome"] = "ThrottlingException"
            entry["quota"] = True
            self.error(429, "ThrottlingException", "Rate exceeded")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            entry["outcome"] = "content-type"
            self.error(400, "ValidationException", "Content-Type must be application/json")
            return
        if rule and rule.get("status"):
            entry["outcome"] = rule.get("code") or str(rule["status"])
            if rule.get("where") == "none":
                self.reply(rule["status"], {})
            else:
                self.error(rule["status"], rule.get("code", "UnknownError"),
                           rule.get("message", "injected"), rule.get("where", "header"))
            return
        body, msg = validate_body(raw)
        if msg:
            entry["outcome"] = "ValidationException"
            self.error(400, "ValidationException", msg)
            return
        token = body.get("clientToken")
        key = json.dumps({k: v for k, v in body.items() if k != "clientToken"}, sort_keys=True)
        with st.lock:
            if token is not None and token in st.tokens:
                prev_key, exec_id = st.tokens[token]
                if prev_key != key:
                    entry["outcome"] = "ConflictException"
                    self.error(409, "ConflictException",
                               "clientToken was used with a different request")
                    return
                entry["outcome"] = "replayed"
            else:
                st.executions += 1
                entry["created"] = st.executions  # the order AWS created them in
                exec_id = str(uuid.uuid4())
                st.created_log.append({"order": st.executions, "time": time.time(),
                                       "thing": thing, "clientToken": token,
                                       "executionId": exec_id,
                                       "frozen": bool(entry.get("frozen_ms"))})
                if token is not None:
                    st.tokens[token] = (key, exec_id)
                entry["outcome"] = "started"
            entry["executionId"] = exec_id
            st.quota_accepted.append(time.time())
            created = exec_id not in st.started
            if created:
                st.started[exec_id] = new_execution(exec_id, body)
        if created and st.commands:  # delivered to the thing before AWS answers
            st.commands.on_start(st.started[exec_id], body)
        self.reply(200, {"executionId": exec_id})

    def check_signature(self, raw, path, query, service_name=SERVICE):
        """None when the request is signed as AWS requires, else (status, code, message)."""
        a = self.server.state.args
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            return (403, "IncompleteSignatureException", "Authorization header is malformed")
        akid, day, region, service, signed, sig = m.groups()
        secret, want_token = a.secret, a.session_token
        if akid != a.access_key:
            with st.lock:
                issued = st.issued.get(akid)
            if not issued:
                return (403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            secret, want_token, exp = issued
            if time.time() > exp:
                return (403, "ExpiredTokenException", "The security token included in the request is expired")
        amz_date = self.headers.get("X-Amz-Date", "")
        signed_list = signed.split(";")
        for need in ("host", "x-amz-date"):
            if need not in signed_list:
                return (403, "InvalidSignatureException", f"{need} must be signed")
        if want_token:
            if self.headers.get("X-Amz-Security-Token") != want_token:
                return (403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            if "x-amz-security-token" not in signed_list:
                return (403, "InvalidSignatureException", "x-amz-security-token must be signed")
        if day != amz_date[:8] or region != a.region or service != service_name:
            return (403, "InvalidSignatureException", "Credential should be scoped correctly")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            return (403, "IncompleteSignatureException", "X-Amz-Date is malformed")
        now = time.time() + st.skew_s
        if abs(now - t) > 300:
            nowtxt = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            return (403, "InvalidSignatureException",
                    f"Signature expired: {amz_date} is now earlier than {nowtxt} (5 min.)"
                    if t < now else f"Signature not yet current: {amz_date} is still later than {nowtxt} (5 min.)")
        headers = list(self.headers.items())
        creq = canonical_request(self.command, path, query, headers, signed_list,
                                 hashlib.sha256(raw).hexdigest())
        if not hmac.compare_digest(sign(secret, amz_date, region, service, creq), sig):
            return (403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
        return None


# ---- GetCommandExecution: scripted lifecycles ------------------------------

def _reason(code, text):
    return {"reasonCode": code, "reasonDescription": text}


# name -> [(at_s, status, statusReason or None, result or None)]; at_s scaled
LIFECYCLES = {
    "succeed": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None),
                (1.0, "SUCCEEDED", _reason("OK", "the valve is open"),
                 {"message": {"S": "done"}, "position": {"S": "open"}})],
    "fail": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None),
             (1.0, "FAILED", _reason("VALVE_STUCK", "the valve did not move"), None)],
    "reject": [(0, "CREATED", None, None),
               (0.5, "REJECTED", _reason("BUSY", "the device is busy"), None)],
    "timeout-late": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None),
                     (1.0, "TIMED_OUT", _reason("$NO_RESPONSE_FROM_DEVICE", "no answer yet"), None),
                     (3.0, "SUCCEEDED", None, {"message": {"S": "late"}})],
    "timeout": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None),
                (1.0, "TIMED_OUT", _reason("DEVICE_TIMEOUT", "the device gave up"), None)],
    "notfound-first": [(0, "CREATED", None, None), (2.3, "IN_PROGRESS", None, None),
                       (3.0, "SUCCEEDED", None, {"message": {"S": "done"}})],
    "slow": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None),
             (12.0, "SUCCEEDED", None, {"message": {"S": "done"}})],
    "forbidden": [(0, "CREATED", None, None)],
    "never": [(0, "CREATED", None, None), (0.3, "IN_PROGRESS", None, None)],
}


def _param(body, name):
    v = (body.get("parameters") or {}).get(name)
    if isinstance(v, dict) and len(v) == 1:
        return next(iter(v.values()))
    return None


def new_execution(exec_id, body):
    command = body["commandArn"].rsplit("/", 1)[-1]
    name = _param(body, "lifecycle") or (command[3:] if command.startswith("lc-") else "succeed")
    if name not in LIFECYCLES:
        name = "succeed"
    scale = _param(body, "duration_s")
    try:
        scale = float(scale) if scale is not None else 1.0
    except (TypeError, ValueError):
        scale = 1.0
    return {"executionId": exec_id, "targetArn": body["targetArn"],
            "commandArn": body["commandArn"], "parameters": body.get("parameters", {}),
            "lifecycle": name, "scale": scale, "start": time.time()}


def execution_view(ex, include_result, now):
    """The GetCommandExecution answer for ex at now, or (status, code, message)."""
    if ex.get("device"):  # driven by the thing's answers (fake_commands.py)
        out = {"executionId": ex["executionId"], "commandArn": ex["commandArn"],
               "targetArn": ex["targetArn"], "parameters": ex["parameters"],
               "createdAt": ex["start"], "lastUpdatedAt": now}
        out.update(ex["device"](include_result, now))
        return out, None
    age = now - ex["start"]
    name = ex["lifecycle"]
    if name == "forbidden":
        return None, (403, "AccessDeniedException",
                      "User is not authorized to perform: iot:GetCommandExecution")
    if name == "notfound-first" and age < 2.0 * ex["scale"]:
        return None, (404, "ResourceNotFoundException", "The command execution does not exist")
    status, reason, result = "CREATED", None, None
    for at, st_, rs, res in LIFECYCLES[name]:
        if age >= at * ex["scale"]:
            status, reason, result = st_, rs, res
    out = {"executionId": ex["executionId"], "commandArn": ex["commandArn"],
           "targetArn": ex["targetArn"], "status": status,
           "parameters": ex["parameters"], "createdAt": ex["start"],
           "lastUpdatedAt": now}
    if reason:
        out["statusReason"] = reason
    if result and include_result:
        out["result"] = result
    if status in ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"):
        out["completedAt"] = now
    return out, None


def _get_command_execution(self):
    st = self.server.state
    path, _, query = self.path.partition("?")
    exec_id = urllib.parse.unquote(path[len("/command-executions/"):])
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    entry = {"time": time.time(), "executionId": exec_id, "query": query,
             "headers": {k.lower(): v for k, v in self.headers.items()}}
    with st.lock:
        st.polls.append(entry)
        delay = st.poll_delay_ms
    rule = st.take_poll_rule(exec_id)
    delay = (rule or {}).get("delay_ms", delay)
    if delay:
        time.sleep(delay / 1000.0)
    problem = self.check_signature(b"", path, query, CONTROL_SERVICE)
    if problem:
        entry["outcome"] = problem[1]
        self.error(403, problem[1], problem[2])
        return
    if rule and rule.get("status"):
        entry["outcome"] = rule.get("code") or str(rule["status"])
        self.error(rule["status"], rule.get("code", "UnknownError"),
                   rule.get("message", "injected"), rule.get("where", "header"))
        return
    with st.lock:
        ex = st.started.get(exec_id)
    if not ex:
        entry["outcome"] = "ResourceNotFoundException"
        self.error(404, "ResourceNotFoundException", "The command execution does not exist")
        return
    if params.get("targetArn") != ex["targetArn"]:
        entry["outcome"] = "target-mismatch"
        self.error(400, "ValidationException", "targetArn does not match the execution's target")
        return
    view, err = execution_view(ex, params.get("includeResult") == "true", time.time())
    if err:
        entry["outcome"] = err[1]
        self.error(*err)
        return
    entry["outcome"] = view["status"]
    self.reply(200, view)


Handler.get_command_execution = _get_command_execution


class MtlsServer(ThreadingHTTPServer):
    """The TLS handshake runs in accept(): record the ones refused."""

    def get_request(self):
        try:
            return super().get_request()
        except ssl.SSLError as e:
            with self.state.lock:
                self.state.tls_log.append({"time": time.time(), "error": str(e)})
            raise


def serve(server):
    server.serve_forever(poll_interval=0.2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--region", default="eu-west-1")
    p.add_argument("--access-key", default="AKIDCMDGATETEST")
    p.add_argument("--secret", default="cmdgate-test-secret")
    p.add_argument("--session-token", default="")
    p.add_argument("--port-file", required=True, help="writes 'HTTP_PORT [HTTPS_PORT [MTLS_PORT]]'")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--container-token", default="", help="required Authorization for /creds")
    p.add_argument("--iot-thing", default="gw-thing", help="expected x-amzn-iot-thingname")
    p.add_argument("--client-ca", help="CA for client certificates: adds an mTLS listener")
    p.add_argument("--quota", type=float, default=0, help="account quota, calls/s (0: none)")
    p.add_argument("--quota-burst", type=float, default=0, help="quota burst (default: the rate)")
    p.add_argument("--iotcore", help="HOST:PORT of the IoT Core stand-in's plain listener")
    args = p.parse_args()
    state = State(args)
    if args.iotcore:
        import os
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fake_commands
        state.commands = fake_commands.Commands(state, args.iotcore)
    servers = []
    # many calls open their connections at once: a deep accept backlog
    ThreadingHTTPServer.request_queue_size = 1024
    plain = ThreadingHTTPServer(("127.0.0.1", args.http_port), Handler)
    servers.append(plain)
    if args.cert:
        tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    if args.cert and args.client_ca:
        mtls = MtlsServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        mtls.socket = ctx.wrap_socket(mtls.socket, server_side=True)
        mtls.mtls = True
        servers.append(mtls)
    for s in servers:
        s.daemon_threads = True
        s.state = state
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    ports = " ".join(str(s.server_address[1]) for s in servers)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(ports + "\n")
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
