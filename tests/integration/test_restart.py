"""A restart loses nothing (issue 9): requests published while the gateway
is down -- after a planned stop (SIGTERM) or a kill -9 -- wait in the
broker's session and are answered once it is back, with MQTT 5 and 3.1.1.

Each case: 3 requests while stopped, answered within 20 s of the restart."""
import json
import os
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Device, FakeAws, Gateway, Mosquitto, config, wait_for  # noqa

# scripts/ptest.py --modules: the passes this module runs in (as in the suite before the parallel runner)
PASSES = "plain"

TMP = BROKER = AWS = None


setUpModule, tearDownModule = harness.module_world(globals(), "cmdgate-restart-")


def answers(dev, base):
    return [m for m in dev.replies(base) if m.topic.endswith(("/accepted", "/rejected"))]


class RestartKeepsSession(unittest.TestCase):
    def restart(self, version, how):
        cid = f"gw-restart-{version}-{how}-{time.time_ns()}"
        conf = config(BROKER.port, AWS.url,
                      mqtt_extra=f'client_id = "{cid}"; version = {version};')
        gw = Gateway(TMP, conf)
        dev = Device(BROKER.port, version=version)
        try:
            r, _ = dev.request(f"rs-{how}", "before", {"id": "before"})
            self.assertEqual(r["status"], "accepted")
            if how == "term":
                gw.signal(signal.SIGTERM)
                self.assertEqual(gw.proc.wait(15), 0)
                self.assertNotIn("unsubscribed", gw.text())
            else:
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(5)
            gw.stop()
            base = f"commands/rs-{how}-{version}"
            for i in range(3):
                dev.publish(f"{base}/c{i}/start", {"id": f"down-{i}"}, qos=1)
            time.sleep(0.3)
            self.assertEqual(answers(dev, base), [], "answered while the gateway was down?")
            t0 = time.time()
            gw = Gateway(TMP, conf)
            got = wait_for(lambda: len(answers(dev, base)) >= 3 and answers(dev, base), 20)
            self.assertTrue(got, f"not answered after the restart:\n{gw.text()[-3000:]}")
            took = time.time() - t0
            ids = sorted(json.loads(m.payload)["id"] for m in got)
            self.assertEqual(ids, ["down-0", "down-1", "down-2"])
            for m in got:
                self.assertEqual(json.loads(m.payload)["status"], "accepted")
            self.assertIn("session resumed", gw.text())
            print(f"  MQTT {version}, {how}: 3 answered {took:.2f}s after the restart",
                  file=sys.stderr)
        finally:
            dev.close()
            self.assertEqual(gw.stop(), 0)

    def test_mqtt5_sigterm_then_start(self):
        self.restart(5, "term")

    def test_mqtt5_kill9_then_start(self):
        self.restart(5, "kill")

    def test_mqtt311_sigterm_then_start(self):
        self.restart(4, "term")

    def test_mqtt311_kill9_then_start(self):
        self.restart(4, "kill")


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    allowed_rc = (0, -9)


if __name__ == "__main__":
    harness.main()
