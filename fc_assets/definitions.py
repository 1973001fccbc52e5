"""The one Definitions object of the fc_assets code location.

Resources take their settings from the environment (see README "Configuration"); secrets are passed as
`dg.EnvVar` when the variable is set, so they resolve at launch and never appear in the UI. Unset, every
setting falls back to the local stack of `make demo`.
"""

from __future__ import annotations

import gc
import os

import dagster as dg

from fc_assets.alerts import build_alert_sensor
from fc_assets.extraction.definitions import extraction_definitions
from fc_assets.ingestion.definitions import ingestion_definitions, s3_resource
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import LakeResource
from fc_assets.settings import get_settings


def secret(env_name: str, default: str | None) -> str | dg.EnvVar | None:
    """`EnvVar(env_name)` when the variable is set, else the local-stack default."""
    return dg.EnvVar(env_name) if os.environ.get(env_name) else default


def lake_resource() -> LakeResource:
    s = get_settings()
    return LakeResource(
        uri=s.lake_uri,
        endpoint_url=s.aws_endpoint_url,
        access_key_id=s.aws_access_key_id,
        secret_access_key=secret("AWS_SECRET_ACCESS_KEY", s.aws_secret_access_key.get_secret_value()),
        region=s.aws_region,
    )


defs = dg.Definitions.merge(
    dg.Definitions(
        assets=[],
        # every job without its own executor (the implicit asset job of the UI and `dagster asset
        # materialize`, the extraction and analytics jobs) runs its steps in the run worker: a step process
        # would import and load the code location again (~3-5 s a step, more than a day's extraction).
        # Steps of a run are serialized; pools (`fluent_api`, feeds) are claimed as with processes.
        executor=dg.in_process_executor,
        resources={
            "lake": lake_resource(),
            "fluent": FluentResource.from_env(),
            "s3": s3_resource(),
            "sftp": SFTPResource.from_settings(),
        },
    ),
    extraction_definitions(),
    ingestion_definitions(),
    dg.Definitions(sensors=[s for s in [build_alert_sensor()] if s is not None]),
)

# Everything loaded so far lives as long as the process (code server, run worker, `dagster` CLI call):
# moved out of the collector's reach, later collections (the run's own, the one at exit) do not walk
# Dagster's and our long-lived objects again (a 20,000-order extraction step ~0.7 s faster).
gc.freeze()
