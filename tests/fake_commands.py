"""The AWS IoT Commands service's device side, for tests/fake_aws.py when it
runs with `--iotcore HOST:PORT` (SPEC section 9). Loaded only then, so the
fake's other users never see it.

It connects (MQTT 5, as the admin user of tests/iotcore.py's plain listener)
to the stand-in's broker. Each execution StartCommandExecution creates is
published on `$aws/commands/things/<thing>/executions/<id>/request/<format>`
(`json`, `cbor`, or no suffix for any other format; per command, set by the
test) at QoS 1 with MQTT 5 Content Type and Message Expiry = the execution
timeout. It consumes `.../response/json` and answers on
`.../response/accepted/json` (`{"executionId": ...}`) or
`.../response/rejected/json` (`{"error", "errorMessage", "executionId"}`) by
AWS's rules:

  - the update is a JSON object (else InvalidJson) with only `status`,
    `statusReason` and `result` (else InvalidRequest); `status` one of
    IN_PROGRESS SUCCEEDED FAILED REJECTED TIMED_OUT (CREATED is AWS's alone:
    InvalidStateTransition); `statusReason.reasonCode` `^[A-Z0-9_-]{1,64}$`,
    `reasonDescription` at most 1024 characters; `result` a non-empty map whose
    values have exactly one of the lower-case `s` (string), `b` (boolean),
    `bin` (base64) — the device protocol's shape;
  - SUCCEEDED, FAILED, REJECTED and a device-sent TIMED_OUT are terminal: any
    later update is TerminalStateReached; the TIMED_OUT AWS sets itself when
    the execution timeout passes (reason `$NO_RESPONSE_FROM_DEVICE`) is not,
    so a late answer is accepted;
  - an update applying takes `apply_ms` (default 0); one that arrives for the
    same execution meanwhile is DataConflict;
  - update rules (like fake_aws's rules) inject `error` (DataConflict,
    RequestThrottled, ...), `drop` (no verdict), `apply_then_drop` (applied,
    verdict lost) or `delay_ms`, `times` times, for a thing or an execution.

Where AWS's documentation is silent, the choices made here (so a test that
leans on them leans on a guess): the accepted payload is
{"executionId": ...}; CREATED from a device is InvalidStateTransition; an
update for an execution this thing does not have is ResourceNotFound; an
unknown member in an update is InvalidRequest (AWS may ignore it: SPEC 9
says the gateway drops them, so strictness here proves it does); the
default execution timeout is 60 s; raw payloads go out as
application/octet-stream unless the test names a content type; thing
groups are not fanned out.

GetCommandExecution (fake_aws) then reports what the device said: status,
statusReason, and result in its upper-case `S`/`B`/`BIN` shape.

Tests steer it with POST /_commands on the fake's HTTP port (JSON):
  {"reset": true, "apply_ms": 0, "default_timeout_s": 60,
   "formats": {"<command>": {"format": "json|cbor|raw", "payload_b64": "...",
                             "content_type": "...", "expiry": true}},
   "update_rules": [{"thing": "t", "execution": "id", "times": 1,
                     "error": "DataConflict", "drop": false,
                     "apply_then_drop": false, "delay_ms": 0}],
   "execute": {"thing": "t", "command": "c", "format": "cbor",
               "payload_b64": "...", "timeout_s": 30, "expiry": 30},
   "redeliver": "<executionId>"}
("execute" creates an execution without the HTTP call and answers its id;
"expiry": null publishes without Message Expiry; "redeliver" publishes an
execution's request again, as AWS does after a reconnect.) GET /_commands
returns every execution: its request, each publish of it, every update
received in order (raw text, verdict, error, the verdict's exact bytes) and
what GetCommandExecution shows.
"""
import base64
import json
import re
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ADMIN = "iotcore-admin"  # tests/iotcore.py's admin user
STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT")
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT")
REASON_CODE = re.compile(r"^[A-Z0-9_-]{1,64}$")
NO_RESPONSE = "$NO_RESPONSE_FROM_DEVICE"
TOPIC = re.compile(r"^\$aws/commands/things/([^/]+)/executions/([^/]+)/response/json$")
CONTENT_TYPES = {"json": "application/json", "cbor": "application/cbor",
                 "raw": "application/octet-stream"}


def validate_update(doc):
    """None when doc is an update AWS takes, else (error, message)."""
    if not isinstance(doc, dict):
        return ("InvalidJson", "the payload is not a JSON object")
    extra = set(doc) - {"status", "statusReason", "result"}
    if extra:
        return ("InvalidRequest", f"unknown members {sorted(extra)}")
    status = doc.get("status")
    if status == "CREATED":
        return ("InvalidStateTransition", "status CREATED is set by AWS only")
    if status not in STATUSES:
        return ("InvalidRequest", f"status: {status!r} is not a command execution status")
    if "statusReason" in doc:
        r = doc["statusReason"]
        if not isinstance(r, dict) or set(r) - {"reasonCode", "reasonDescription"}:
            return ("InvalidRequest", "statusReason: must be {reasonCode, reasonDescription}")
        if not isinstance(r.get("reasonCode"), str) or not REASON_CODE.fullmatch(r["reasonCode"]):
            return ("InvalidRequest", "statusReason.reasonCode: must match ^[A-Z0-9_-]{1,64}$")
        d = r.get("reasonDescription", "")
        if not isinstance(d, str) or len(d) > 1024:
            return ("InvalidRequest", "statusReason.reasonDescription: at most 1024 characters")
    if "result" in doc:
        res = doc["result"]
        if not isinstance(res, dict) or not res:
            return ("InvalidRequest", "result: must be a non-empty map")
        for name, v in res.items():
            if not isinstance(v, dict) or len(v) != 1 or next(iter(v)) not in ("s", "b", "bin"):
                return ("InvalidRequest", f"result.{name}: must have exactly one of s, b, bin")
            (t, x), = v.items()
            ok = (isinstance(x, str) if t == "s" else isinstance(x, bool) if t == "b"
                  else isinstance(x, str) and _base64(x))
            if not ok:
                return ("InvalidRequest", f"result.{name}.{t}: wrong type")
    return None


def _base64(x):
    try:
        return len(base64.b64decode(x, validate=True)) > 0
    except Exception:
        return False


class Commands:
    """The commands service: executions by id, the MQTT client, the rules."""

    def __init__(self, state, hostport):
        self.state = state
        self.lock = threading.Lock()
        host, _, port = hostport.rpartition(":")
        self.reset()
        self.client = mqtt.Client(client_id=f"aws-commands-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(ADMIN)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        # a persistent session: answers a link sends while this client is
        # reconnecting (the broker restarted) are queued for it, as AWS's
        # service never misses one
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(host, int(port), keepalive=30, clean_start=False,
                                  properties=props)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.loop_start()

    def reset(self):
        with self.lock:
            self.executions = {}
            self.formats = {}
            self.rules = []
            self.apply_ms = 0
            self.default_timeout_s = 60
            self.orphans = []  # updates for no known execution

    def _on_connect(self, c, u, flags, rc, props=None):
        c.subscribe("$aws/commands/things/+/executions/+/response/json", qos=1)

    # ---- requests ----------------------------------------------------------

    def on_start(self, ex, body):
        """fake_aws created ex (StartCommandExecution): deliver it."""
        if ":thing/" not in ex["targetArn"]:
            return  # thing groups fan out on AWS; not modelled
        thing = ex["targetArn"].rsplit("/", 1)[-1]
        command = ex["commandArn"].rsplit("/", 1)[-1]
        with self.lock:
            fmt = dict(self.formats.get(command) or {})
        if "payload_b64" in fmt:
            payload = base64.b64decode(fmt["payload_b64"])
        else:
            payload = json.dumps({"command": command,
                                  "parameters": body.get("parameters", {})}).encode()
        timeout = body.get("executionTimeoutSeconds") or self.default_timeout_s
        self._create(ex, thing, command, fmt.get("format", "json"), payload, timeout,
                     fmt.get("content_type"), timeout if fmt.get("expiry", True) else None)

    def _create(self, ex, thing, command, fmt, payload, timeout, content_type, expiry):
        suffix = {"json": "/json", "cbor": "/cbor"}.get(fmt, "")
        rec = {"executionId": ex["executionId"], "thing": thing, "command": command,
               "format": fmt, "topic": f"$aws/commands/things/{thing}/executions/"
                                       f"{ex['executionId']}/request{suffix}",
               "payload": payload, "content_type": content_type or CONTENT_TYPES.get(fmt),
               "expiry": expiry, "timeout_s": timeout, "created": time.time(),
               "status": "CREATED", "statusReason": None, "result": None,
               "aws_timed_out": False, "updates": [], "publishes": [], "applying_until": 0.0}
        with self.lock:
            self.executions[rec["executionId"]] = rec
        ex["device"] = lambda include_result, now: self.view(rec["executionId"], include_result, now)
        self.publish_request(rec)
        return rec

    def publish_request(self, rec):
        props = Properties(PacketTypes.PUBLISH)
        if rec["content_type"]:
            props.ContentType = rec["content_type"]
        if rec["expiry"] is not None:
            props.MessageExpiryInterval = int(rec["expiry"])
        with self.lock:
            rec["publishes"].append(time.time())
        self.client.publish(rec["topic"], rec["payload"], qos=1, properties=props)

    # ---- updates -----------------------------------------------------------

    def _expire(self, rec, now):
        """AWS's own TIMED_OUT once the timeout passed with no final status."""
        if rec["status"] in ("CREATED", "IN_PROGRESS") and now > rec["created"] + rec["timeout_s"]:
            rec["status"] = "TIMED_OUT"
            rec["aws_timed_out"] = True
            rec["statusReason"] = {"reasonCode": NO_RESPONSE,
                                   "reasonDescription": "the device did not answer in time"}

    def _terminal(self, rec):
        return rec["status"] in TERMINAL and not rec["aws_timed_out"]

    def _take_rule(self, thing, exec_id):
        for r in self.rules:
            if r.get("thing") not in (None, thing) or r.get("execution") not in (None, exec_id):
                continue
            if "times" in r:
                if r["times"] <= 0:
                    continue
                r["times"] -= 1
            return dict(r)
        return None

    def _on_message(self, c, u, m):
        mt = TOPIC.match(m.topic)
        if not mt:
            return
        thing, exec_id = mt.groups()
        now = time.time()
        raw = m.payload.decode("utf-8", "replace")
        with self.lock:
            rec = self.executions.get(exec_id)
            if not rec or rec["thing"] != thing:
                self.orphans.append({"time": now, "topic": m.topic, "raw": raw})
                entry, verdict = None, ("ResourceNotFound", "no such execution for this thing")
            else:
                entry = {"time": now, "raw": raw, "dup": bool(m.dup)}
                rec["updates"].append(entry)
                verdict, delay = self._decide(rec, thing, exec_id, m.payload, now, entry)
        if entry is None:
            self._answer(thing, exec_id, verdict, None)
        elif verdict != "drop":
            if delay:
                threading.Timer(delay, self._answer, (thing, exec_id, verdict, entry)).start()
            else:
                self._answer(thing, exec_id, verdict, entry)

    def _decide(self, rec, thing, exec_id, payload, now, entry):
        """The verdict for one update ("accepted", "drop" or (error, message))
        and the seconds before it is sent; applies it. Called under the lock."""
        self._expire(rec, now)
        rule = self._take_rule(thing, exec_id) or {}
        delay = rule.get("delay_ms", 0) / 1000.0
        if rule.get("error"):
            entry["verdict"] = rule["error"]
            return (rule["error"], rule.get("message", "injected")), delay
        if rule.get("drop"):
            entry["verdict"] = "dropped"
            return "drop", 0
        if now < rec["applying_until"]:
            entry["verdict"] = "DataConflict"
            return ("DataConflict", "an update of this execution is still being applied"), 0
        try:
            doc = json.loads(payload.decode("utf-8"))
        except Exception:
            doc = None
            bad = ("InvalidJson", "the payload is not valid JSON")
        else:
            bad = validate_update(doc)
        if not bad and self._terminal(rec):
            bad = ("TerminalStateReached", f"the execution is already {rec['status']}")
        if bad:
            entry["verdict"] = bad[0]
            return bad, delay
        rec["status"] = doc["status"]
        rec["aws_timed_out"] = False
        if "statusReason" in doc:
            rec["statusReason"] = doc["statusReason"]
        if "result" in doc:
            rec["result"] = {k: {next(iter(v)).upper(): next(iter(v.values()))}
                             for k, v in doc["result"].items()}
        rec["applying_until"] = now + self.apply_ms / 1000.0
        entry["verdict"] = "accepted"
        entry["applied"] = doc
        if rule.get("apply_then_drop"):
            entry["verdict"] = "applied-dropped"
            return "drop", 0
        return "accepted", max(delay, self.apply_ms / 1000.0)

    def _answer(self, thing, exec_id, verdict, entry):
        base = f"$aws/commands/things/{thing}/executions/{exec_id}/response/"
        if verdict == "accepted":
            topic, body = base + "accepted/json", {"executionId": exec_id}
        else:
            topic = base + "rejected/json"
            body = {"error": verdict[0], "errorMessage": verdict[1], "executionId": exec_id}
        data = json.dumps(body).encode()
        if entry is not None:
            with self.lock:
                entry["answer_topic"] = topic
                entry["answer"] = data.decode()
                entry["answered"] = time.time()
        self.client.publish(topic, data, qos=1)

    # ---- what tests and GetCommandExecution see ---------------------------

    def view(self, exec_id, include_result, now):
        with self.lock:
            rec = self.executions[exec_id]
            self._expire(rec, now)
            out = {"status": rec["status"]}
            if rec["statusReason"]:
                out["statusReason"] = dict(rec["statusReason"])
            if rec["result"] and include_result:
                out["result"] = json.loads(json.dumps(rec["result"]))
        return out

    def dump(self):
        now = time.time()
        with self.lock:
            for rec in self.executions.values():
                self._expire(rec, now)
            return {"executions": {k: dict({x: y for x, y in r.items() if x != "payload"},
                                            payload_b64=base64.b64encode(r["payload"]).decode())
                                   for k, r in self.executions.items()},
                    "orphans": list(self.orphans)}

    def control(self, ctl):
        if ctl.get("reset"):
            self.reset()
        with self.lock:
            self.formats.update(ctl.get("formats", {}))
            self.rules.extend(ctl.get("update_rules", []))
            self.apply_ms = ctl.get("apply_ms", self.apply_ms)
            self.default_timeout_s = ctl.get("default_timeout_s", self.default_timeout_s)
            rec = self.executions.get(ctl.get("redeliver", ""))
        if rec:
            self.publish_request(rec)
        out = {"ok": True}
        if "execute" in ctl:
            e = ctl["execute"]
            exec_id = e.get("executionId") or str(uuid.uuid4())
            ex = {"executionId": exec_id,
                  "targetArn": f"arn:aws:iot:eu-west-1:123456789012:thing/{e['thing']}",
                  "commandArn": f"arn:aws:iot:eu-west-1:123456789012:command/{e.get('command', 'c')}",
                  "parameters": {}, "lifecycle": "succeed", "scale": 1.0, "start": time.time()}
            with self.state.lock:
                self.state.started[exec_id] = ex
            fmt = e.get("format", "json")
            payload = base64.b64decode(e["payload_b64"]) if "payload_b64" in e else b"{}"
            timeout = e.get("timeout_s", self.default_timeout_s)
            self._create(ex, e["thing"], e.get("command", "c"), fmt, payload, timeout,
                         e.get("content_type"), e.get("expiry", timeout))
            out["executionId"] = exec_id
        return out
