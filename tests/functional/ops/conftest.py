"""Ops tests reuse the ingest fixtures (send events through the API, run the worker)."""

from __future__ import annotations

from tests.functional.ingest.conftest import process, send, worker

__all__ = ["process", "send", "worker"]
