"""How many threads a file's check keeps busy, from the cores this process may run on.

A large local CSV file is parsed on `PARSE_THREADS` (csv_blocks.py) while its chunks are mapped and validated
on `VALIDATE_WORKERS` (validate.py); the main thread mostly waits. On 2 cores one of each is fastest: two of
each (the earlier fixed counts) oversubscribed them, and the threads' hand-offs, GIL switches and page faults
cost more than the extra thread gained (10M inventory rows, 5 paired runs, 131,072-row chunks: median 1.34 s
wall and 2.73 s CPU with 2 + 2 threads, 1.21 s and 2.50 s with 1 + 1).
"""

from __future__ import annotations

import math
import os

CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" in µs, or "max <period>"


def usable_cores(cpu_max: str = CPU_MAX) -> int:
    """The CPUs this process may run on: its affinity mask (`taskset`, cpusets), and no more than its cgroup's
    CPU quota allows (a Kubernetes CPU limit or `docker --cpus`, which the mask does not show)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # (not on Linux)
        cores = max(1, os.cpu_count() or 1)
    try:
        with open(cpu_max) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # (no cgroup v2 file, or not in that form)
        pass
    return cores


CORES = usable_cores()
PARSE_THREADS = max(1, min(2, CORES // 2))
VALIDATE_WORKERS = max(1, min(2, CORES - PARSE_THREADS))
