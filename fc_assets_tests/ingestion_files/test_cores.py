"""Thread counts from the CPUs the process may use: the affinity mask and the cgroup's CPU quota."""

from __future__ import annotations

import os

import pytest

from fc_assets.ingestion.read.cores import usable_cores


@pytest.mark.parametrize(
    "cpu_max, limit",
    [
        ("max 100000\n", None),  # no quota: the mask
        ("100000 100000\n", 1),  # `--cpus 1` / a Kubernetes limit of 1
        ("150000 100000\n", 2),  # 1.5 CPUs: both may run at once
        ("50000 100000\n", 1),  # half a CPU: still one thread
        ("garbage\n", None),
        (None, None),  # no cgroup v2 file
    ],
)
def test_cores_follow_the_cgroup_quota_under_the_affinity_mask(tmp_path, cpu_max, limit):
    mask = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    expected = mask if limit is None else min(mask, limit)
    assert usable_cores(str(path)) == expected
