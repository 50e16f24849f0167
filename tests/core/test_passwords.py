"""How many password hashes may run at once: no more than the cores a container may use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ehass.core.passwords import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no limit
        ("50000 100000\n", 1),  # half a core still runs one hash at a time
        ("150000 100000\n", min(2, AFFINITY)),
        (f"{100000 * (AFFINITY + 8)} 100000\n", AFFINITY),  # a quota above the cores given
        ("garbage\n", AFFINITY),
    ],
)
def test_a_cgroup_cpu_limit_caps_concurrent_hashing(
    tmp_path: Path, cpu_max: str, expected: int
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cpus(path) == expected


def test_without_cgroup_v2_the_affinity_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "missing") == AFFINITY
