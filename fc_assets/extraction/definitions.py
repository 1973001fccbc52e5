"""Everything extraction contributes to the code location, merged into `fc_assets/definitions.py`:
the entity assets, optional export assets (`FC_EXPORT_<ENTITY>`), the analytics tables, their jobs and
schedules. Resources (`fluent`, `lake`, and `sftp` for SFTP exports) are wired in `fc_assets/definitions.py`.
Reads settings when called (at code-location load), not at import."""

import dagster as dg

from fc_assets.analytics.assets import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from fc_assets.extraction.assets import build_extraction_assets
from fc_assets.extraction.entities import ENTITIES
from fc_assets.extraction.exports import build_export_assets, export_targets_from_env
from fc_assets.extraction.schedules import build_schedules
from fc_assets.settings import get_settings


def extraction_definitions() -> dg.Definitions:
    s = get_settings()
    jobs, schedules = build_schedules(ENTITIES, s.late_update_days)
    return dg.Definitions(
        assets=[
            *build_extraction_assets(ENTITIES, start_date=s.extract_start_date),
            *build_export_assets(export_targets_from_env(), s.extract_start_date),
            *ANALYTICS_ASSETS,
        ],
        jobs=[*jobs, analytics_job],
        schedules=[*schedules, analytics_schedule],
    )
