#!/usr/bin/env python3
"""The suite's parallel runner: runs the steps of a plan (written by
scripts/test.sh) at once up to a bound, each step after the steps it needs,
longest first, and counts what each proves the way test.sh always has.

A step's output is kept whole in build/test-logs/NAME.log (never interleaved
with another's); the console gets one line per finished step (its count and
time) and, for a failed step, the tail of its log. The last line is the
total "N passed, N failed"; the exit status is 0 only if nothing failed.

Counting fails closed: a step that prints no count ("N passed, N failed" or
cmocka's "[  PASSED  ] N test(s).") or counts nothing fails; a non-zero exit
with no failure counted is one failure; a step whose prerequisite failed is
not run and counts one failure. Build steps (kind "build") count nothing
when they succeed and one failure when they do not.

Plan file: one step a line, fields separated by tabs:
    NAME  AFTER(comma list or -)  TIMEOUT_S  WEIGHT  ESTIMATE_S  KIND  COMMAND
COMMAND is run by bash -c in the repository's root. WEIGHT is the CPU the
step keeps busy, in half cores: a compiler, a fuzzer, qemu or valgrind 2;
an integration module 0, because it waits on sockets and timers nearly all
of its time (the report's CPU column shows it: test_follow uses under 2 s of
CPU in 97 s). Two bounds hold at every moment: the weights of the running
steps add up to at most twice the cores, and at most CMDGATE_TEST_JOBS steps
run (default: four per core). test.sh starts the computing steps under
nice, so a module waiting on a timer is never late because a fuzzer holds
the core. ESTIMATE_S orders the ready steps (longest chain first) when
build/test-logs/times.json has no measured time from an earlier run.

CMDGATE_TEST_ONLY=REGEX runs only the steps whose name it matches (with
the steps they need), e.g. "^test_" for the plain integration modules.

Also: `ptest.py --modules PASS` lists the integration modules of a pass
(plain, asan, tsan): every tests/integration/test_*.py, less those whose
line `PASSES = "..."` does not name the pass.
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGS = os.path.join(ROOT, "build", "test-logs")
TIMES = os.path.join(LOGS, "times.json")
TAIL = 40
COUNT = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
CM_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)\.", re.M)
CM_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test\(s\), listed below:", re.M)
PASSES_LINE = re.compile(r"^PASSES\s*=\s*[\"']([^\"']*)[\"']", re.M)


def modules(which):
    """The integration modules that run in pass WHICH, by name, sorted."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "integration", "test_*.py"))):
        with open(path, errors="replace") as f:
            m = PASSES_LINE.search(f.read())
        passes = m.group(1).split() if m else ["plain", "asan", "tsan"]
        if which in passes:
            out.append(os.path.splitext(os.path.basename(path))[0])
    return out


def count(out, rc, kind):
    """(passed, failed) as test.sh has always counted a step's output."""
    if kind == "build":
        return (0, 0) if rc == 0 else (0, 1)
    p = sum(int(n) for n in CM_PASSED.findall(out))
    f = sum(int(n) for n in CM_FAILED.findall(out))
    lines = COUNT.findall(out)
    if lines:
        p += int(lines[-1][0])
        f += int(lines[-1][1])
    if rc != 0 and f == 0:
        f = 1
    if p == 0 and f == 0:
        f = 1  # proved nothing: no summary line, or no test run
    return p, f


class Step:
    def __init__(self, line):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 7:
            raise ValueError(f"plan line with {len(fields)} fields: {line!r}")
        self.name, after, timeout, weight, est, self.kind, self.cmd = fields
        self.after = [] if after in ("", "-") else after.split(",")
        self.timeout = float(timeout)
        self.weight = int(weight)
        self.est = float(est)
        self.proc = None
        self.start = None
        self.done = False
        self.result = None  # (passed, failed, rc, seconds)
        self.cpu = 0.0  # CPU seconds of the step and what it waited for
        self.path = None
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.name).strip("_")
        self.logpath = os.path.join(LOGS, slug + ".log")


def load_times():
    try:
        with open(TIMES) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def tail(path, n=TAIL):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def fmt(s):
    return f"{int(s // 60)}:{s % 60:04.1f}"


class Runner:
    def __init__(self, steps, bound, jobs):
        self.steps = steps
        self.jobs = jobs
        self.byname = {s.name: s for s in steps}
        for s in steps:
            for a in s.after:
                if a not in self.byname:
                    raise ValueError(f"{s.name}: needs unknown step {a!r}")
        self.bound = bound
        self.times = load_times()
        self.t0 = time.monotonic()

    def est(self, s):
        return self.times.get(s.name, s.est)

    def path(self, s):
        """Seconds from s's start to the end of the longest chain after it."""
        if s.path is None:
            later = [self.path(t) for t in self.steps if s.name in t.after]
            s.path = self.est(s) + max(later, default=0.0)
        return s.path

    def ready(self):
        """Steps not started whose prerequisites all ended, the longest
        chain first (a build many steps wait for goes before a module)."""
        out = []
        for s in self.steps:
            if s.start is not None or s.done:
                continue
            pre = [self.byname[a] for a in s.after]
            if all(p.done for p in pre):
                out.append(s)
        return sorted(out, key=lambda s: -self.path(s))

    def running(self):
        return [s for s in self.steps if s.proc is not None and not s.done]

    def launch(self, s):
        failed_pre = [a for a in s.after if self.byname[a].result[1] > 0]
        if failed_pre:
            s.start = time.monotonic()
            with open(s.logpath, "w") as f:
                f.write(f"not run: {', '.join(failed_pre)} failed\n")
            self.finish(s, 1, skipped=True)
            return
        s.log = open(s.logpath, "w")
        s.start = time.monotonic()
        # own process group: a timeout ends the step and everything it started
        s.proc = subprocess.Popen(["bash", "-c", s.cmd], cwd=ROOT, stdout=s.log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def reap(self, s):
        """s's exit status once it ended (None before), keeping the CPU
        time it and the children it waited for used."""
        pid, status, ru = os.wait4(s.proc.pid, os.WNOHANG)
        if pid == 0:
            return None
        s.proc.returncode = os.waitstatus_to_exitcode(status)
        s.cpu = ru.ru_utime + ru.ru_stime
        return s.proc.returncode

    def kill(self, s):
        try:
            os.killpg(s.proc.pid, signal.SIGTERM)
            s.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(s.proc.pid, signal.SIGKILL)
            s.proc.wait()
        except ProcessLookupError:
            pass

    def finish(self, s, rc, skipped=False, timed_out=False):
        secs = time.monotonic() - s.start
        if s.proc is not None:
            s.log.close()
        with open(s.logpath, errors="replace") as f:
            out = f.read()
        if timed_out:
            out += f"\n--- timed out after {s.timeout:.0f} s\n"
            with open(s.logpath, "a") as f:
                f.write(f"\n--- timed out after {s.timeout:.0f} s\n")
        p, f_ = (0, 1) if skipped else count(out, rc, s.kind)
        s.result = (p, f_, rc, secs)
        s.done = True
        if not skipped and f_ == 0:
            self.times[s.name] = round(secs, 1)
        mark = "ok  " if f_ == 0 else "FAIL"
        what = "built" if s.kind == "build" and f_ == 0 else f"{p} passed, {f_} failed"
        note = " (timed out)" if timed_out else (" (not run)" if skipped else "")
        print(f"{mark} {s.name}: {what}, {fmt(secs)}{note}  [at {fmt(time.monotonic() - self.t0)}]",
              flush=True)
        if f_:
            print(f"---- tail of {os.path.relpath(s.logpath, ROOT)} (rc={rc})")
            print(tail(s.logpath).rstrip("\n"))
            print("----", flush=True)

    def start_ready(self):
        """Start what is ready, longest chain first, within both bounds. A
        computing step that waits for CPU room is not overtaken by a
        lighter computing step (a step heavier than the bound runs alone);
        a waiting step (weight 0) needs only a place."""
        running = self.running()
        load = sum(s.weight for s in running)
        places = self.jobs - len(running)
        cpu_blocked = False
        for s in self.ready():
            if any(self.byname[a].result[1] for a in s.after):
                self.launch(s)  # not run: ends at once, takes no room
                continue
            if places <= 0:
                break
            if s.weight:
                if cpu_blocked or (load and load + s.weight > self.bound):
                    cpu_blocked = True
                    continue
                load += s.weight
            self.launch(s)
            places -= 1

    def run(self):
        while not all(s.done for s in self.steps):
            for s in self.running():
                rc = self.reap(s)
                if rc is not None:
                    self.finish(s, rc)
                elif time.monotonic() - s.start > s.timeout:
                    self.kill(s)
                    self.finish(s, s.proc.returncode, timed_out=True)
            self.start_ready()
            time.sleep(0.1)
        with open(TIMES, "w") as f:
            json.dump(self.times, f, indent=1, sort_keys=True)
        return self.report()

    def report(self):
        wall = time.monotonic() - self.t0
        print("\nstep times (s): wall, CPU")
        for s in sorted(self.steps, key=lambda s: -s.result[3]):
            p, f_, rc, secs = s.result
            print(f"  {secs:7.1f} {s.cpu:7.1f}  {s.name}: {p} passed, {f_} failed")
        busy = sum(s.result[3] for s in self.steps)
        cpu = sum(s.cpu for s in self.steps)
        print(f"wall {fmt(wall)} for {fmt(busy)} of steps ({fmt(cpu)} of CPU), "
              f"{self.jobs} steps at once, CPU bound {self.bound} half cores")
        passed = sum(s.result[0] for s in self.steps)
        failed = sum(s.result[1] for s in self.steps)
        print(f"\n{passed} passed, {failed} failed", flush=True)
        return 0 if failed == 0 else 1


def main(argv):
    if len(argv) == 3 and argv[1] == "--modules":
        print("\n".join(modules(argv[2])))
        return 0
    if len(argv) != 2:
        print("usage: ptest.py PLAN | ptest.py --modules plain|asan|tsan", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        steps = [Step(line) for line in f if line.strip() and not line.startswith("#")]
    only = os.environ.get("CMDGATE_TEST_ONLY")
    if only:
        byname = {s.name: s for s in steps}
        keep = {s.name for s in steps if re.search(only, s.name)}
        todo = list(keep)
        while todo:
            for a in byname[todo.pop()].after:
                if a in byname and a not in keep:
                    keep.add(a)
                    todo.append(a)
        steps = [s for s in steps if s.name in keep]
    names = [s.name for s in steps]
    dup = {n for n in names if names.count(n) > 1}
    if dup or not steps:
        print(f"plan: duplicate step names {sorted(dup)} or no step", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    os.makedirs(LOGS, exist_ok=True)
    cores = os.cpu_count() or 1
    jobs = int(os.environ.get("CMDGATE_TEST_JOBS", "0") or 0) or 4 * cores
    runner = Runner(steps, 2 * cores, jobs)

    def stop(signum, frame):
        for s in runner.running():
            runner.kill(s)
        print("\ninterrupted\n0 passed, 1 failed", flush=True)
        sys.exit(1)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
