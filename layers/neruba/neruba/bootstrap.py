"""The composition root: what each process works with, built from the settings once, on first use.

Handlers and routes ask here for their collaborators instead of building them (or caching them in module
globals) themselves:

- :func:`billing`: the billing context (repositories, pricing, credits, ledger postings, the grace period);
- :func:`stripe_effects`, :func:`invoice_source` and :func:`stripe_processor`: what Stripe processing and
  sync post through and read from;
- :func:`ingest_api_catalog`, :func:`ingest_worker_catalog`: the per-process catalog caches of ingest
  (meters change rarely; each cache keeps entries for its TTL);
- :func:`plans`, :func:`catalog`, :func:`invoices`, :func:`billing_records`, :func:`locks`, :func:`usage`,
  :func:`ledger`, :func:`payments`, :func:`disputes`, :func:`top_ups`, :func:`stripe_events`, :func:`ops`,
  :func:`audit`, :func:`keys`: the repositories, one per process and table (``_REPOSITORIES``);
- :func:`dead_letters`: the dead-letter queues the settings name (``/admin/dlqs``).

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
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from datetime import timedelta

    from neruba.dal.audit import AuditRepository
    from neruba.dal.billing import BillingRepository
    from neruba.dal.catalog import CatalogCache, CatalogRepository
    from neruba.dal.dead_letters import DeadLetterQueues
    from neruba.dal.disputes import DisputesRepository
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.keys import KeysRepository
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.limits import LimitsRepository
    from neruba.dal.locks import LockRepository
    from neruba.dal.ops import OpsRepository
    from neruba.dal.payments import PaymentsRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.stripe_events import StripeEventsRepository
    from neruba.dal.top_ups import TopUpRepository
    from neruba.dal.usage import UsageRepository
    from neruba.dal.voids import VoidsRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.limits.balance import BalanceWatches
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
    "catalog",
    "invoices",
    "billing_records",
    "locks",
    "usage",
    "limits",
    "ledger",
    "payments",
    "disputes",
    "top_ups",
    "stripe_events",
    "ops",
    "audit",
    "keys",
    "voids",
    "webhooks",
    "dead_letters",
    "markers_seen",
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

    from neruba.logic.billing.context import Billing
    from neruba.settings import get_settings

    settings = get_settings()
    return Billing(
        billing=billing_records(),
        invoices=invoices(),
        plans=plans(),
        usage=usage(),
        ledger=ledger(),
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

    return _part("stripe_effects", lambda: LedgerEffects(ledger(), invoices()))


def invoice_source() -> RepositoryInvoiceSource:
    """Where Stripe sync reads invoices and customers and stores its sync record."""
    from neruba.logic.stripe.ledger_effects import RepositoryInvoiceSource

    return _part("invoice_source", lambda: RepositoryInvoiceSource(invoices(), catalog()))


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
    """The ingest worker's catalog reads (customers and meters): never cached, strongly consistent, so
    what changed since the request (an archive, a meter change) decides each batch."""

    def build() -> CatalogCache:
        from neruba.dal.catalog import CatalogCache

        return CatalogCache(catalog(), ttl_seconds=0, consistent=True)

    return _part("ingest_worker_catalog", build)


def _catalog_cache() -> CatalogCache:
    from neruba.dal.catalog import CatalogCache

    return CatalogCache(catalog())


# ------------------------------------------------------------------------------------- repositories
# part -> (module, class, the settings field naming its table)
_REPOSITORIES = {
    "plans": ("neruba.dal.plans", "PlansRepository", "catalog_table"),
    "catalog": ("neruba.dal.catalog", "CatalogRepository", "catalog_table"),
    "invoices": ("neruba.dal.invoices", "InvoicesRepository", "billing_table"),
    "billing_records": ("neruba.dal.billing", "BillingRepository", "billing_table"),
    "locks": ("neruba.dal.locks", "LockRepository", "billing_table"),
    "usage": ("neruba.dal.usage", "UsageRepository", "usage_table"),
    "ledger": ("neruba.dal.ledger", "LedgerRepository", "ledger_table"),
    "payments": ("neruba.dal.payments", "PaymentsRepository", "ledger_table"),
    "disputes": ("neruba.dal.disputes", "DisputesRepository", "ledger_table"),
    "top_ups": ("neruba.dal.top_ups", "TopUpRepository", "ledger_table"),
    "stripe_events": ("neruba.dal.stripe_events", "StripeEventsRepository", "ops_table"),
    "ops": ("neruba.dal.ops", "OpsRepository", "ops_table"),
    "audit": ("neruba.dal.audit", "AuditRepository", "ops_table"),
    "keys": ("neruba.dal.keys", "KeysRepository", "keys_table"),
    "voids": ("neruba.dal.voids", "VoidsRepository", "usage_table"),
}


def _repository(name: str) -> Any:
    """The repository part ``name`` on its configured table (its module imported on first use)."""

    def build() -> Any:
        from importlib import import_module

        from neruba.settings import get_settings

        module, cls, table = _REPOSITORIES[name]
        return getattr(import_module(module), cls)(getattr(get_settings(), table))

    return _part(name, build)


def plans() -> PlansRepository:
    """Customers, meters, plans and subscriptions (the catalog table)."""
    return cast("PlansRepository", _repository("plans"))


def catalog() -> CatalogRepository:
    """Customers and meters (the catalog table)."""
    return cast("CatalogRepository", _repository("catalog"))


def invoices() -> InvoicesRepository:
    """Invoices (the billing table)."""
    return cast("InvoicesRepository", _repository("invoices"))


def billing_records() -> BillingRepository:
    """Billing state, runs and adjustments (the billing table)."""
    return cast("BillingRepository", _repository("billing_records"))


def locks() -> LockRepository:
    """Billing locks (the billing table)."""
    return cast("LockRepository", _repository("locks"))


def usage() -> UsageRepository:
    """Events, aggregates and outcome counters (the usage table)."""
    return cast("UsageRepository", _repository("usage"))


def limits() -> LimitsRepository:
    """Usage limit settings (catalog table) and period counters (usage table)."""

    def build() -> LimitsRepository:
        from neruba.dal.limits import LimitsRepository
        from neruba.settings import get_settings

        settings = get_settings()
        return LimitsRepository(settings.usage_table, settings.catalog_table)

    return _part("limits", build)


def markers_seen() -> set[str]:
    """The one-off markers (``MARK#{name}``, billing table) this process found set: a marker is never
    removed, so it is looked for until found, then remembered."""
    return _part("markers_seen", set)


def balance_watches() -> BalanceWatches:
    """A new reader of customers' balance watches for one void or one expiry run (its flags are read
    afresh; the markers found are the process's)."""
    from neruba.logic.limits.balance import BalanceWatches

    return BalanceWatches(limits(), billing_records(), markers_seen())


def ledger() -> LedgerRepository:
    """Postings, balances and credit grants (the ledger table)."""
    return cast("LedgerRepository", _repository("ledger"))


def payments() -> PaymentsRepository:
    """Payment records (the ledger table)."""
    return cast("PaymentsRepository", _repository("payments"))


def disputes() -> DisputesRepository:
    """Disputes (the ledger table)."""
    return cast("DisputesRepository", _repository("disputes"))


def top_ups() -> TopUpRepository:
    """Auto top-up rules and requests (the ledger table)."""
    return cast("TopUpRepository", _repository("top_ups"))


def stripe_events() -> StripeEventsRepository:
    """Stored Stripe events (the ops table)."""
    return cast("StripeEventsRepository", _repository("stripe_events"))


def ops() -> OpsRepository:
    """Sweep reports and operator records (the ops table)."""
    return cast("OpsRepository", _repository("ops"))


def audit() -> AuditRepository:
    """Operator audit records (the ops table)."""
    return cast("AuditRepository", _repository("audit"))


def keys() -> KeysRepository:
    """API keys (the keys table)."""
    return cast("KeysRepository", _repository("keys"))


def voids() -> VoidsRepository:
    """Voided and amended events: open voids and each customer's voids (the usage table)."""
    return cast("VoidsRepository", _repository("voids"))


def webhooks() -> Webhooks:
    """Outgoing webhooks: endpoints, events and deliveries in the ops table, the delivery queue."""

    def build() -> Webhooks:
        from neruba.dal.webhooks import WebhooksRepository
        from neruba.logic.webhooks.context import Webhooks
        from neruba.settings import get_settings

        settings = get_settings()
        return Webhooks(
            repo=WebhooksRepository(settings.ops_table),
            queue_url=settings.webhook_delivery_queue_url,
            stage=settings.stage,
            ops_table=settings.ops_table,
            idempotency=billing_records(),
        )

    return _part("webhooks", build)


def dead_letters() -> DeadLetterQueues:
    """The dead-letter queues of ``NERUBA_DEAD_LETTER_QUEUES`` (none when it is unset)."""

    def build() -> DeadLetterQueues:
        from neruba.dal.dead_letters import DeadLetterQueues, parse_queues
        from neruba.settings import get_settings

        return DeadLetterQueues(parse_queues(get_settings().dead_letter_queues))

    return _part("dead_letters", build)
