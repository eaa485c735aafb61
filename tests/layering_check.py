#!/usr/bin/env python3
"""The shape of src/ holds: no circle among modules (a module is a .c and
its .h; a call needs a declaration, so includes bound the calls), no file
over 600 lines, and docs/internals.md (the maintainers' map) names every
module. Prints "N passed, N failed"."""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
MAX_LINES = 600


def module(path):
    return os.path.relpath(os.path.splitext(path)[0], SRC)


def graph():
    g = {}
    for f in glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True):
        m = module(f)
        with open(f) as fh:
            for inc in re.findall(r'#include "([^"]+)"', fh.read()):
                d = os.path.normpath(os.path.join(os.path.dirname(f), inc))
                if not os.path.exists(d):
                    d = os.path.join(SRC, inc)
                if module(d) != m:
                    g.setdefault(m, set()).add(module(d))
    return g


def cycles(g):
    state, found = {}, []

    def visit(u, stack):
        state[u] = 1
        stack.append(u)
        for v in sorted(g.get(u, ())):
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif not state.get(v):
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for u in sorted(g):
        if not state.get(u):
            visit(u, [])
    return found


def unmapped_modules():
    with open(os.path.join(ROOT, "docs", "internals.md")) as fh:
        text = fh.read()
    mods = sorted({module(f) for f in glob.glob(os.path.join(SRC, "**", "*.[ch]"),
                                                 recursive=True)})
    return [m for m in mods
            if not re.search(r"\b%s\.[ch]\b" % re.escape(os.path.basename(m)), text)]


def main():
    passed = failed = 0
    found = cycles(graph())
    for c in found:
        print("circle: " + " -> ".join(c))
    if found:
        failed += 1
    else:
        passed += 1
        print("no circle among the modules of src/")
    long = []
    for f in sorted(glob.glob(os.path.join(SRC, "**", "*.[ch]"), recursive=True)):
        with open(f) as fh:
            n = sum(1 for _ in fh)
        if n > MAX_LINES:
            long.append(f"{os.path.relpath(f, ROOT)}: {n} lines")
    for line in long:
        print("too long: " + line)
    if long:
        failed += 1
    else:
        passed += 1
        print(f"no file in src/ over {MAX_LINES} lines")
    unnamed = unmapped_modules()
    for m in unnamed:
        print(f"docs/internals.md does not name src/{m}.c or src/{m}.h")
    if unnamed:
        failed += 1
    else:
        passed += 1
        print("docs/internals.md names every module of src/")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
