"""The run-failure alert (fc_assets/alerts.py) against a local HTTP receiver on loopback: a feed run that
really fails (Fluent never finishes its batch) on a real Dagster instance → the sensor's next tick, evaluated
the way the daemon evaluates it (cursor over the instance's event log), posts exactly one message with feed,
file, stage, reason and the run's link; the webhook URL appears in no log line, event or error."""

from __future__ import annotations

import importlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from fc_assets.alerts import SENSOR_NAME, AlertError, build_alert_sensor, post_alert
from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.settings import get_settings
from fc_assets_tests.ingestion_flow.flow import Flow, sandbox_fluent
from fc_assets_tests.ingestion_flow.helpers import inventory_csv

TOKEN = "T0001/B0002/hook-secret-xyz"


class Receiver:
    """A webhook on loopback recording each POST; answers `status`."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, json.loads(body)))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alert_env(receiver, settings_env):
    settings_env(
        FC_ALERT_WEBHOOK_URL=receiver.url,
        FC_DAGSTER_UI_URL="https://dagster.example.com/",
        FC_FEED_MAX_RETRIES=0,
        **{CRASH_ENV: None},
    )
    return receiver


def tick(sensor, instance, cursor, resources, repo):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, repository_def=repo)
    return sensor.evaluate_tick(ctx)


def test_a_failed_feed_run_posts_one_alert(
    alert_env, dagster_instance, lake, s3_server, sftp_server, sandbox_clean, caplog
):
    receiver = alert_env
    caplog.set_level(logging.DEBUG)
    flow = Flow(
        inventory_feed(),
        instance=dagster_instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=sftp_server,
        fluent=sandbox_fluent(sandbox_clean),
    )
    sensor = build_alert_sensor()
    assert sensor is not None and sensor.name == SENSOR_NAME
    defs = dg.Definitions.merge(flow.defs, dg.Definitions(sensors=[sensor]))
    repo = defs.get_repository_def()
    resources = {"lake": flow.resources["lake"]}

    first = tick(sensor, dagster_instance, None, resources, repo)  # sets the cursor: older runs are not news
    assert receiver.posts == []

    sandbox_clean.admin.set_faults(stuck_batches=True)
    flow.put_s3("stock-a.csv", inventory_csv([("SKU-1", "LOC-1", 5), ("SKU-2", "LOC-1", 7)]))
    (req,) = flow.tick("s3")
    failed = flow.execute(req, batch_timeout_s=0.5)
    assert not failed.success
    run_id = failed.dagster_run.run_id

    second = tick(sensor, dagster_instance, first.cursor, resources, repo)
    assert len(receiver.posts) == 1, receiver.posts
    path, body = receiver.posts[0]
    assert path == f"/services/{TOKEN}" and set(body) == {"text"}
    text = body["text"]
    assert "feed `inventory`" in text
    assert "inventory/stock-a.csv" in text
    assert "stage: " in text and "stage: not claimed" not in text
    assert "reason: inventory_feed:" in text and "moved to" in text  # the pipeline's own failure
    assert f"https://dagster.example.com/runs/{run_id}" in text

    # the next tick does not repeat it
    tick(sensor, dagster_instance, second.cursor, resources, repo)
    assert len(receiver.posts) == 1

    # the webhook URL is a secret: in no log record, no event of the instance
    assert TOKEN not in caplog.text
    for rec in dagster_instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.RUN_FAILURE)):
        assert TOKEN not in str(rec.event_log_entry)
    for log in dagster_instance.all_logs(run_id):
        assert TOKEN not in (log.user_message or "")


def test_a_refusing_webhook_names_no_url(receiver):
    receiver.status = 500
    with pytest.raises(AlertError) as e:
        post_alert(receiver.url, "x")
    assert "500" in str(e.value) and TOKEN not in str(e.value) and e.value.__cause__ is None
    receiver.close()
    with pytest.raises(AlertError) as e:
        post_alert(receiver.url, "x", timeout_s=2)
    assert TOKEN not in str(e.value) and "127.0.0.1" not in str(e.value)


def test_secrets_are_scrubbed_from_the_message(settings_env):
    from fc_assets.alerts import alert_text, scrub, secret_values

    settings_env(FLUENT_CLIENT_SECRET="s3cr3t-Value!")
    run = dg.DagsterRun(job_name="orders_job", run_id="abc", tags={"dagster/partition": "2025-01-01"})
    text = scrub(
        alert_text(run, "401 with client_secret=s3cr3t-Value!", None, None), secret_values(get_settings())
    )
    assert "s3cr3t-Value!" not in text and "client_secret=***" in text
    assert "job `orders_job`" in text and "partition: `2025-01-01`" in text and "run abc" in text


def test_off_when_unset_and_registered_when_set(settings_env, receiver):
    import fc_assets.definitions as definitions

    settings_env(FC_ALERT_WEBHOOK_URL=None)
    assert build_alert_sensor() is None
    names = {s.name for s in importlib.reload(definitions).defs.sensors}
    assert SENSOR_NAME not in names and names  # the other sensors are there
    settings_env(FC_ALERT_WEBHOOK_URL=receiver.url)
    defs = importlib.reload(definitions).defs
    assert defs.get_sensor_def(SENSOR_NAME).default_status == dg.DefaultSensorStatus.RUNNING


def test_a_secret_in_the_failure_is_not_posted(alert_env, dagster_instance, settings_env, lake):
    """A run whose error echoes a secret setting (an auth error quoting the client secret): the tick's post
    has `***` where the secret was."""
    receiver = alert_env
    settings_env(FLUENT_CLIENT_SECRET="s3cr3t-Value!")

    @dg.op
    def authenticate() -> None:
        raise RuntimeError("401 from /oauth/token with client_secret=s3cr3t-Value!")

    @dg.job
    def orders_job() -> None:
        authenticate()

    sensor = build_alert_sensor()
    repo = dg.Definitions(jobs=[orders_job], sensors=[sensor]).get_repository_def()
    resources = {"lake": lake}
    first = tick(sensor, dagster_instance, None, resources, repo)
    result = orders_job.execute_in_process(
        instance=dagster_instance, tags={"dagster/partition": "2025-01-01"}, raise_on_error=False
    )
    assert not result.success
    tick(sensor, dagster_instance, first.cursor, resources, repo)
    assert len(receiver.posts) == 1, receiver.posts
    text = receiver.posts[0][1]["text"]
    assert "s3cr3t-Value!" not in text and "client_secret=***" in text, text
    assert "job `orders_job`" in text
    # the op's own error, not Dagster's wrapper ("Error occurred while executing op …")
    assert "reason: authenticate: RuntimeError: 401 from /oauth/token" in text, text


def test_a_hanging_webhook_keeps_the_tick_short(dagster_instance, settings_env, lake):
    """A webhook that accepts and never answers: the tick reports the error without naming the URL, moves
    on (cursor past the run) and stays short. Dagster handles up to 5 failed runs a tick
    (DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT) and cuts a tick at 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS),
    which loses the cursor and repeats the tick's alerts: 5 hanging posts must take well under half of it."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog, nothing ever answers
    settings_env(FC_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{silent.getsockname()[1]}/{TOKEN}")

    @dg.op
    def extract() -> None:
        raise RuntimeError("boom")

    @dg.job
    def orders_job() -> None:
        extract()

    sensor = build_alert_sensor()
    repo = dg.Definitions(jobs=[orders_job], sensors=[sensor]).get_repository_def()
    first = tick(sensor, dagster_instance, None, {"lake": lake}, repo)
    orders_job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    t0 = time.monotonic()
    second = tick(sensor, dagster_instance, first.cursor, {"lake": lake}, repo)
    elapsed = time.monotonic() - t0
    silent.close()
    (reaction,) = second.dagster_run_reactions
    assert "alert webhook not reached" in reaction.error.message and TOKEN not in reaction.error.to_string()
    assert second.cursor != first.cursor
    assert elapsed * 5 <= 60 / 2, f"{elapsed:.1f} s for one hanging post"
