"""Operator tools: the `neruba` CLI and the local stack."""
