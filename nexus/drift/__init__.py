"""The drift engine: pure functions from canonical records to discrepancies (no I/O, no Celery)."""
