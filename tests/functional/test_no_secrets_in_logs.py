"""No secret ever reaches the logs: one full scenario, every log line captured and searched.

The scenario runs in-process on moto with real credentials made for it: an API key created through the
keys repository and sent in ``Authorization`` headers (authorizer, ingest, read, admin, errors included),
the Stripe parameter in SSM (API key and webhook secret), a signed webhook delivery processed by the Stripe
worker, an invoice pushed to a local fake Stripe with the API key, and the error paths (a bad signature,
unknown and malformed keys at the authorizer, a request that fails with a 500). Everything is logged at
DEBUG: the Powertools logger's own output stream, every ``logging`` record down to the root logger
(botocore included), and whatever reached stdout and stderr.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import boto3
import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.lambda_context import FakeContext
from tests.support.queues import drain

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/GET/v1/customers"
INVOICE = {
    "id": "in_secrets_1",
    "number": "NRB-0001",
    "customer_id": "acme",
    "currency": "USD",
    "status": "finalized",
    "lines": [{"line_id": "fixed_fee:0", "kind": "fixed_fee", "description": "Fee", "amount_minor": 4900}],
    "subtotal_minor": 4900,
    "credits_applied_minor": 0,
    "total_minor": 4900,
}


class Capture:
    """Every log line of the scenario: the Powertools stream, every logging record, stdout and stderr."""

    def __init__(self) -> None:
        self.powertools = io.StringIO()
        self.records = io.StringIO()

    def text(self, captured: Any) -> str:
        return "\n".join([self.powertools.getvalue(), self.records.getvalue(), captured.out, captured.err])


@contextmanager
def capturing(other_loggers_level: int) -> Iterator[Capture]:
    """Capture the Powertools logger at DEBUG and every other logger at ``other_loggers_level``."""
    from neruba.observability import logger

    result = Capture()
    stream_handler = logger.registered_handler
    assert isinstance(stream_handler, logging.StreamHandler)
    original_stream = stream_handler.stream  # swapped directly: setStream would flush a closed capture
    stream_handler.stream = result.powertools
    original_level = logger.log_level
    root = logging.getLogger()
    root_level = root.level
    everything = logging.StreamHandler(result.records)
    everything.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    # every record of every logger, propagating or not (the Powertools logger does not propagate)
    watched = [root, logging.getLogger(logger.name)]
    for target in watched:
        target.addHandler(everything)
    logger.setLevel("DEBUG")
    root.setLevel(other_loggers_level)
    try:
        yield result
    finally:
        for target in watched:
            target.removeHandler(everything)
        root.setLevel(root_level)
        logger.setLevel(original_level)
        stream_handler.stream = original_stream


def _stripe_parameter(api_key: str, webhook_secret: str) -> None:
    from neruba.logic.stripe.secrets import clear_cache
    from neruba.settings import get_settings

    boto3.client("ssm").put_parameter(
        Name=get_settings().stripe_secret_name or "/neruba/stripe",
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps({"api_key": api_key, "webhook_secrets": [webhook_secret]}),
    )
    clear_cache()


def _authorized(method: str, path: str, plaintext: str, key_id: str, **kw: Any) -> dict[str, Any]:
    """An API event as API Gateway forwards it: the client's Authorization header and the authorizer's
    context."""
    event = api_event(method, path, headers={"Authorization": f"Bearer {plaintext}"}, **kw)
    event["requestContext"]["authorizer"]["key_id"] = key_id
    return event


@pytest.mark.parametrize(
    "other_loggers_level",
    [logging.INFO, pytest.param(logging.DEBUG, id="DEBUG")],
    ids=["INFO", "DEBUG"],
)
def test_a_full_scenario_logs_no_secret(
    catalog: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, other_loggers_level: int
) -> None:
    from functions.admin_api.app import lambda_handler as admin_api
    from functions.authorizer.app import lambda_handler as authorizer
    from functions.ingest_api.app import lambda_handler as ingest_api
    from functions.ingest_worker import app as ingest_worker
    from functions.read_api.app import lambda_handler as read_api
    from functions.stripe_sync.app import lambda_handler as stripe_sync
    from functions.stripe_webhook.app import lambda_handler as stripe_webhook
    from functions.stripe_worker.app import lambda_handler as stripe_worker
    from neruba.dal.keys import KeysRepository
    from neruba.observability import logger
    from neruba.settings import get_settings
    from neruba_tools.local.fake_stripe import FakeStripe
    from tests.support.invoices import store_invoice
    from tests.support.stripe_events import encode, invoice_paid, sign

    # GIVEN a real API key and real Stripe credentials made for this run
    stripe_api_key = "sk_test_" + secrets.token_urlsafe(24)
    webhook_secret = "whsec_" + secrets.token_urlsafe(24)
    _stripe_parameter(stripe_api_key, webhook_secret)
    capfd.readouterr()  # the capture starts here: the setup above writes the parameter, which no code logs
    stack = ExitStack()
    result = stack.enter_context(capturing(other_loggers_level))
    plaintext, key = KeysRepository(get_settings().keys_table).create(
        frozenset({"ingest", "read", "admin"}), name="scenario"
    )
    key_secret = plaintext.split("_", 2)[2]
    store_invoice(INVOICE, post=False)  # acme is in the catalog; Stripe effects and sync are the real ones
    signatures: list[str] = []
    try:
        with FakeStripe() as fake:
            monkeypatch.setenv("NERUBA_STRIPE_API_BASE", fake.url)
            # WHEN the authorizer sees the key, an unknown key and a malformed one
            allowed = authorizer(
                {"type": "TOKEN", "authorizationToken": f"Bearer {plaintext}", "methodArn": METHOD_ARN},
                FakeContext(),
            )
            assert allowed["context"]["key_id"] == key.key_id
            for token in (f"nrb_{key.key_id}_{secrets.token_urlsafe(32)}", f"Bearer {key_secret}"):
                with pytest.raises(Exception, match="Unauthorized"):
                    authorizer(
                        {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD_ARN},
                        FakeContext(),
                    )
            # AND the key calls ingest, read and admin routes, successes and failures alike
            events = {
                "events": [
                    {"transaction_id": "secret-scenario-1", "customer_id": "acme", "code": "api_calls"}
                ]
            }
            assert (
                call(ingest_api, _authorized("POST", "/v1/events", plaintext, key.key_id, body=events))[0]
                == 202
            )
            assert (
                call(ingest_api, _authorized("POST", "/v1/events", plaintext, key.key_id, body={"x": 1}))[0]
                == 422
            )
            assert drain(ingest_worker.lambda_handler, queue_url("IngestQueue")) >= 1
            assert call(read_api, _authorized("GET", "/v1/customers", plaintext, key.key_id))[0] == 200
            assert call(read_api, _authorized("GET", "/v1/meters/nope", plaintext, key.key_id))[0] == 404
            customer = {"external_id": "initech", "name": "Initech", "currency": "USD"}
            assert (
                call(admin_api, _authorized("POST", "/v1/customers", plaintext, key.key_id, body=customer))[0]
                == 201
            )
            # a bug in a repository: the unhandled-error path logs the exception with its request
            from neruba.dal.catalog import CatalogRepository

            def broken(self: Any, code: str) -> Any:
                raise RuntimeError("repository bug")

            with monkeypatch.context() as patched:
                patched.setattr(CatalogRepository, "get_meter", broken)
                got = call(read_api, _authorized("GET", "/v1/meters/broken", plaintext, key.key_id))[0]
            assert got == 500
            # AND Stripe delivers a signed event, then one with a bad signature, and the worker processes it
            raw = encode(invoice_paid(invoice_id="in_secrets_1"))
            for header in (sign(raw, webhook_secret), sign(raw, "whsec_wrong_" + secrets.token_hex(8))):
                signatures.append(header)
                delivery = api_event("POST", "/webhooks/stripe", raw_body=raw.decode("utf-8"), scopes=None)
                delivery["headers"]["Stripe-Signature"] = header
                call(stripe_webhook, delivery)
            assert drain(stripe_worker, queue_url("StripeEventsQueue"), batch_size=10) >= 1
            # AND the invoice is pushed to Stripe with the API key
            boto3.client("sqs").send_message(
                QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"invoice_id": "in_secrets_1"})
            )
            assert drain(stripe_sync, queue_url("StripeSyncQueue"), batch_size=5) >= 1
            assert fake.invoices, "the sync reached the fake Stripe with the API key"
            logger.info("scenario finished", extra={"key_id": key.key_id})
    finally:
        from neruba.logic.stripe.secrets import clear_cache

        clear_cache()
        stack.close()
    text = result.text(capfd.readouterr())

    # THEN the capture works: the marker, the public key id and the error paths' own lines are in it
    assert "scenario finished" in text and key.key_id in text
    assert "stripe webhook rejected" in text and "unhandled error" in text
    # AND no secret appears anywhere in it
    leaks = {
        "API key": plaintext,
        "API key secret part": key_secret,
        "webhook secret": webhook_secret,
        "Stripe API key": stripe_api_key,
        **{f"Stripe-Signature header {i}": header for i, header in enumerate(signatures)},
        **{f"signature {i}": header.split("v1=", 1)[1] for i, header in enumerate(signatures)},
    }
    found = sorted(name for name, value in leaks.items() if value in text)
    assert found == [], f"secrets in the logs: {found}"
