"""extraction_bench's sandbox CPU figure: a query worker replaced during a run (an admin POST re-forks them)
must not take its CPU seconds out of the figure when it is reaped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time

    def burn():
        end = time.process_time() + 0.6
        while time.process_time() < end:
            pass
        while not os.path.exists(sys.argv[1]):  # exit when told
            time.sleep(0.01)

    if __name__ == "__main__":
        child = multiprocessing.get_context("fork").Process(target=burn)
        child.start()
        print(child.pid, flush=True)
        child.join()  # reaped: its CPU moves to this process's cutime/cstime
        print("reaped", flush=True)
        time.sleep(60)
    """
)


def test_cpu_of_a_reaped_child_still_counts(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        from extraction_bench import process_cpu_s
    finally:
        sys.path.remove(str(BENCH))
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "go")], stdout=subprocess.PIPE, text=True
    )
    try:
        int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        while process_cpu_s(parent.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = process_cpu_s(parent.pid)  # the child is alive and has burned its CPU
        assert before >= 0.5
        (tmp_path / "go").touch()  # the child ends and is reaped
        assert parent.stdout.readline().strip() == "reaped"
        assert process_cpu_s(parent.pid) >= before - 0.02
    finally:
        parent.kill()
        parent.wait()
