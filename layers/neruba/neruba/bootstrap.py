"""The composition root: what each process works with, built from the settings once, on first use.

Handlers and routes ask here for their collaborators instead of building them (or caching them in module
globals) themselves:

- :func:`billing`: the billing context (repositories, pricing, credits, ledger postings, the grace period);
- :func:`stripe_effects`, :func:`invoice_source` and :func:`stripe_processor`: what Stripe processing and
  sync post through and read from;
- :func:`ingest_api_catalog`, :func:`ingest_worker_catalog`: the per-process catalog caches of ingest
  (meters change rarely; each cache keeps entries for its TTL);
- :func:`plans`, :func:`invoices`, :func:`usage`, :func:`stripe_events`, :func:`ops`: the repositories the
  routes read and write.

Each part is built lazily (a function pays at cold start only for what it uses: the modules are imported
inside the builders) and kept until :func:`reset`, which forgets every part, the settings and the boto3
clients. Tests hand in a replacement with :func:`install` (``install(billing=ctx)``) and call
:func:`reset` between tests.

Example:
    >>> from neruba import bootstrap
    >>> bootstrap.billing() is bootstrap.billing()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from datetime import timedelta

    from neruba.dal.catalog import CatalogCache
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.ops import OpsRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.stripe_events import StripeEventsRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.stripe.ledger_effects import LedgerEffects, RepositoryInvoiceSource
    from neruba.logic.stripe.processing import Processor
    from neruba.logic.webhooks.context import Webhooks
    from neruba.settings import Settings

T = TypeVar("T")
_parts: dict[str, Any] = {}
_lock = threading.RLock()  # builders call each other (the processor asks for the effects)

PARTS = (
    "billing",
    "stripe_effects",
    "invoice_source",
    "stripe_processor",
    "ingest_api_catalog",
    "ingest_worker_catalog",
    "plans",
    "invoices",
    "usage",
    "stripe_events",
    "ops",
    "webhooks",
)


def _part(name: str, build: Callable[[], T]) -> T:
    found = _parts.get(name)
    if found is not None:
        return found  # type: ignore[no-any-return]
    with _lock:
        if name not in _parts:
            _parts[name] = build()
        return _parts[name]  # type: ignore[no-any-return]


def install(**parts: Any) -> None:
    """Use these objects for the named parts (tests): ``install(billing=ctx, stripe_effects=effects)``.

    An unknown name is an error, so a misspelt replacement cannot pass unnoticed.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise KeyError(f"no such part: {', '.join(unknown)}")
    with _lock:
        _parts.update(parts)


def reset() -> None:
    """Forget every part, the cached settings and the boto3 clients (a new environment, a new test)."""
    from neruba.dal.clients import reset_clients
    from neruba.settings import get_settings

    with _lock:
        _parts.clear()
    reset_clients()
    get_settings.cache_clear()


# ------------------------------------------------------------------------------------------ billing
def billing() -> Billing:
    """The billing context on the configured tables, with the real pricing, credits and ledger."""
    return _part("billing", _build_billing)


def late_events_horizon(settings: Settings) -> timedelta:
    """How long after a period ends billing still re-rates it: a day more than ingest accepts events."""
    from datetime import timedelta

    return timedelta(days=settings.ingest_max_age_days + 1)


def _build_billing() -> Billing:
    from datetime import timedelta

    from neruba.dal.billing import BillingRepository
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.billing.context import Billing
    from neruba.settings import get_settings

    settings = get_settings()
    return Billing(
        billing=BillingRepository(settings.billing_table),
        invoices=InvoicesRepository(settings.billing_table),
        plans=plans(),
        usage=UsageRepository(settings.usage_table),
        ledger=LedgerRepository(settings.ledger_table),
        grace=timedelta(seconds=settings.billing_grace_seconds),
        late_events=late_events_horizon(settings),
        ops_table=settings.ops_table,
        billing_queue_url=settings.billing_queue_url,
        sync_queue_url=settings.stripe_sync_queue_url,
        catalog_table=settings.catalog_table,
    )


# ------------------------------------------------------------------------------------------- stripe
def stripe_effects() -> LedgerEffects:
    """What Stripe events post: payments, refunds, disputes on the ledger, invoice statuses."""
    from neruba.logic.stripe.ledger_effects import LedgerEffects

    return _part("stripe_effects", LedgerEffects)


def invoice_source() -> RepositoryInvoiceSource:
    """Where Stripe sync reads invoices and customers and stores its sync record."""
    from neruba.logic.stripe.ledger_effects import RepositoryInvoiceSource

    return _part("invoice_source", RepositoryInvoiceSource)


def stripe_processor() -> Processor:
    """The processor of stored Stripe events: the effects above, deferred events woken via the queue."""
    return _part("stripe_processor", _build_processor)


def _build_processor() -> Processor:
    from neruba.logic.stripe.processing import Processor
    from neruba.logic.stripe.secrets import configured_mode
    from neruba.logic.stripe.worker import queue_events

    return Processor(stripe_events(), stripe_effects(), queue_events, configured_mode)


# ------------------------------------------------------------------------------------------- ingest
def ingest_api_catalog() -> CatalogCache:
    """The catalog cache of ``POST /v1/events`` (meters, for validation)."""
    return _part("ingest_api_catalog", _catalog_cache)


def ingest_worker_catalog() -> CatalogCache:
    """The catalog cache of the ingest worker (customers and meters)."""
    return _part("ingest_worker_catalog", _catalog_cache)


def _catalog_cache() -> CatalogCache:
    from neruba.dal.catalog import CatalogCache, CatalogRepository
    from neruba.settings import get_settings

    return CatalogCache(CatalogRepository(get_settings().catalog_table))


# ------------------------------------------------------------------------------------- repositories
def plans() -> PlansRepository:
    """Customers, meters, plans and subscriptions (the catalog table)."""

    def build() -> PlansRepository:
        from neruba.dal.plans import PlansRepository
        from neruba.settings import get_settings

        return PlansRepository(get_settings().catalog_table)

    return _part("plans", build)


def invoices() -> InvoicesRepository:
    """Invoices (the billing table)."""

    def build() -> InvoicesRepository:
        from neruba.dal.invoices import InvoicesRepository
        from neruba.settings import get_settings

        return InvoicesRepository(get_settings().billing_table)

    return _part("invoices", build)


def usage() -> UsageRepository:
    """Events, aggregates and outcome counters (the usage table)."""

    def build() -> UsageRepository:
        from neruba.dal.usage import UsageRepository
        from neruba.settings import get_settings

        return UsageRepository(get_settings().usage_table)

    return _part("usage", build)


def stripe_events() -> StripeEventsRepository:
    """Stored Stripe events (the ops table)."""

    def build() -> StripeEventsRepository:
        from neruba.dal.stripe_events import StripeEventsRepository
        from neruba.settings import get_settings

        return StripeEventsRepository(get_settings().ops_table)

    return _part("stripe_events", build)


def ops() -> OpsRepository:
    """Sweep reports and operator records (the ops table)."""

    def build() -> OpsRepository:
        from neruba.dal.ops import OpsRepository
        from neruba.settings import get_settings

        return OpsRepository(get_settings().ops_table)

    return _part("ops", build)


def webhooks() -> Webhooks:
    """Outgoing webhooks: endpoints, events and deliveries in the ops table, the delivery queue."""

    def build() -> Webhooks:
        from neruba.dal.billing import BillingRepository
        from neruba.dal.webhooks import WebhooksRepository
        from neruba.logic.webhooks.context import Webhooks
        from neruba.settings import get_settings

        settings = get_settings()
        return Webhooks(
            repo=WebhooksRepository(settings.ops_table),
            queue_url=settings.webhook_delivery_queue_url,
            stage=settings.stage,
            ops_table=settings.ops_table,
            idempotency=BillingRepository(settings.billing_table),
        )

    return _part("webhooks", build)
