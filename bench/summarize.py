"""Medians over runs, gateway/null ratios, and the issue 5 targets."""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
startup = next(r["startup_ready_ms"] for r in rows if "startup_ready_ms" in r)
loads = [r for r in rows if "target" in r and "repeat" not in r]
repeats = [r for r in rows if "repeat" in r]


def med(target, c, key):
    return statistics.median(r[key] for r in loads if r["target"] == target and r["outstanding"] == c)


summary = {}
for c in (1, 64, 256):
    for t in ("null", "gateway"):
        summary[f"{t}@{c}"] = {k: med(t, c, k) for k in
                               ("rps", "p50_ms", "p99_ms", "max_ms", "cpu_s_per_10k", "private_kib",
                                "rss_kib")}
gw_idle_priv = statistics.median(r["idle_private_kib"] for r in loads if r["target"] == "gateway")
gw_idle_rss = statistics.median(r["idle_rss_kib"] for r in loads if r["target"] == "gateway")
after = [r["private_kib"] for r in loads if r["target"] == "gateway" and r["outstanding"] == 256]
growth = []
for run in sorted({r["run"] for r in repeats}):
    first = next(r["private_kib"] for r in loads if r["run"] == run and r["target"] == "gateway"
                 and r["outstanding"] == 256)
    last = [r["private_kib"] for r in repeats if r["run"] == run][-1]
    growth.append(last - first)
checks = {
    "throughput@64 >= 50% of null": summary["gateway@64"]["rps"] >= 0.5 * summary["null@64"]["rps"],
    "p50@1 <= null + 0.5 ms": summary["gateway@1"]["p50_ms"] <= summary["null@1"]["p50_ms"] + 0.5,
    "p99@1 <= null + 2 ms": summary["gateway@1"]["p99_ms"] <= summary["null@1"]["p99_ms"] + 2,
    "private idle <= 4 MiB": gw_idle_priv <= 4096,
    "private after 20k@256 <= 12 MiB": max(after) <= 12 * 1024,
    "no growth over 3 x 20k@256 in one process (<= 512 KiB)": max(growth) <= 512,
    "ready <= 100 ms (median of 10 launches)": startup["median"] <= 100,
    "ready <= 100 ms (every launch)": startup["max"] <= 100,
}
print(json.dumps({"medians": summary,
                  "ratios": {"rps@64": round(summary["gateway@64"]["rps"] / summary["null@64"]["rps"], 3),
                             "rps@256": round(summary["gateway@256"]["rps"] / summary["null@256"]["rps"], 3),
                             "p50@1_delta_ms": round(summary["gateway@1"]["p50_ms"] - summary["null@1"]["p50_ms"], 3),
                             "p99@1_delta_ms": round(summary["gateway@1"]["p99_ms"] - summary["null@1"]["p99_ms"], 3)},
                  "gateway_idle": {"private_kib": gw_idle_priv, "rss_kib": gw_idle_rss},
                  "gateway_private_after_256_kib_per_run": after,
                  "gateway_private_growth_kib_per_run": growth,
                  "startup_ready_ms": startup}, indent=1))
for name, ok in checks.items():
    print(("PASS " if ok else "MISS ") + name)
