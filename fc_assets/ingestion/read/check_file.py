"""`fc-assets check-file FEED PATH [--rejects OUT.csv] [--write-parquet OUT.parquet]`: parse and validate a
file exactly as the pipeline would, without sending anything, and print one JSON line on stdout:

    {"feed", "path", "format", "rows", "accepted", "rejected", "rejects_path", "seconds", "failed", "reasons"}

(plus "parquet_path" with `--write-parquet`, which streams the accepted, typed rows to a Parquet file, and
"unknown_keys": {"distinct", "names"} when a JSON, JSONL or XML file's records carry keys the feed does not
use: they are ignored, see read/source_keys.py).

`failed` says whether the rejected share is over the feed's threshold. Exit status: 0 when the file could
be read (even with rejected rows, even when `failed`, unless `--strict`: then 3); 2 with one line on
stderr naming the file (and row/field when known) when the file as a whole is unreadable or unsafe, or
the feed is unknown; 128 + the signal's number when stopped by SIGTERM or SIGHUP (a partial Parquet file
is removed). While a long file is read, progress goes to stderr when stderr is a terminal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import click

FORMAT_CHOICES = ("csv", "json", "jsonl", "xml", "parquet")
PROGRESS_EVERY_S = 1.0


class _Progress:
    """Rows so far on one stderr line, at most once a second (only on a terminal)."""

    def __init__(self, name: str) -> None:
        self.name, self.last, self.shown = name, time.monotonic(), False

    def __call__(self, report) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last, self.shown = now, True
            click.echo(
                f"\r{self.name}: {report.rows:,} rows, {report.rejected:,} rejected …", err=True, nl=False
            )

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)


class _Stopped(BaseException):
    """SIGTERM or SIGHUP during a check: unwinds the check so that its `finally` removes a partial Parquet
    file (a default SIGTERM left `OUT.parquet.tmp-PID` behind)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    for sig in STOP_SIGNALS:  # a second signal during the clean-up ends the process at once
        signal.signal(sig, signal.SIG_DFL)
    raise _Stopped(signum)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _fail(message: str, code: int = 2, *, now: bool = False) -> None:
    click.echo(f"fc-assets check-file: {message}", err=True)
    if now:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's shutdown, once a file was read (the rejects and Parquet files are closed
    by then). An Arrow I/O thread may still be reading ahead from the stream (a gzip bomb's capped Python
    file; seen after a complete `--write-parquet` check too); shutting the interpreter down under it aborts
    the process ("terminate called without an active exception", exit -6, ~1 run in 15 with pyarrow 26)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command("check-file")
@click.argument("feed")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the rejected rows here (CSV: row, field, value, reason).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default=None,
    help="Read as this format instead of detecting it from the extension.",
)
@click.option("--strict", is_flag=True, help="Exit 3 when the rejected share is over the feed's threshold.")
@click.option(
    "--write-parquet",
    "parquet_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the accepted rows, typed, to this Parquet file (streamed; replaced when complete).",
)
def check_file(
    feed: str, path: str, rejects_path: str | None, fmt: str | None, strict: bool, parquet_path: str | None
) -> None:
    """Validate PATH as a file of FEED and print the totals as one JSON line."""
    from fc_assets.ingestion.feeds import FEEDS
    from fc_assets.ingestion.read.unreadable import FileUnreadable
    from fc_assets.ingestion.read.validate import check_file as run_check

    if feed not in FEEDS:
        _fail(f"unknown feed {feed!r} (feeds: {', '.join(sorted(FEEDS))})")
    progress = _Progress(path) if sys.stderr.isatty() else None
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)
    try:
        try:
            report = run_check(
                feed, path, rejects_path, fmt=fmt, progress=progress, parquet_path=parquet_path
            )
        finally:  # the check is over: a signal from here on ends the process as usual, not as `_Stopped`
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
    except FileUnreadable as e:
        if progress:
            progress.done()
        _fail(str(e), now=True)
        return
    except _Stopped as e:
        if progress:
            progress.done()
        name = signal.Signals(e.signum).name
        left = ["no Parquet file written"] if parquet_path else []
        left += [f"{rejects_path} holds the rejects of the rows read so far"] if rejects_path else []
        what = f" ({'; '.join(left)})" if left else ""
        _fail(f"{path}: stopped by {name} before the end of the file{what}", 128 + e.signum, now=True)
        return
    if progress:
        progress.done()
    summary = report.summary()
    if parquet_path is not None:
        summary["parquet_path"] = parquet_path
    click.echo(json.dumps(summary, ensure_ascii=False))
    _exit_now(3 if strict and report.failed else 0)
