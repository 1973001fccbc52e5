"""Fluent entities read through GraphQL into daily Parquet partitions of the lake.

    <FC_LAKE_URI>/fluent/<entity>/dt=YYYY-MM-DD/part-0.parquet      (hive layout: one dataset per entity)

- `entities.py`   one `EntitySpec` per entity: queries, connection path, columns (Arrow types), checks
- `queries/`      the GraphQL documents (validated against the real Fluent schema by the tests)
- `columns.py`    column declarations (types by name: no pyarrow at load)
- `node_batches.py` GraphQL nodes -> Arrow record batch
- `json_pages.py` page bodies parsed straight into Arrow (no dicts); the rest goes the dict path
- `windows.py`    half-open `[start, end)` UTC windows; Fluent's inclusive DateRange; partition layout
- `fetch.py`      paging a window, completing nested connections, fan-out per virtual catalogue
- `extract.py`    parallel sub-window streams -> spools -> one object per day via `Lake.atomic_write`
- `request_slots.py` at most `concurrency` requests in flight, a freed slot to the earliest task's chain
- `parquet_writer.py`, `validation.py`   streaming row groups; pandera per row group + partition checks
- `assets.py`     the asset factory (daily partitions, single-run backfills, pool `fluent_api`, retries)
- `schedules.py`  per group: daily job + schedule, late-updates re-run of the last `FC_LATE_UPDATE_DAYS`
- `exports.py`    optional CSV/JSONL/XML copies to S3/SFTP outboxes (`FC_EXPORT_<ENTITY>`);
                  `export_files.py` writes them
- `definitions.py` what this package adds to the code location

Decisions (details in the module docstrings):
- Nested lists are `list<struct>` columns of their parent, not child tables (`entities.py`).
- Window edges: query `{from: start, to: end}` inclusive, keep `updatedOn < end` (`windows.py`).
- Speed: `FC_FLUENT_CONCURRENCY` requests in flight, shared by twice as many cursor chains (one per
  sub-window), each pipelined (the next page is requested while the current one is converted), so no
  slot idles while a chain parses or finishes; output order is task order, so it does not depend on
  thread timing (`extract.py`, `request_slots.py`, `fc_assets/prefetch.py`). Page bodies are parsed by
  Arrow's JSON reader outside the GIL where it reads them exactly as orjson + the dict conversion
  (`json_pages.py`).
- Complete or fail: an object is committed only after every stream of its day finished; nested
  connections are paged to the end or the run fails.
"""
