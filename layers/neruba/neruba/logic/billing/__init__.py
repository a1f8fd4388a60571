"""Billing: windows of a subscription, the scheduler and the worker that bill them, finalization,
corrections, auto top-up, the upcoming invoice, invoice reads and operator billing actions
(docs/billing.md)."""
