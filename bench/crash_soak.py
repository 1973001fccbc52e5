"""Crash soak (issue 14): runs killed with SIGKILL at random moments, then re-executed, at least 50 times,
across extraction and the three ingestion senders; prints every kill and its outcome, then the totals.

    python bench/crash_soak.py                 # 60 kills of a running child (seed 14), ~5 minutes
    python bench/crash_soak.py --kills 200 --seed 7

Servers as in the tests, on free loopback ports: the Fluent sandbox over HTTP, moto's S3 (inbox and an S3
lake), the SFTP server, and a Dagster instance (SQLite) for the extraction runs.

- Ingestion (inventory via the Batch API, products via the Event API, locations via GraphQL): each file is
  run by one or two children in turn (crash_harness.py: forked from a warmed forkserver), each SIGKILLed
  after a random delay, then re-executed to the end; the checks of crash_scenarios.py — no loss, no double
  count (upserts: final state right, duplicates no more than reported), no partial object in the lake,
  ledger / state / send logs agree, the file archived once and no new run requested.
- Extraction: a materialization of `orders` over a random range of 1–5 days is SIGKILLed after a random
  delay, then materialized again; every day's object must hold exactly the ids the sandbox reports for
  that day, and no object in the lake may be partial.

A kill that lands after the child finished is reported "not reached"; the soak goes on until `--kills`
kills have hit a running child, and its totals say how many kill points it ran and how many hit. Exit
status 1 if any outcome is wrong.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import table_rows  # noqa: E402  (bench/, beside this script)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=60, help="kills of a running child to reach (issue: 50+)")
    ap.add_argument("--seed", type=int, default=14)
    table_rows.add_argument(ap)
    args = ap.parse_args()

    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    from fc_assets.local_stack.process import free_port
    from fc_assets.local_stack.s3_server import s3_server
    from fc_assets.local_stack.sftp_server import sftp_server
    from fc_assets.resources.storage import Lake
    from fc_assets.sandbox.runner import SandboxServer
    from fc_assets_tests.fixtures.sandbox import SANDBOX_ARGS
    from fc_assets_tests.fixtures.sftp import SftpServer
    from fc_assets_tests.ingestion_flow.crash_harness import tmp_leftovers, warm_up
    from fc_assets_tests.ingestion_flow.crash_scenarios import SENDERS, extraction_cycle, kill_then_rerun
    from fc_assets_tests.ingestion_flow.flow import Flow, sandbox_fluent

    rng = random.Random(args.seed)
    print(f"forkserver warm-up {warm_up():.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="fc-crash-soak-") as tmp_dir:
        tmp = Path(tmp_dir)
        s3_port, sftp_port = free_port(), free_port()
        root, state = tmp / "sftp-root", tmp / "sftp-state"
        root.mkdir()
        (tmp / "dagster").mkdir()
        with (
            SandboxServer(SANDBOX_ARGS, seed=42) as sandbox,
            s3_server(port=s3_port, log_path=tmp / "moto.log"),
            sftp_server(root, state, port=sftp_port, log_path=tmp / "sftp.log") as sftp_proc,
            dg.instance_for_test(temp_dir=str(tmp / "dagster")) as instance,
        ):
            endpoint = f"http://127.0.0.1:{s3_port}"
            sftp = SftpServer(sftp_proc, "127.0.0.1", sftp_port, "fc", "fc-sftp", root, state / "known_hosts")
            lake = Lake("s3://soak-lake/lake", endpoint, "testing", "testing")
            lake.ensure_root()
            flows = {}
            for name, sender in SENDERS.items():
                flow = Flow(
                    sender.feed(),
                    instance=instance,
                    lake=lake,
                    s3_endpoint=endpoint,
                    sftp_server=sftp,
                    fluent=sandbox_fluent(sandbox),
                )
                flow.sandbox = sandbox
                flows[name] = flow
            files = dict.fromkeys(SENDERS, 0)
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            kills = hits = wrong = 0
            local_before = set(Path(tempfile.gettempdir()).glob("fc-*"))
            started = time.monotonic()
            while hits < args.kills:  # kills that hit a running child
                kind = rng.choice(["inventory", "products", "locations", "extraction"])
                if kind == "extraction":
                    last, days = rng.randint(1, 10), rng.randint(1, 5)
                    keys = [(today - timedelta(days=last + d)).strftime("%Y-%m-%d") for d in range(days)]
                    cycle = extraction_cycle(sandbox, lake, instance, keys[::-1], rng.uniform(0.2, 2.5))
                    kills += 1
                    hits += sum(cycle.killed)
                    wrong += bool(cycle.problems)
                    print(f"[{kills:3d}] {cycle.line()}", flush=True)
                    continue
                delays = [rng.uniform(0.05, 1.5) for _ in range(rng.choice([1, 1, 2]))]
                cycle = kill_then_rerun(flows[kind], SENDERS[kind], files[kind], kill_after_s=delays)
                files[kind] += 1
                kills += len(delays)
                hits += sum(cycle.killed)
                wrong += bool(cycle.problems)
                print(f"[{kills:3d}] {cycle.line()}", flush=True)
            left = tmp_leftovers(lake)
            local = sorted(set(Path(tempfile.gettempdir()).glob("fc-*")) - local_before)
            print(
                f"\n{len(left)} temporaries left in the lake's _tmp/ by killed writers (invisible to readers, "
                f"removed after a day); {len(local)} local temp dirs left in {tempfile.gettempdir()} "
                "(a killed worker's download or spool; a pod's /tmp goes with it)"
            )
            print(
                f"{kills} random kill points run, {hits} of them hit a running child, in "
                f"{time.monotonic() - started:.0f} s: {wrong} with a wrong outcome"
                + ("" if wrong else " — no loss, no double count, no partial object")
                + f" (load {os.getloadavg()[0]:.1f})"
            )
            seconds = time.monotonic() - started
    table_rows.emit(
        args.rows_json,
        [
            table_rows.row(
                f"crash soak: {hits} SIGKILLs of running children (extraction and the three senders), "
                "then re-executed",
                wrong,
                None,
                "0 wrong outcomes",
                wrong == 0,
                unit="wrong",
                note=f"{kills} kill points, {seconds:.0f} s, seed {args.seed}",
            )
        ],
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
