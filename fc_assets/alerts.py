"""Run-failure alerts: one short Slack-compatible message (`{"text": ...}`) per failed run, posted to
`FC_ALERT_WEBHOOK_URL`. Without that setting there is no sensor at all.

The message says which feed and file failed, at which stage (the last one the feed's ledger recorded for the
file), why (the first line of the error) and links to the run in the UI (`FC_DAGSTER_UI_URL`). Secrets are
never in it (any secret setting's value is replaced by `***`), and the webhook URL, itself a secret for
Slack, is never logged: it is posted with the standard library (httpx would log it at INFO) and an error
names only the HTTP status or the exception's type.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import dagster as dg

from fc_assets.resources.storage import LakeResource
from fc_assets.settings import Settings, get_settings

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

SENSOR_NAME = "fc_run_failure_alert"
REASON_CHARS = 300
# Dagster handles up to 5 failed runs a tick and cuts a tick at 60 s (losing its cursor, so the tick and its
# alerts are repeated): 5 posts to a webhook that never answers must stay far below that
POST_TIMEOUT_S = 4.0


class AlertError(RuntimeError):
    """The webhook refused or could not be reached (the message never names its URL)."""


def secret_values(settings: Settings) -> list[str]:
    values = [
        getattr(settings, name).get_secret_value()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation) and getattr(settings, name) is not None
    ]
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "***")
    return text


def user_error(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """Dagster wraps an op's own exception (`DagsterExecutionStepExecutionError: Error occurred while
    executing op …`, which says nothing): the reason is the innermost cause under Dagster's wrappers."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error


def failure_reason(context: dg.RunFailureSensorContext) -> str:
    """The failed step's error (first line), else the run's failure message."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data.error is not None:
            return f"{event.step_key}: {user_error(data.error).message.strip().splitlines()[0]}"
    return (context.failure_event.message or "run failed").strip().splitlines()[0]


def failed_stage(lake: LakeResource | None, tags: dict[str, str]) -> str | None:
    """The last stage the feed's ledger recorded for the file (claimed, prepared, sent, …)."""
    feed, file_id = tags.get("fc/feed"), tags.get("fc/file_id")
    if lake is None or not feed or not file_id:
        return None
    from fc_assets.ingestion.deliver.ledger import Ledger

    try:
        entry = Ledger(lake.get_lake(), feed).get(file_id)
    except Exception:  # the alert must go out even when the lake is what failed
        return "unknown (ledger unreadable)"
    return entry.stage if entry else "not claimed"


def alert_text(run: dg.DagsterRun, reason: str, stage: str | None, ui_url: str | None) -> str:
    tags = dict(run.tags)
    what = f"feed `{tags['fc/feed']}`" if "fc/feed" in tags else f"job `{run.job_name}`"
    lines = [f":rotating_light: fc_assets run failed: {what}"]
    if "fc/key" in tags:
        lines.append(f"file: `{tags.get('fc/location', '')}:{tags['fc/key']}`")
    elif "dagster/partition" in tags:
        lines.append(f"partition: `{tags['dagster/partition']}`")
    if stage:
        lines.append(f"stage: {stage}")
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    lines.append(f"reason: {reason}")
    run_link = f"{ui_url.rstrip('/')}/runs/{run.run_id}" if ui_url else f"run {run.run_id}"
    lines.append(run_link)
    return "\n".join(lines)


def post_alert(url: str, text: str, timeout_s: float = POST_TIMEOUT_S) -> None:
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise AlertError(f"alert webhook answered HTTP {e.code}") from None
    except Exception as e:  # URLError, timeouts: their text may hold the host; say only what kind it was
        raise AlertError(f"alert webhook not reached ({type(e).__name__})") from None


def build_alert_sensor() -> dg.SensorDefinition | None:
    """The run-failure sensor, or None when `FC_ALERT_WEBHOOK_URL` is unset (no alerts)."""
    if get_settings().alert_webhook_url is None:
        return None

    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts a short message (feed, file, stage, reason, link) for each failed run to "
        "FC_ALERT_WEBHOOK_URL.",
    )
    def fc_run_failure_alert(context: dg.RunFailureSensorContext, lake: LakeResource) -> None:
        settings = get_settings()
        if settings.alert_webhook_url is None:
            return
        run = context.dagster_run
        stage = failed_stage(lake, dict(run.tags))
        text = scrub(
            alert_text(run, failure_reason(context), stage, settings.dagster_ui_url), secret_values(settings)
        )
        post_alert(settings.alert_webhook_url.get_secret_value(), text)
        context.log.info(f"alert posted for run {run.run_id}")

    return fc_run_failure_alert
