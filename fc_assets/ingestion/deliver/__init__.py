"""Delivering a validated file: delta against the last-sent snapshot, senders (Batch / Event / mutations),
the ledger and feed state, fetching and archiving source files, the file pipeline that runs them in order.

Imports `read/` and the feed declarations, never the Dagster layer (`assets.py`, `sensors.py`,
`definitions.py`, `state_jobs.py`; checked by `fc_assets_tests/test_ingestion_layers.py`)."""
