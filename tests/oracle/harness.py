"""The oracle's hands: real API handlers and workers on in-process moto, with the checks every call gets.

Every API call goes through the Lambda handler that serves its route in template.yaml; every answer is
checked for the promises that hold whatever the input (never a 5xx; every error in the one error shape with
a machine-readable code). Workers are fed their queues the way Lambda's event source mapping does
(tests.support.queues), billing runs on an injected clock (the way tests/functional/billing does).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from tests.support.api import api_event
from tests.support.aws import queue_url
from tests.support.queues import receive_batch, run_batch

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRun

ROUTES: list[tuple[str, str, str]] = [  # (method, path pattern, function) as template.yaml routes them
    ("POST", r"/v1/events", "ingest_api"),
    ("GET", r"/v1/.*", "read_api"),
    ("POST", r"/v1/(customers|meters|plans|subscriptions)(/.*)?", "admin_api"),
    ("PATCH", r"/v1/customers/.*", "admin_api"),
    ("POST", r"/admin/events/[^/]+/(void|amend)", "admin_api"),
    ("GET", r"/v1/customers/[^/]+/(balance|ledger|credit-grants)", "ledger_api"),
    ("POST", r"/admin/(customers|credit-grants|disputes)/.*", "ledger_api"),
    ("GET", r"/v1/invoices(/.*)?", "billing_api"),
    ("POST", r"/admin/(billing-runs|invoices/.*)", "billing_api"),
    ("GET", r"/admin/billing-runs(/.*)?", "billing_api"),
    ("POST", r"/admin/sweeps", "ops_api"),
    ("GET", r"/admin/sweeps(/.*)?", "ops_api"),
    ("POST", r"/webhooks/stripe", "stripe_webhook"),
    ("GET", r"/admin/stripe-events(/.*)?", "stripe_admin_api"),
    ("POST", r"/admin/stripe-events/.*", "stripe_admin_api"),
]
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{2,63}$")


STATS: Counter[str] = Counter()  # figures of a run (steps, operations, invariants checked) for the docs
# Writes so far: API calls other than reads, worker invocations, scheduler runs. The books and the DLQs
# change only through one of them, so an invariant over them need not look again while this stands still.
WRITES: list[int] = [0]


def wrote() -> None:
    WRITES[0] += 1


class Killed(BaseException):
    """A simulated Lambda kill (not an Exception: nothing in the code under test catches it)."""


class BrokenPromise(AssertionError):
    """An answer that breaks a promise holding for every input (5xx, error shape)."""


def _handler(method: str, path: str) -> Any:
    import importlib

    # the most specific pattern first: ledger reads live under /v1/customers too
    for want, pattern, function in sorted(ROUTES, key=lambda r: -len(r[1])):
        if want == method and re.fullmatch(pattern, path):
            return importlib.import_module(f"functions.{function}.app").lambda_handler
    raise LookupError(f"no route for {method} {path}")


def encode(value: Any) -> str:
    """JSON with Decimals written exactly as given (``1e400`` stays ``1e400``): the client's bytes."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


def decode(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


@dataclass
class Answer:
    status: int
    body: Any
    method: str
    path: str

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None

    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Api:
    """Counts what it did; raises BrokenPromise on a 5xx or a malformed error."""

    calls: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    errors_4xx: int = 0

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        scopes: str = "ingest read admin",
    ) -> Answer:
        raw = None if body is None else encode(body)
        event = api_event(method, path, raw_body=raw, query=query, headers=headers, scopes=scopes)
        if raw is None:
            event["body"] = None
        return self._answer(method, path, event, raw)

    def webhook(self, raw: bytes, signature: str | None) -> Answer:
        """A Stripe delivery: no API key, the raw bytes as sent, ``Stripe-Signature`` when given."""
        event = api_event("POST", "/webhooks/stripe", raw_body=raw.decode("utf-8"), scopes=None)
        event["headers"].pop("Authorization", None)
        if signature is not None:
            event["headers"]["Stripe-Signature"] = signature
        return self._answer("POST", "/webhooks/stripe", event, raw.decode("utf-8"))

    def _answer(self, method: str, path: str, event: dict[str, Any], raw: str | None) -> Answer:
        status, parsed = exact_call(_handler(method, path), event)
        self.calls += 1
        if method != "GET":
            wrote()
        key = f"{method} {re.sub(r'/(sub|in|cg|run|swp|dsp|dp|evt)_[0-9a-z_]+', '/{id}', path)}"
        self.by_route[key] = self.by_route.get(key, 0) + 1
        answer = Answer(status, parsed, method, path)
        if status >= 500:
            raise BrokenPromise(f"{method} {path} answered {status}: {parsed!r} (body {raw!r})")
        if status >= 400:
            self.errors_4xx += 1
            if not answer.code or not ERROR_CODE.match(answer.code) or "request_id" not in parsed["error"]:
                raise BrokenPromise(f"{method} {path} answered {status} outside the error shape: {parsed!r}")
        return answer


def exact_call(handler: Any, event: dict[str, Any]) -> tuple[int, Any]:
    """Invoke an API handler; the body parsed with exact decimals (tests.support.api.call reads floats)."""
    from tests.support.lambda_context import FakeContext

    response = handler(event, FakeContext())
    text = response.get("body") or ""
    try:
        return response["statusCode"], decode(text)
    except ValueError:
        return response["statusCode"], text


# ---------------------------------------------------------------- workers and queues
INGEST_QUEUE, INGEST_DLQ = "IngestQueue", "IngestDLQ"
BILLING_QUEUE, BILLING_DLQ = "BillingQueue", "BillingDLQ"


def ingest_worker() -> Any:
    from functions.ingest_worker import app

    return app.lambda_handler


def drain(handler: Any, queue: str, batch_size: int, limit: int = 200) -> int:
    """Feed ``queue`` to ``handler`` until it is empty (failing messages reach the DLQ after 5 receives)."""
    url = queue_url(queue)
    wrote()
    for count in range(limit):
        messages = receive_batch(url, batch_size)
        if not messages:
            return count
        run_batch(handler, url, messages)
    raise AssertionError(f"{queue} did not drain")


def one_batch(handler: Any, queue: str, batch_size: int) -> None:
    """One invocation of ``handler`` with what the queue holds (it may die; SQS then redelivers)."""
    url = queue_url(queue)
    wrote()
    messages = receive_batch(url, batch_size)
    if messages:
        run_batch(handler, url, messages)


def dlq_messages(queue: str) -> list[dict[str, Any]]:
    """Every message of ``queue``, left in place (a cheap count first: most of the time it is empty)."""
    from neruba.dal.queues import peek

    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    if not any(int(v) for v in attributes.values()):
        return []
    return list(peek(sqs, queue_url(queue)))


def redrive(dlq: str, queue: str) -> int:
    from neruba.dal.queues import move_messages

    if not dlq_messages(dlq):
        return 0
    result = move_messages(boto3.client("sqs"), queue_url(dlq), queue_url(queue))
    return len(result.moved)


@contextmanager
def patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def killing_once(original: Callable[..., Any], *, after: bool = False) -> Callable[..., Any]:
    """``original`` that dies on its first call (before it runs, or after it ran), then works."""
    state = {"armed": True}

    def dies(*args: Any, **kwargs: Any) -> Any:
        if state["armed"]:
            state["armed"] = False
            if after:
                original(*args, **kwargs)
            raise Killed("killed between writes")
        return original(*args, **kwargs)

    return dies


# ---------------------------------------------------------------- billing on an injected clock
def billing_run(now: datetime) -> BillingRun:
    """What the scheduled BillingSchedulerFunction does, at ``now``."""
    from neruba import bootstrap
    from neruba.dal.locks import LockRepository
    from neruba.logic.billing.scheduler import RunOptions, run_billing
    from neruba.settings import get_settings

    wrote()
    return run_billing(
        bootstrap.billing(),
        LockRepository(get_settings().billing_table),
        bootstrap.plans(),
        RunOptions(trigger="schedule", clock=lambda: now),
    )


def billing_work(now: datetime) -> int:
    from functions.billing_worker import app

    with patched(app, "clock", lambda: now):
        return drain(app.lambda_handler, BILLING_QUEUE, 10)


def fresh_containers() -> None:
    """Every function's per-container state forgotten (a new moto account behind them): the billing
    contexts, catalog caches, repositories, clients and settings of the composition root."""
    from neruba import bootstrap

    bootstrap.reset()


# ---------------------------------------------------------------- Stripe: the fake API, sync-out, events
STRIPE_SECRET = "whsec_oracle"
STRIPE_PARAMETER = "/neruba/stripe"  # NERUBA_STRIPE_SECRET_NAME of the test environment
FAKE_STRIPE: list[Any] = []  # the one FakeStripe of the run (tests/oracle/conftest.py starts it)


def fresh_stripe() -> None:
    """The Stripe parameter in the new moto account, the secret cache and the fake's objects forgotten."""
    from neruba.logic.stripe.secrets import clear_cache

    boto3.client("ssm").put_parameter(
        Name=STRIPE_PARAMETER,
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps({"api_key": "sk_test_oracle", "webhook_secrets": [STRIPE_SECRET]}),
    )
    clear_cache()
    for fake in FAKE_STRIPE:
        fake.reset()


def stripe_sync() -> None:
    """StripeSyncFunction fed StripeSyncQueue until it is empty (finalized invoices pushed to the fake)."""
    from functions.stripe_sync.app import lambda_handler

    drain(lambda_handler, "StripeSyncQueue", 10)


def stripe_work() -> None:
    """StripeWorkerFunction fed StripeEventsQueue until it is empty."""
    from functions.stripe_worker.app import lambda_handler

    drain(lambda_handler, "StripeEventsQueue", 10)


def stripe_invoice(invoice_id: str) -> dict[str, Any] | None:
    """The fake Stripe's invoice made for ours (by the metadata sync-out writes), or None."""
    found = [
        i for i in FAKE_STRIPE[0].invoices.values() if i["metadata"].get("neruba_invoice_id") == invoice_id
    ]
    assert len(found) <= 1, f"{invoice_id} has {len(found)} Stripe invoices"
    return dict(found[0]) if found else None


def signed(
    payload: dict[str, Any], *, secret: str = STRIPE_SECRET, at: int | None = None
) -> tuple[bytes, str]:
    """The bytes of a Stripe event as Stripe formats them, and their Stripe-Signature header."""
    from tests.support.stripe_events import encode as stripe_bytes
    from tests.support.stripe_events import sign

    raw = stripe_bytes(payload)
    return raw, sign(raw, secret, at)
