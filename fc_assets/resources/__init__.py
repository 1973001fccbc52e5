"""Connections to the outside world as Dagster resources."""
