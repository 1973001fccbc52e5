"""Reading and validating a feed's files: streaming readers (CSV, JSON, JSONL, XML, Parquet, .gz) → Arrow,
mapping onto the feed's canonical fields, conversion and validation with row-level rejects.

Pure: no Dagster, no lake. Imports the feed declarations (`feeds.py`, `spec.py`), never `deliver/` or the
Dagster layer (`fc_assets_tests/test_ingestion_layers.py` checks it)."""
