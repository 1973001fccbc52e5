"""DuckDB assets over the lake."""
