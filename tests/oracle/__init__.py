"""The model-based oracle: random sequences through the real handlers and workers, checked against a small
reference model (docs/testing.md)."""
