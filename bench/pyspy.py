"""Optional sampling profiles of one app process while each endpoint runs alone
(`--py-spy PATH`). py-spy is not a project dependency: install it anywhere, for example
`python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy`, and pass the binary.

The raw ("collapsed") stacks go to bench/results/<stamp>-profile-<endpoint>.txt; the
summary lists where the samples are (own time) and the project's functions that hold them
(time including callees), as shares of the samples.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path


def start(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(max(1, int(seconds))),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize(path: Path, top: int = 12) -> dict:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "own": [], "project": []}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # Idle hashing threads waiting for work are not time spent on requests.
        if frames[-1].startswith(("Condition.wait", "Queue.get")):
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if "ehass/" in f and "ehass/cli.py" not in f:
                inclusive[f] += n

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)] if total else []

    return {"samples": total, "own": share(own), "project": share(inclusive)}


def print_summary(op: str, summary: dict) -> None:
    print(f"\nprofile of app0 while {op} ran alone ({summary['samples']} samples):")
    print("  own time:")
    for f, pct in summary["own"]:
        print(f"    {pct:5.1f} %  {f}")
    print("  project functions, callees included:")
    for f, pct in summary["project"]:
        print(f"    {pct:5.1f} %  {f}")
