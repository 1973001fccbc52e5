"""fc_assets: a Dagster code location that moves data between Fluent Commerce and a company's files."""
