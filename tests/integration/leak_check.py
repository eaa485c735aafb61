"""Run the gateway under valgrind and push N requests through it (accepted,
invalid, AWS errors, throttled-then-accepted), wait for every reply, stop it
with SIGTERM and require exit 0 with no memory error and no leak.

usage: leak_check.py PATH_TO_CMDGATE N
"""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Device, FakeAws, Gateway, Mosquitto, config  # noqa


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    os.environ["CMDGATE"] = binary
    import harness
    harness.CMDGATE = binary
    tmp = tempfile.mkdtemp(prefix="cmdgate-leak-")
    vlog = os.path.join(tmp, "valgrind.log")
    os.environ["CMDGATE_WRAPPER"] = (
        f"valgrind --leak-check=full --show-leak-kinds=definite,indirect "
        f"--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file={vlog}")
    broker = Mosquitto(tmp)
    aws = FakeAws(tmp)
    passed = failed = 0
    try:
        aws.control(rules=[{"thing": "bad-aws", "status": 400, "code": "ValidationException"},
                           {"thing": "throttled", "status": 429, "code": "ThrottlingException",
                            "times": n // 50}])
        conf = config(broker.port, aws.url, gateway_extra="deadline_ms = 120000;", level="info")
        gw = Gateway(tmp, conf)
        dev = Device(broker.port)
        kinds = ["ok"] * 7 + ["invalid", "bad-aws", "throttled"]
        start = time.time()
        for i in range(n):
            k = kinds[i % len(kinds)]
            thing = {"ok": f"dev-{i % 50}", "invalid": "dev-x"}.get(k, k)
            payload = {"id": i, "parameters": {"n": i}} if k != "invalid" else {"id": i, "zz": 1}
            dev.publish(f"commands/{thing}/c1/start", payload)
        got = dev.wait_reply("commands/", n + n, timeout=300)  # requests + replies
        replies = [json.loads(m.payload) for m in got if m.topic.endswith(("/accepted", "/rejected"))]
        elapsed = time.time() - start
        dev.close()
        rc = gw.stop(timeout=120)
        codes = {}
        for r in replies:
            codes[r.get("code", "accepted")] = codes.get(r.get("code", "accepted"), 0) + 1
        print(f"{len(replies)} replies in {elapsed:.1f}s under valgrind: {codes}")
        ok_count = len(replies) == n and len({r["id"] for r in replies}) == n
        with open(vlog) as f:
            report = f.read()
        summary = re.findall(r"(in use at exit|total heap usage|definitely lost|indirectly lost|ERROR SUMMARY): ([^\n]+)", report)
        print("valgrind:", ", ".join(f"{k} {v}" for k, v in summary))
        clean = (rc == 0 and "definitely lost" not in report.replace("definitely lost: 0 bytes", "")
                 and re.search(r"ERROR SUMMARY: 0 errors", report) is not None)
        for name, ok in (("every request answered exactly once", ok_count),
                         ("valgrind clean and exit 0", clean)):
            print(("PASS " if ok else "FAIL ") + name)
            passed += ok
            failed += not ok
        if not clean:
            print(report[-6000:])
    finally:
        aws.stop()
        broker.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
