"""Billing rules in plain Python: money, pricing, periods, ingest and usage (no AWS)."""
