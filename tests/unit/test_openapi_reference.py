"""docs/openapi.json is the API reference: it must match what the code generates."""

from __future__ import annotations

from pathlib import Path

from neruba_tools.cli import openapi_text

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_reference_is_current() -> None:
    # THEN regenerate with `neruba openapi > docs/openapi.json` when this fails
    assert REFERENCE.read_text() == openapi_text()


def test_every_route_documents_its_errors_and_security() -> None:
    import json

    spec = json.loads(openapi_text())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ready"):
                continue
            if path == "/webhooks/stripe":  # authenticated by the Stripe-Signature header, not an API key
                assert operation.get("security") is None and "400" in operation["responses"]
                continue
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
