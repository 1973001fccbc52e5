"""Everything extraction contributes to the code location, merged into `fc_assets/definitions.py`:
the entity assets, optional export assets (`FC_EXPORT_<ENTITY>`), the analytics tables, their jobs and
schedules. Resources (`fluent`, `lake`, and `sftp` for SFTP exports) are wired in `fc_assets/definitions.py`.
Reads settings when called (at code-location load), not at import.

`FC_EXTRACT_HOURLY=orders,fulfilments` switches entities to hourly partitions
(`dt=YYYY-MM-DD/hour=HH/part-0.parquet`) for high volumes: a setting, not a second code path.
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence

import dagster as dg

from fc_assets.analytics.assets import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from fc_assets.analytics.current_state import build_current_state_asset
from fc_assets.extraction.assets import build_extraction_assets
from fc_assets.extraction.entities import ENTITIES, EntitySpec
from fc_assets.extraction.exports import build_export_assets, export_targets_from_env
from fc_assets.extraction.freshness import build_freshness_checks, build_freshness_sensor
from fc_assets.extraction.schedules import build_schedules
from fc_assets.extraction.windows import HOURLY
from fc_assets.settings import get_settings


def entities_from_env(environ: Mapping[str, str] | None = None) -> Sequence[EntitySpec]:
    """The declared entities, with those listed in `FC_EXTRACT_HOURLY` switched to hourly partitions."""
    environ = os.environ if environ is None else environ
    hourly = {n.strip() for n in environ.get("FC_EXTRACT_HOURLY", "").split(",") if n.strip()}
    unknown = hourly - {e.name for e in ENTITIES}
    if unknown:
        raise ValueError(f"FC_EXTRACT_HOURLY: unknown entities {sorted(unknown)}")
    return [dataclasses.replace(e, grain=HOURLY) if e.name in hourly else e for e in ENTITIES]


def extraction_definitions() -> dg.Definitions:
    s = get_settings()
    entities = entities_from_env()
    jobs, schedules = build_schedules(entities, s.late_update_days, s.extract_start_date)
    extraction_assets = build_extraction_assets(entities, start_date=s.extract_start_date)
    freshness_checks = build_freshness_checks(
        [(e.grain, a) for e, a in zip(entities, extraction_assets, strict=True)]
    )
    return dg.Definitions(
        assets=[
            *extraction_assets,
            *build_export_assets(export_targets_from_env(), s.extract_start_date, entities),
            *(build_current_state_asset(e) for e in entities),
            *ANALYTICS_ASSETS,
        ],
        asset_checks=freshness_checks,
        jobs=[*jobs, analytics_job],
        schedules=[*schedules, analytics_schedule],
        sensors=[build_freshness_sensor(freshness_checks)],
    )
