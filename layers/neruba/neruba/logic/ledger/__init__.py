"""Ledger: double-entry postings of invoices, payments, refunds, disputes and adjustments, credit grants,
the payments refunds and disputes take money back from, operator money actions and ledger reads
(docs/ledger.md)."""
