"""`fc-assets state …`: look at and operate a feed's state in the lake (`FC_LAKE_URI`, see state_ops.py).

Read-only: `show FEED`, `files FEED`, `audit FEED`. Changes — `reprocess`, `reset`, `release`, `prune` — ask
for confirmation (or `--yes`) and are appended to `state/<feed>/audit.jsonl` with who, when and what.
Heavy imports happen inside the commands so `fc-assets --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _lake():
    from fc_assets.resources.storage import Lake
    from fc_assets.settings import get_settings

    s = get_settings()
    return Lake(
        s.lake_uri,
        endpoint_url=s.aws_endpoint_url or None,
        access_key_id=s.aws_access_key_id or None,
        secret_access_key=s.aws_secret_access_key.get_secret_value() or None,
        region=s.aws_region,
    )


def _plan(feed: str):
    from fc_assets.ingestion.deliver.plans import plan_for
    from fc_assets.ingestion.feeds import get_feed

    try:
        return plan_for(get_feed(feed))
    except KeyError as e:
        raise click.BadParameter(str(e.args[0]), param_hint="FEED") from None


def _sources():
    """The feeds' inboxes, reached with the same settings as the code location's `s3` and `sftp`."""
    import boto3

    from fc_assets.ingestion.deliver.sources import SourceStore
    from fc_assets.resources.sftp import SFTPResource
    from fc_assets.settings import get_settings

    s = get_settings()
    s3 = boto3.client(
        "s3",
        endpoint_url=s.aws_endpoint_url or None,
        aws_access_key_id=s.aws_access_key_id or None,  # empty: the default chain (IAM role)
        aws_secret_access_key=s.aws_secret_access_key.get_secret_value() or None,
        region_name=s.aws_region,
    )
    sftp = SFTPResource(
        host=s.sftp_host,
        port=s.sftp_port,
        username=s.sftp_username,
        password=s.sftp_password.get_secret_value() if s.sftp_password else None,
        key_path=s.sftp_key_path,
        known_hosts=s.sftp_known_hosts,
    )
    return SourceStore(s3_client=s3, sftp=sftp)


def _echo(data: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
        return
    for k, v in data.items():
        click.echo(f"{k:>16}: {json.dumps(v, default=str) if isinstance(v, dict) else v}")


def _confirm(yes: bool, what: str) -> None:
    if not yes:
        click.confirm(f"{what} — go ahead?", abort=True)


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e.args[0]) if e.args else str(e))


@click.group("state")
def state() -> None:
    """A feed's state in the lake: watermark, snapshot, in-flight file, ledger (FC_LAKE_URI)."""


@state.command("show")
@click.argument("feed")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(feed: str, as_json: bool) -> None:
    """Watermark, last file, in-flight file, committed count, snapshot size."""
    from fc_assets.ingestion.deliver import state_ops

    _plan(feed)
    _echo(state_ops.show(_lake(), feed), as_json)


@state.command("files")
@click.argument("feed")
@click.option("--outcome", type=click.Choice(["processed", "error", "unfinished"]), help="Only these.")
@click.option("--since", help="Claimed on or after (ISO date/time prefix, e.g. 2026-01-31).")
@click.option("--until", help="Claimed on or before (ISO date/time prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def files(feed: str, outcome: str | None, since: str | None, until: str | None, as_json: bool) -> None:
    """The feed's ledger, oldest first."""
    from fc_assets.ingestion.deliver import state_ops

    _plan(feed)
    rows = state_ops.files(_lake(), feed, outcome, since, until)
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    for r in rows:
        click.echo(
            f"{r['claimed_at'][:19]}  {r['outcome']:<10} {r['stage']:<9} {r['file_id']}  "
            f"{r['location']}:{r['key']}  rows={r['rows']} sent={r['sent']}"
            + (f"  error={r['error']}" if r["error"] else "")
        )
    click.echo(f"{len(rows)} file(s)")


@state.command("audit")
@click.argument("feed")
def audit(feed: str) -> None:
    """Every change made with these commands (who, when, what), oldest first."""
    from fc_assets.ingestion.deliver import state_ops

    for line in state_ops.audit_log(_lake(), feed):
        line.pop("forgotten_entry", None)
        click.echo(json.dumps(line, default=str))


@state.command("reprocess")
@click.argument("feed")
@click.argument("file")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reprocess(feed: str, file: str, yes: bool) -> None:
    """Forget one file version (FILE = file id, partition key or source key) so the sensor's next full scan
    requests it again; an archived copy is put back in the inbox."""
    from fc_assets.ingestion.deliver import state_ops

    plan, lake = _plan(feed), _lake()
    try:
        from fc_assets.ingestion.deliver.ledger import Ledger

        entry = state_ops.find_entry(Ledger(lake, feed), file)
        _confirm(yes, f"forget {entry.location}:{entry.key} ({entry.outcome or entry.stage}) of feed {feed}")
        line = state_ops.reprocess(lake, plan, _sources(), entry.file_id, state_ops.operator())
    except (KeyError, ValueError) as e:
        raise _fail(e) from None
    click.echo(
        f"forgotten {line['key']} (generation {line['generation']}); restored: {line['restored_from']}"
    )


@state.command("reset")
@click.argument("feed")
@click.option("--to-empty", is_flag=True, help="The next file is sent in full.")
@click.option(
    "--to", "to", metavar="SNAPSHOT", help="Lake path or local Parquet file of the snapshot to use."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(feed: str, to_empty: bool, to: str | None, yes: bool) -> None:
    """Reset the last-sent snapshot (the current one is kept under state/<feed>/snapshots/)."""
    from fc_assets.ingestion.deliver import state_ops

    plan = _plan(feed)
    if to_empty == (to is not None):
        raise click.UsageError("give exactly one of --to-empty or --to SNAPSHOT")
    _confirm(yes, f"reset the snapshot of feed {feed} to {'empty' if to_empty else to}")
    try:
        line = state_ops.reset(
            _lake(), feed, state_ops.operator(), to_empty=to_empty, to=to, keys=plan.delta.keys
        )
    except (ValueError, FileNotFoundError) as e:
        raise _fail(e) from None
    click.echo(f"snapshot of {feed} reset to {line['to']}; previous kept at {line['previous_snapshot']}")


@state.command("release")
@click.argument("feed")
@click.option("--reason", default="forced by an operator", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def release(feed: str, reason: str, yes: bool) -> None:
    """Force the in-flight slot free: the in-flight file is released to error/ and its delta's keys leave
    the snapshot (the next file sends them again)."""
    from fc_assets.ingestion.deliver import state_ops
    from fc_assets.ingestion.deliver.ledger import Ledger

    plan, lake = _plan(feed), _lake()
    slot = Ledger(lake, feed).state().inflight
    if not slot:
        raise click.ClickException(f"feed {feed} has no file in flight")
    _confirm(yes, f"release {slot.get('key')} (held by run {slot.get('run_id')}) of feed {feed} to error/")
    try:
        line = state_ops.release(lake, plan, _sources(), state_ops.operator(), reason)
    except ValueError as e:
        raise _fail(e) from None
    click.echo(f"released {line.get('key', slot.get('key'))}: {line.get('note', 'moved to error/')}")


@state.command("prune")
@click.argument("feeds", nargs=-1)
@click.option(
    "--days", type=int, help="Keep archived entries this many days (default FC_STATE_RETENTION_DAYS)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune(feeds: tuple[str, ...], days: int | None, yes: bool) -> None:
    """Apply the retention: work files of archived files removed, archived entries older than the retention
    compacted into state/<feed>/summary/<month>.jsonl. Unfinished entries are never touched."""
    from fc_assets.ingestion.deliver import state_ops
    from fc_assets.ingestion.feeds import feed_names
    from fc_assets.settings import get_settings

    days = get_settings().state_retention_days if days is None else days
    names = list(feeds) or feed_names()
    for f in names:
        _plan(f)
    _confirm(yes, f"prune the state of {', '.join(names)} (keep {days} days)")
    lake = _lake()
    for f in names:
        counts = state_ops.prune(lake, f, days)
        state_ops.audit(lake, f, "prune", state_ops.operator(), days=days, **counts)
        click.echo(f"{f}: {counts}")
