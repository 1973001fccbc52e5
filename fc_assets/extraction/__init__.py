"""Fluent entities read through GraphQL into daily Parquet partitions."""
