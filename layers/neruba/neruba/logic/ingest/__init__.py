"""Ingest: metering usage events exactly once (the ``POST /v1/events`` intake, the worker that counts each
queued event into hourly aggregates, one usage cell at a time) and reading usage back."""
