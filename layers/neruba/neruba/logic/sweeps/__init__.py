"""The consistency sweep: the runner and its named checks (usage, ledger, billing, Stripe, corrections,
receivable), each finding and repairing what the normal paths left undone (docs/operations.md)."""
