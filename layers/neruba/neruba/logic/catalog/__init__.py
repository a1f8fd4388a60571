"""Catalog: customers, meters, plans with immutable versions, and subscriptions to those plans."""
