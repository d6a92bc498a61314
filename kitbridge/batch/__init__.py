"""Batch jobs: a declarative list of imports, conversions and copies, run idempotently (see docs/batch.md)."""
