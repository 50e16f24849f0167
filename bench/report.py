"""Results: per-endpoint statistics, process CPU and memory, the printed table, the JSON
file and the latency plot."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

# Targets of issues 5 and 19: latency per endpoint except login, at this rate of the mix.
SLO_P95_MS = 25.0
SLO_P99_MS = 60.0
MIX_RATE_TARGET = 800.0
RSS_TARGET_MB = 150.0
# RSS (MiB) that grows by more than this between two load phases is flagged.
GROWTH_FLAG_MB = 5.0


def percentile(sorted_vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(q / 100 * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[k]


# --------------------------------------------------------------------------- processes
def proc_sample(pid: int) -> dict:
    """CPU ticks (utime+stime) and RSS of pid and its children, from /proc."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks, rss_kb = 0, 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
        except OSError:
            pass
    return {"ticks": ticks, "rss_kb": rss_kb, "t": time.monotonic()}


def heap_rss_mb(pid: int) -> float | None:
    """RSS of the process's malloc heap (the `[heap]` mapping): where argon2id's 19 MiB
    blocks land when they are not given back, as opposed to Python's own arenas."""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return None
    in_heap = False
    for line in lines:
        if line[:1].isalnum() and "-" in line.split(" ", 1)[0] and not line.endswith(":"):
            in_heap = line.endswith("[heap]")
        elif in_heap and line.startswith("Rss:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def machine_sample() -> dict:
    """Busy and total CPU ticks of the whole machine (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return {"busy": sum(fields[:8]) - idle, "t": time.monotonic()}


def machine_usage(before: dict, after: dict, procs: dict[str, dict], generator_pct: float) -> dict:
    """CPU of the whole machine over a phase, in % of one core (200 % = both cores of two),
    and what is left once the bench's own processes are taken out: other people's work,
    which the bench shares the cores with."""
    hz = os.sysconf("SC_CLK_TCK")
    busy = 100 * (after["busy"] - before["busy"]) / hz / max(after["t"] - before["t"], 1e-9)
    ours = sum(p["cpu_pct"] for p in procs.values()) + generator_pct
    return {
        "cores": os.cpu_count(),
        "busy_pct": round(busy, 1),
        "others_pct": round(max(0.0, busy - ours), 1),
    }


def proc_usage(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict]:
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, b in before.items():
        a = after[name]
        cpu_s = (a["ticks"] - b["ticks"]) / hz
        out[name] = {
            "cpu_seconds": round(cpu_s, 2),
            "cpu_pct": round(100 * cpu_s / max(a["t"] - b["t"], 1e-9), 1),
            "rss_mb_before": round(b["rss_kb"] / 1024, 1),
            "rss_mb_after": round(a["rss_kb"] / 1024, 1),
        }
    return out


# --------------------------------------------------------------------------- latency
def _stats(rows: list[tuple[int, float]], duration: float, wall: float) -> dict:
    lats = sorted(lat for _, lat in rows)
    codes: dict[str, int] = {}
    for s, _ in rows:
        codes[str(s)] = codes.get(str(s), 0) + 1
    n = len(rows)
    ok = sum(1 for s, _ in rows if 200 <= s < 300)
    c409 = codes.get("409", 0)
    other = n - ok - c409

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "requests": n,
        "rps_offered": round(n / duration, 1),
        # answers received (any HTTP status) per second of wall time, drain included
        "rps_achieved": round(sum(1 for s, _ in rows if s > 0) / wall, 1),
        "ok": ok,
        "conflict_409": c409,
        "errors_other": other,
        "error_rate": round(other / n, 4) if n else 0.0,
        "status_5xx": sum(1 for s, _ in rows if s >= 500),
        "transport_errors": codes.get("0", 0),
        "dropped": codes.get("-1", 0),
        "p50_ms": ms(percentile(lats, 50)),
        "p95_ms": ms(percentile(lats, 95)),
        "p99_ms": ms(percentile(lats, 99)),
        "max_ms": ms(lats[-1] if lats else None),
        "status_codes": codes,
    }


def summarize(runs: list[dict], duration: float) -> dict:
    by_op: dict[str, list[tuple[int, float]]] = {}
    for run in runs:
        for op, status, _, lat in run["results"]:
            by_op.setdefault(op, []).append((status, lat))
    wall = max(r["t_total"] for r in runs)
    out = {op: _stats(rows, duration, wall) for op, rows in sorted(by_op.items())}
    out["ALL"] = _stats([row for rows in by_op.values() for row in rows], duration, wall)
    out["ALL"]["wall_s"] = round(wall, 2)
    return out


def slo_misses(summary: dict) -> list[str]:
    misses = []
    for op, s in summary.items():
        if op in ("ALL", "login") or s["p95_ms"] is None:
            continue
        if s["p95_ms"] > SLO_P95_MS or s["p99_ms"] > SLO_P99_MS:
            misses.append(f"{op} (p95 {s['p95_ms']} ms, p99 {s['p99_ms']} ms)")
    return misses


def memory_check(
    phase_procs: list[dict[str, dict]], apps: list[str], heaps: dict[str, list] | None = None
) -> dict:
    """RSS of each app after every phase; growth from the first phase's end to the last's."""
    out: dict[str, dict] = {}
    for name in apps:
        after = [p[name]["rss_mb_after"] for p in phase_procs]
        growth = round(after[-1] - after[0], 1) if len(after) > 1 else None
        out[name] = {
            "rss_mb_after_each_phase": after,
            "growth_mb": growth,
            "grew": growth is not None and growth > GROWTH_FLAG_MB,
            "over_target": after[-1] > RSS_TARGET_MB,
            "malloc_heap_mb_after_each_phase": (heaps or {}).get(name),
        }
    return out


# --------------------------------------------------------------------------- printing
def print_table(summary: dict, procs: dict) -> None:
    cols = [
        "endpoint",
        "req",
        "offer/s",
        "got/s",
        "ok",
        "409",
        "err%",
        "5xx",
        "p50ms",
        "p95ms",
        "p99ms",
        "maxms",
    ]
    print("\n" + "  ".join(f"{c:>8}" if i else f"{c:<18}" for i, c in enumerate(cols)))
    for op, s in summary.items():
        vals = [
            s["requests"],
            s["rps_offered"],
            s["rps_achieved"],
            s["ok"],
            s["conflict_409"],
            round(100 * s["error_rate"], 2),
            s["status_5xx"],
            s["p50_ms"],
            s["p95_ms"],
            s["p99_ms"],
            s["max_ms"],
        ]
        print(f"{op:<18}  " + "  ".join(f"{v!s:>8}" for v in vals))
    print("\nprocesses (CPU % of one core over the load window, RSS before -> after):")
    for name, p in procs.items():
        print(
            f"  {name:<10} cpu {p['cpu_pct']:6.1f} %  "
            f"rss {p['rss_mb_before']:7.1f} -> {p['rss_mb_after']:7.1f} MiB"
        )


def print_ceilings(ceilings: dict) -> None:
    print("\nceilings (closed loop, same deployment, same run):")
    for name, c in ceilings.items():
        if name == "ratios":
            continue
        cpu = ""
        if "app_cpu_ms_per_request" in c:
            cpu = f"  app {c['app_cpu_ms_per_request']} ms  db {c.get('db_cpu_ms_per_request')} ms"
        codes = f"  {c['status_codes']}" if "status_codes" in c else ""
        print(
            f"  {name:<28} {c.get('ok_rps', c.get('rps'))!s:>8} /s  "
            f"p50 {c.get('p50_ms', '-')} ms  p99 {c.get('p99_ms', '-')} ms{cpu}{codes}"
        )
    for name, r in ceilings.get("ratios", {}).items():
        print(f"  ratio {name:<26} {r['ratio']:.1%}  (target >= {r['target']:.0%})")


def target_checks(result: dict) -> list[dict]:
    """Issue 19's targets, each with what this run measured and whether it was met (None:
    this run cannot tell, e.g. growth with one phase or no ceilings)."""
    phases = result["phases"]
    rate = result["args"]["rate"]
    answered = min(p["endpoints"]["ALL"]["rps_achieved"] for p in phases)
    misses = [
        f"phase {n}: {miss}" for n, p in enumerate(phases, 1) for miss in slo_misses(p["endpoints"])
    ]
    n5xx = sum(p["endpoints"]["ALL"]["status_5xx"] for p in phases)
    memory = result["memory"]
    top_rss = max((m["rss_mb_after_each_phase"][-1] for m in memory.values()), default=0.0)
    growths = [m["growth_mb"] for m in memory.values()]
    out = [
        {
            "target": f"the mix at {MIX_RATE_TARGET:g} req/s",
            "measured": f"{rate:g} offered, {answered} answered",
            "met": rate >= MIX_RATE_TARGET and answered >= 0.99 * rate,
        },
        {
            "target": f"p95 <= {SLO_P95_MS:g} ms, p99 <= {SLO_P99_MS:g} ms (all but login)",
            "measured": "; ".join(misses) or "every endpoint, every phase",
            "met": not misses,
        },
        {"target": "no 5xx", "measured": f"{n5xx} 5xx", "met": n5xx == 0},
        {
            "target": f"RSS per app process < {RSS_TARGET_MB:g} MiB",
            "measured": f"at most {top_rss} MiB",
            "met": top_rss < RSS_TARGET_MB,
        },
        {
            "target": f"RSS flat across phases (growth <= {GROWTH_FLAG_MB:g} MiB)",
            "measured": (
                "one phase" if None in growths else f"growth {', '.join(map(str, growths))} MiB"
            ),
            "met": None if None in growths else not any(m["grew"] for m in memory.values()),
        },
    ]
    for name, r in (result.get("ceilings") or {}).get("ratios", {}).items():
        out.append(
            {
                "target": f"{name} >= {r['target']:.0%} of its ceiling",
                "measured": f"{r['ratio']:.1%} ({r['project']} / {r['ceiling']} per s)",
                "met": r["ratio"] >= r["target"],
            }
        )
    return out


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[met]


def print_targets(checks: list[dict]) -> None:
    print("\ntargets (issue 19):")
    for c in checks:
        print(f"  {_verdict(c['met']):<8} {c['target']:<52} {c['measured']}")


def print_costs(costs: dict) -> None:
    print("\nendpoint alone (closed loop): req/s, and CPU per request in the apps and MariaDB:")
    for op, c in costs.items():
        if op == "mix":
            continue
        print(
            f"  {op:<18} {c['rps']:>8} /s  p50 {c['p50_ms']:>7} ms  "
            f"app {c['app_cpu_ms_per_request']:>6} ms  db {c['db_cpu_ms_per_request']:>5} ms  "
            f"{c['status_codes']}"
        )
    m = costs["mix"]
    print(
        f"  weighted mix: app {m['app_cpu_ms_per_request']} ms + db "
        f"{m['db_cpu_ms_per_request']} ms CPU per request -> at most "
        f"{m['max_rps_on_all_cores']} req/s with every core on the apps and MariaDB"
    )


# --------------------------------------------------------------------------- files
def write_json(result: dict, out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def plot(phases: list[dict], summary: dict, path: Path, title: str) -> None:
    """Left: p50/p95/p99 per endpoint against the targets. Right: p99 and achieved rate per
    second over the load, every phase one after the other."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; PNG only
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    ops = [op for op in summary if op != "ALL"] + ["ALL"]
    x = range(len(ops))
    for k, (q, color) in enumerate(
        (("p50_ms", "#4c72b0"), ("p95_ms", "#dd8452"), ("p99_ms", "#c44e52"))
    ):
        left.bar(
            [i + (k - 1) * 0.27 for i in x],
            [summary[o][q] or 0 for o in ops],
            width=0.27,
            label=q.removesuffix("_ms"),
            color=color,
        )
    left.axhline(SLO_P95_MS, color="#dd8452", ls="--", lw=1, label="p95 target")
    left.axhline(SLO_P99_MS, color="#c44e52", ls="--", lw=1, label="p99 target")
    left.set_xticks(list(x), ops, rotation=30, ha="right")
    left.set_yscale("log")
    left.set_ylabel("latency from planned send (ms)")
    left.set_title("per endpoint (last phase)")
    left.legend(fontsize=8)

    rate = right.twinx()
    offset = 0.0
    for n, phase in enumerate(phases):
        planned: dict[int, list[float]] = {}  # latency by the second the request was due
        answered: dict[int, int] = {}  # answers by the second they came back
        for run in phase["runs"]:
            for _, status, at, lat in run["results"]:
                planned.setdefault(int(at), []).append(lat)
                if status > 0:
                    answered[int(at + lat)] = answered.get(int(at + lat), 0) + 1
        secs = sorted(planned)
        right.plot(
            [offset + s for s in secs],
            [1000 * percentile(sorted(planned[s]), 99) for s in secs],
            color="#c44e52",
            label="p99 of the requests due that second" if n == 0 else None,
        )
        done = sorted(answered)
        rate.plot(
            [offset + s for s in done],
            [answered[s] for s in done],
            color="#999999",
            lw=0.8,
        )
        if n:
            right.axvline(offset, color="black", lw=0.5, ls=":")
        offset += max(phase["duration"], max(done, default=0) + 1)
    right.set_yscale("log")
    right.set_xlabel("seconds of load (phases back to back)")
    right.set_ylabel("p99 latency (ms)")
    rate.set_ylabel("answers per second (grey)")
    right.set_title("over time")
    right.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown
def markdown(result: dict) -> str:
    """The README's summary of a result file: `python bench/report.py FILE.json`."""
    lines = [f"`{result['command']}` ({result['timestamp']}, {result['cpus']} CPUs)", ""]
    for n, phase in enumerate(result["phases"], 1):
        m = phase.get("machine", {})
        lines += [
            f"Phase {n}: machine CPU {m.get('busy_pct')} % of {100 * (m.get('cores') or 0)} %, "
            f"other people's work {m.get('others_pct')} %; generator "
            f"{sum(phase['generator_cpu_pct'])} %; apps "
            + ", ".join(
                f"{k} {v['cpu_pct']} %"
                for k, v in phase["processes"].items()
                if k.startswith("app")
            ),
            "",
            "| endpoint | req | req/s answered | 409 | errors | 5xx "
            "| p50 ms | p95 ms | p99 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for op, s in phase["endpoints"].items():
            lines.append(
                f"| {op} | {s['requests']} | {s['rps_achieved']} | {s['conflict_409']} | "
                f"{s['errors_other']} | {s['status_5xx']} | {s['p50_ms']} | {s['p95_ms']} | "
                f"{s['p99_ms']} | {s['max_ms']} |"
            )
        lines.append("")
    costs = result.get("endpoint_costs") or {}
    if costs:
        lines += [
            "Each endpoint alone, closed loop (32 in flight):",
            "",
            "| endpoint | req/s | p50 ms | app CPU ms/req | MariaDB CPU ms/req |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for op, c in costs.items():
            if op != "mix":
                lines.append(
                    f"| {op} | {c['rps']} | {c['p50_ms']} | {c['app_cpu_ms_per_request']} | "
                    f"{c['db_cpu_ms_per_request']} |"
                )
        mix = costs["mix"]
        lines += [
            f"| **weighted mix** | **<= {mix['max_rps_on_all_cores']}** on all cores | | "
            f"**{mix['app_cpu_ms_per_request']}** | **{mix['db_cpu_ms_per_request']}** |",
            "",
        ]
    ceilings = result.get("ceilings") or {}
    if ceilings:
        lines += [
            "| ratio | project /s | ceiling /s | ratio | target |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, r in ceilings["ratios"].items():
            lines.append(
                f"| {name} | {r['project']} | {r['ceiling']} | {r['ratio']:.1%} | "
                f">= {r['target']:.0%} |"
            )
        lines.append("")
    checks = result.get("targets") or []
    if checks:
        lines += ["| target | measured | |", "| --- | --- | --- |"]
        lines += [f"| {c['target']} | {c['measured']} | {_verdict(c['met'])} |" for c in checks]
        lines.append("")
    lines += [
        "| app | RSS after each phase (MiB) | growth | malloc heap (MiB) |",
        "| --- | --- | ---: | --- |",
    ]
    for name, m in result["memory"].items():
        lines.append(
            f"| {name} | {m['rss_mb_after_each_phase']} | {m['growth_mb']} | "
            f"{m.get('malloc_heap_mb_after_each_phase')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
