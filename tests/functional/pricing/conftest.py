"""Pricing fixtures: the real ingest path (API handler + worker) to store hourly aggregates."""

from __future__ import annotations

from tests.functional.ingest.conftest import process, send, worker

__all__ = ["process", "send", "worker"]
