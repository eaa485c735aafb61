"""A target's order holds even when a call's fate is unknown (issue 19).

The local endpoint is frozen: it takes a call, holds it past the gateway's
request_timeout_ms and only then creates the execution. Requests A then B
for one target: A's calls all time out, so the gateway answers A
Unavailable (or Expired) without knowing whether AWS will create it; B must
still be created after A. The gateway settles A first -- a repeat with the
same body and token that AWS answers definitely -- and only then starts B.

Cases (3 runs each by default, 20 with CMDGATE_SOAK=1):
  - frozen endpoint, gateway running: created A before B; A's device,
    repeating A's id after its Unavailable, gets accepted with A's
    executionId; the settling is counted in the Prometheus file;
  - the gateway SIGKILLed while A's call is in flight (spool): A is resumed
    past its deadline, answered Expired and settled before B;
  - the gateway SIGKILLed while A is settling (its reply delivered): A is
    resumed only to settle, answered no second time, and created before B.
"""
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Device, Gateway, config, wait_for  # noqa: E402

TMP = BROKER = AWS = None
RUNS = harness.soak(3, 20)

setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-settle-")


def created_tokens(thing):
    """Client tokens of thing's executions, in the order the endpoint created them."""
    import urllib.request
    rows = json.loads(urllib.request.urlopen(AWS.url + "/_created", timeout=5).read())
    return [(r["clientToken"], r["executionId"]) for r in rows if r["thing"] == thing]


def frozen_calls_done():
    """Every call the endpoint held has been carried out (it answered or
    created by now, whatever the gateway did meanwhile)."""
    return all("outcome" in c for c in AWS.calls() if c.get("frozen_ms"))


def answers(dev, base):
    return [json.loads(m.payload) for m in dev.replies(base + "/")
            if m.topic.endswith(("/accepted", "/rejected"))]


class Settle(unittest.TestCase):
    def setUp(self):
        AWS.reset()

    def check_order(self, thing, first, then, log):
        self.assertTrue(wait_for(frozen_calls_done, 20), "the frozen calls never ended")
        got = created_tokens(thing)
        tokens = [t for t, _ in got]
        self.assertEqual(len(tokens), len(set(tokens)), f"an execution created twice: {got}")
        self.assertEqual(tokens, [first, then],
                         f"executions not created in publish order: {got}\n{log[-3000:]}")
        return dict(got)

    def test_frozen_endpoint_creates_a_before_b(self):
        prom = os.path.join(TMP, "settle.prom")
        conf = config(BROKER.port, AWS.url,
                      aws_extra="request_timeout_ms = 400; max_attempts = 2;",
                      gateway_extra="deadline_ms = 5000; settle_max_ms = 20000;",
                      extra=f'stats: {{ file = "{prom}"; interval = 1; }};')
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        settled_before = 0
        try:
            for run in range(RUNS):
                AWS.reset()
                thing = f"order-{run}-{time.time_ns()}"
                base = f"commands/{thing}/go/start"
                # A's two attempts are held 2 s each; later calls go through
                AWS.control(freeze={"calls": 2, "hold_ms": 2000})
                dev.publish(base, {"id": f"A{run}"})
                dev.publish(base, {"id": f"B{run}"})
                got = wait_for(lambda: len(answers(dev, base)) >= 2 and answers(dev, base), 15)
                self.assertTrue(got, gw.text()[-3000:])
                by_id = {a["id"]: a for a in got}
                a, b = by_id[f"A{run}"], by_id[f"B{run}"]
                self.assertEqual((a["status"], a["code"], a["retryable"]),
                                 ("rejected", "Unavailable", True), a)
                self.assertEqual(b["status"], "accepted", b)
                execs = self.check_order(thing, a["clientToken"], b["clientToken"], gw.text())
                self.assertEqual(b["executionId"], execs[b["clientToken"]])
                # the endpoint's view: the settling call created A (the held
                # ones found it there), so the gateway's "accepted" was "created"
                made_by = {c["clientToken"]: c.get("frozen_ms") for c in AWS.calls()
                           if c.get("outcome") == "started"}
                self.assertFalse(made_by[a["clientToken"]])
                # the device repeats A (same id): accepted, with the execution settling made
                again, _ = dev.request(thing, "go", {"id": f"A{run}"})
                self.assertEqual(again["status"], "accepted", again)
                self.assertEqual(again["executionId"], execs[a["clientToken"]])
                self.assertIn(f"token={a['clientToken']} settled=accepted", gw.text())
                settled_before += 1
            # counted: the Prometheus file shows every settling, ended accepted
            want = f'cmdgate_settled_total{{outcome="accepted"}} {settled_before}'
            ok = wait_for(lambda: os.path.exists(prom) and want in open(prom).read(), 5)
            self.assertTrue(ok, open(prom).read() if os.path.exists(prom) else "no stats file")
            print(f"  {RUNS} runs: A created before B each time", file=sys.stderr)
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def kill_run(self, run, settling):
        """One run of a SIGKILL case; settling: kill once A was answered and
        is settling, else while A's first call is in flight."""
        spool = os.path.join(TMP, f"spool-{run}-{settling}-{time.time_ns()}")
        cid = f"gw-settle-{time.time_ns()}"
        if settling:
            aws = "request_timeout_ms = 400; max_attempts = 2;"
            gwx = f'spool_dir = "{spool}"; deadline_ms = 5000;'
        else:
            aws = "request_timeout_ms = 1000;"
            gwx = f'spool_dir = "{spool}"; deadline_ms = 1500;'
        conf = config(BROKER.port, AWS.url, mqtt_extra=f'client_id = "{cid}";',
                      aws_extra=aws, gateway_extra=gwx)
        thing = f"kill-{run}-{time.time_ns()}"
        base = f"commands/{thing}/go/start"
        AWS.reset()
        AWS.control(freeze={"hold_ms": 3000 if not settling else 4000})
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port)
        try:
            t0 = time.time()
            dev.publish(base, {"id": f"A{run}"})
            if settling:
                self.assertTrue(wait_for(lambda: answers(dev, base), 10), gw.text()[-2000:])
                self.assertTrue(wait_for(lambda: "settle thing=" + thing in gw.text(), 5))
                self.assertTrue(wait_for(lambda: any(
                    c.get("frozen_ms") and c["thing"] == thing for c in AWS.calls()[2:]), 5),
                    "no settling call in flight")
            else:
                self.assertTrue(wait_for(lambda: any(c["thing"] == thing
                                                     for c in AWS.calls()), 5))
            gw.killed = True
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(5)
            gw.stop()
            dev.publish(base, {"id": f"B{run}"})
            AWS.control(freeze=None)  # calls from now on go through
            if not settling:  # A's deadline passes while the gateway is down
                time.sleep(max(0.0, t0 + 1.7 - time.time()))
            gw = Gateway(TMP, conf)
            got = wait_for(lambda: len(answers(dev, base)) >= 2 and answers(dev, base), 15)
            self.assertTrue(got, gw.text()[-3000:])
            by_id = {}
            for a in got:
                by_id.setdefault(a["id"], []).append(a)
            a, b = by_id[f"A{run}"], by_id[f"B{run}"]
            self.assertEqual(len(a), 1, f"A answered more than once: {a}")
            self.assertEqual(a[0]["status"], "rejected", a)
            self.assertEqual(a[0]["code"], "Unavailable" if settling else "Expired", a)
            self.assertEqual(b[0]["status"], "accepted", b)
            execs = self.check_order(thing, a[0]["clientToken"], b[0]["clientToken"], gw.text())
            self.assertIn(f"token={a[0]['clientToken']} settled=accepted", gw.text())
            again, _ = dev.request(thing, "go", {"id": f"A{run}"})
            self.assertEqual(again["executionId"], execs[a[0]["clientToken"]])
            time.sleep(0.2)  # a second answer to A would have come with B's
            self.assertEqual(len([x for x in answers(dev, base) if x["id"] == f"A{run}"]), 2)
            return time.time() - t0
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_killed_while_a_in_flight_a_is_settled_before_b(self):
        took = [self.kill_run(run, settling=False) for run in range(RUNS)]
        print(f"  {RUNS} runs: A settled before B after a kill ({max(took):.1f} s max)",
              file=sys.stderr)

    def test_killed_while_a_settles_a_is_resumed_to_settle_only(self):
        took = [self.kill_run(run, settling=True) for run in range(RUNS)]
        print(f"  {RUNS} runs: settling resumed after a kill ({max(took):.1f} s max)",
              file=sys.stderr)


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    allowed_rc = (0,)


if __name__ == "__main__":
    harness.main()
