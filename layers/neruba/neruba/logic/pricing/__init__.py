"""Pricing: rating a subscription's billing window from stored usage and plan versions (the rules
themselves are plain Python in ``neruba.domain``; docs/pricing.md)."""
