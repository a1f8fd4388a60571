"""Pydantic models of what crosses the API and the queues."""
