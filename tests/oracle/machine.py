"""The oracle's state machine: random sequences of catalog set-up, ingest, subscriptions, credits, billing,
sweeps, redrives and crashes through the real handlers and workers, checked against tests.oracle.model.

Figures of a run (steps, operations, invariants checked) are added to ``STATS`` for the docs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.oracle import harness as h
from tests.oracle.corrections import CorrectionRules
from tests.oracle.model import (
    INTERVALS,
    METERS,
    Charge,
    MeterSpec,
    Phase,
    PlanVersion,
    Subscription,
    Usage,
    api_takes,
    as_number,
    canonical,
    hour_of,
    negative,
    parse_time,
    rate_window,
    storable,
)
from tests.oracle.payments import Money, PaymentRules

STATS = h.STATS
CUSTOMERS = {"c0": "USD", "c1": "USD", "c2": "JPY"}  # "ghost" is never created
PLANS = ("p0", "p1", "p2", "p3")
TX_POOL = 8
GRACE = timedelta(seconds=3600)
MAX_AHEAD = timedelta(days=40)
# monthly plans first (examples shrink towards them) and three times as often as each other interval (a
# daily plan bills up to 75 windows in an example)
PLAN_INTERVALS = ("month", "month", "month", *(i for i in INTERVALS if i != "month"))


# ---------------------------------------------------------------- strategies
def _values() -> st.SearchStrategy[Any]:
    plain = st.one_of(
        st.integers(0, 1000),
        st.sampled_from([Decimal("0.000001"), Decimal("12.5"), Decimal("0"), 10**20, Decimal("0.75")]),
        st.sampled_from(["42", "abc", "", "NaN", True, False]),
        st.sampled_from([10**38 + 7, Decimal("1." + "0" * 37 + "1")]),  # 39 digits: refused by the API
        st.sampled_from([None, [1], {"a": 1}]),  # wrong types: refused by the API
    )
    # docs/limits.md, 'Numbers' (issue 14.1): storable at the edges (38 digits, 1E+40), out of range or too
    # precise as numbers and as numeric text
    plain = st.one_of(
        plain,
        st.sampled_from(
            [10**37 + 3, 9 * 10**37, Decimal("1e400"), Decimal("1e-400"), "1e400", "1e-400", "9" * 40]
        ),
        st.just(Decimal("1E+40")),
    )
    # docs/limits.md, 'Negative values' (issue 14.4): refused on meters that do not allow them
    plain = st.one_of(plain, st.sampled_from(["-10", -10, Decimal("-0.5")]))
    return plain


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    meter = draw(st.sampled_from([*METERS, *METERS, "calls", "tokens", "nometer"]))
    spec = METERS.get(meter)
    properties: dict[str, Any] = {}
    if spec and spec.field and draw(st.integers(0, 9)) > 0:
        properties[spec.field] = draw(_values())
    if spec and spec.group_by:
        properties["model"] = draw(st.sampled_from(["a", "b"]))
    age = draw(
        st.one_of(
            st.integers(0, 34 * 86400),
            st.sampled_from([-3600, 36 * 86400]),  # in the future, too old: refused
        )
    )
    return {
        "transaction_id": f"t{draw(st.integers(0, TX_POOL - 1))}",
        "customer_id": draw(st.sampled_from(["c0", "c0", "c0", *CUSTOMERS, "ghost"])),
        "code": meter,
        "age": age,
        "properties": properties,
    }


@st.composite
def charges(draw: st.DrawFn, meter: str) -> Charge:
    model = draw(st.sampled_from(["per_unit", "graduated", "volume", "package"]))
    price = st.sampled_from(
        [Decimal("0.5"), Decimal("1"), Decimal("0.00025"), Decimal("2.345"), Decimal("0")]
    )
    free = draw(st.sampled_from([Decimal(0), Decimal(0), Decimal(5), Decimal("0.5")]))
    if model == "per_unit":
        return Charge(meter, model, unit_price=draw(price), free_units=free)
    if model == "package":
        return Charge(
            meter,
            model,
            package_size=draw(st.sampled_from([1, 10, 1000])),
            package_price=draw(price),
            free_units=free,
        )
    bounds = sorted(
        set(
            draw(
                st.lists(st.sampled_from([Decimal(1), Decimal(10), Decimal(100), Decimal("2.5")]), max_size=2)
            )
        )
    )
    tiers = tuple((b, draw(price), draw(st.sampled_from([Decimal(0), Decimal("5")]))) for b in bounds)
    return Charge(
        meter,
        model,
        tiers=(*tiers, (None, draw(price), draw(st.sampled_from([Decimal(0), Decimal("1.5")])))),
        free_units=free,
    )


# ---------------------------------------------------------------- the machine
@dataclass
class Stored:
    status: str
    payload: dict[str, Any] | None


@dataclass
class World:
    now0: datetime
    clock: datetime
    customers: set[str] = field(default_factory=set)
    meters: set[str] = field(default_factory=set)
    plans: dict[str, PlanVersion] = field(default_factory=dict)
    subs: dict[str, Subscription] = field(default_factory=dict)
    events: dict[tuple[str, str], Stored] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {status, expected}
    granted: dict[str, int] = field(default_factory=dict)
    last_batch: list[dict[str, Any]] = field(default_factory=list)
    money: Money = field(default_factory=Money)
    unbilled: set[str] = field(default_factory=set)  # subscriptions created since the last billing run
    looked: dict[str, int] = field(default_factory=dict)  # invariant -> harness.WRITES when it last looked
    voided: set[tuple[str, str, datetime]] = field(default_factory=set)  # (customer, meter, hour) voided in


class Oracle(PaymentRules, CorrectionRules, RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from tests.oracle.conftest import fresh_world

        fresh_world()
        h.fresh_containers()
        # the model's "now", on the hour: stable while an example is replayed or shrunk (the API's own
        # clock moves on; everything the model derives from it stays within the hour)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.api = h.Api()
        self.w = World(now0=now, clock=now)
        STATS["examples"] += 1

    def teardown(self) -> None:
        STATS["operations"] += self.api.calls
        STATS["rejected_4xx"] += self.api.errors_4xx

    def _step(self, name: str) -> None:
        STATS["steps"] += 1
        STATS[f"rule:{name}"] += 1

    def _check(self, name: str, ok: bool, message: str) -> None:
        STATS["invariants_checked"] += 1
        assert ok, f"[{name}] {message}"

    # ------------------------------------------------------------ catalog
    @initialize(
        data=st.data(),
        meters=st.lists(st.sampled_from(sorted(METERS)), unique=True, min_size=2),
        customers=st.lists(st.sampled_from(["c0", "c0", "c1", "c2"]), unique=True, min_size=1),
    )
    def set_up(self, data: st.DataObject, meters: list[str], customers: list[str]) -> None:
        """A catalog to start from (the rules below add to it, or try to)."""
        for meter in meters:
            self.create_meter(meter)
        for customer in customers:
            self.create_customer(customer, False)
        self.create_plan(data, "p0", CUSTOMERS[customers[0]], pool=sorted(meters))
        self.subscribe(
            customers[0], "p0", data.draw(st.integers(0, 34)), data.draw(st.integers(0, 23)), False
        )

    @rule(
        kind=st.sampled_from(["customer", "meter", "sweep", "redrive"]),
        customer=st.sampled_from(sorted(CUSTOMERS)),
        meter=st.sampled_from(sorted(METERS)),
        bad_currency=st.booleans(),
    )
    def operate(self, kind: str, customer: str, meter: str, bad_currency: bool) -> None:
        """The rarer operations, one rule (so that ingest and billing get most of the steps)."""
        if kind == "customer":
            self.create_customer(customer, bad_currency)
        elif kind == "meter":
            self.create_meter(meter)
        elif kind == "sweep":
            self.sweep()
        else:
            self.redrive()

    def create_customer(self, customer: str, bad_currency: bool) -> None:
        self._step("create_customer")
        body = {
            "external_id": customer,
            "name": customer.upper(),
            "currency": "XXX" if bad_currency else CUSTOMERS[customer],
        }
        answer = self.api("POST", "/v1/customers", body)
        if bad_currency:
            self._check("invalid_input", 400 <= answer.status < 500, f"bad currency answered {answer.status}")
            return
        if customer in self.w.customers:
            self._check("invalid_input", answer.status == 409, f"second create answered {answer.status}")
            return
        self._check(
            "valid_input", answer.status == 201, f"create customer answered {answer.status} {answer.body}"
        )
        self.w.customers.add(customer)

    def create_meter(self, meter: str) -> None:
        self._step("create_meter")
        answer = self.api("POST", "/v1/meters", METERS[meter].body())
        if meter in self.w.meters:
            self._check("invalid_input", answer.status == 409, f"second meter answered {answer.status}")
            return
        self._check(
            "valid_input", answer.status == 201, f"create meter answered {answer.status} {answer.body}"
        )
        self.w.meters.add(meter)

    @rule(data=st.data(), code=st.sampled_from(PLANS), currency=st.sampled_from(["USD", "USD", "JPY"]))
    def create_plan(
        self, data: st.DataObject, code: str, currency: str, pool: list[str] | None = None
    ) -> None:
        self._step("create_plan")
        pool = pool or sorted(METERS)
        meters = data.draw(
            st.lists(st.sampled_from(pool), unique=True, min_size=1 if pool else 0, max_size=3)
        )
        fee = data.draw(st.sampled_from([None, Decimal("30"), Decimal("31.00"), Decimal("9.99")]))
        plan = PlanVersion(
            code=code,
            currency=currency,
            fee=fee,
            timing=data.draw(st.sampled_from(["advance", "arrears"])),
            minimum=data.draw(st.sampled_from([None, None, Decimal("40"), Decimal("0.5")])),
            charges=tuple(data.draw(charges(m)) for m in meters),
            interval=data.draw(st.sampled_from(PLAN_INTERVALS)),
        )
        answer = self.api("POST", "/v1/plans", plan.body())
        unknown = plan.meters() - self.w.meters
        if code in self.w.plans and not unknown:
            self._check("invalid_input", answer.status == 409, f"second plan answered {answer.status}")
        elif unknown:
            self._check(
                "invalid_input",
                400 <= answer.status < 500,
                f"plan on unknown meters answered {answer.status}",
            )
        else:
            self._check(
                "valid_input", answer.status == 201, f"create plan answered {answer.status} {answer.body}"
            )
            self.w.plans[code] = plan
        if answer.status >= 400:
            self._check(
                "no_partial_write",
                self.api("GET", f"/v1/plans/{code}").status == (200 if code in self.w.plans else 404),
                "refused plan was stored",
            )

    # ------------------------------------------------------------ ingest
    @rule(
        batch=st.lists(events(), min_size=1, max_size=8),
        crash=st.sampled_from([None, None, "count", "after_count"]),
    )
    def ingest(self, batch: list[dict[str, Any]], crash: str | None) -> None:
        self._step("ingest")
        now = datetime.now(UTC)
        sent = []
        for spec in batch:
            event = {k: spec[k] for k in ("transaction_id", "customer_id", "code", "properties")}
            event["timestamp"] = (self.w.now0 - timedelta(seconds=spec["age"])).isoformat()
            if spec["age"] < 0:
                event["timestamp"] = (now - timedelta(seconds=spec["age"])).isoformat()
            sent.append(event)
        self.w.last_batch = sent
        self._send(sent, crash)

    @rule(batch=st.lists(events(), min_size=1, max_size=8))
    def ingest_clean(self, batch: list[dict[str, Any]]) -> None:
        """Ingest again without a crash (ingest weighs more than the other rules)."""
        self.ingest(batch, None)

    @rule(
        batch=st.lists(events(), min_size=1, max_size=4),
        step=st.sampled_from([timedelta(0), timedelta(days=3), timedelta(days=31)]),
    )
    def ingest_then_bill(self, batch: list[dict[str, Any]], step: timedelta) -> None:
        """Usage arriving around a billing run (late events for windows billed or about to be)."""
        self.ingest(batch, None)
        self.bill(step, False)

    @precondition(lambda self: bool(self.w.last_batch))
    @rule()
    def resend_last_batch(self) -> None:
        """A client retry: the same payloads again (duplicates, or replays once the catalog is fixed)."""
        self._step("resend")
        self._send(self.w.last_batch, None)

    def _send(self, sent: list[dict[str, Any]], crash: str | None) -> None:
        now = datetime.now(UTC)
        answer = self.api("POST", "/v1/events", {"events": sent})
        verdicts = [self._api_verdict(e, now) for e in sent]
        if not any(verdicts):
            self._check(
                "invalid_input",
                answer.status == 400 and answer.code == "all_events_rejected",
                f"all invalid answered {answer.status} {answer.body}",
            )
            return
        self._check("valid_input", answer.status == 202, f"ingest answered {answer.status} {answer.body}")
        statuses = [e["status"] for e in answer.body["events"]]
        for event, ok, status in zip(sent, verdicts, statuses, strict=True):
            self._check(
                "ingest_verdict",
                (status == "queued") == ok,
                f"event {h.encode(event)} answered {status}, the docs say {'queued' if ok else 'rejected'}",
            )
        self._process_ingest(crash)
        queued = [e for e, s in zip(sent, statuses, strict=True) if s == "queued"]
        self._settle(queued)

    def _api_verdict(self, event: dict[str, Any], now: datetime) -> bool:
        at = parse_time(event["timestamp"])
        if at < now - timedelta(days=35) or at > now + timedelta(seconds=300):
            return False
        if not all(api_takes(v) for v in event["properties"].values()):
            return False
        spec = METERS.get(event["code"])
        if event["customer_id"] not in self.w.customers or spec is None or spec.code not in self.w.meters:
            return False  # unknown customer or meter: refused at the API (docs/api.md, errors up front)
        if spec.field is not None and spec.field not in event["properties"]:
            return False  # the aggregated property is missing
        return not self._refuses_negative(event)

    def _refuses_negative(self, event: dict[str, Any]) -> bool:
        """The field of a known numeric meter holding what it cannot aggregate: a negative value (none of
        the oracle's meters sets ``allow_negative``) or no number at all (a boolean, text that is not a
        number, NaN). Refused at the API (docs/limits.md); a missing field is refused by _api_verdict."""
        spec = METERS.get(event["code"])
        if spec is None or spec.code not in self.w.meters or spec.aggregation not in ("sum", "max", "latest"):
            return False
        if spec.field not in event["properties"]:
            return False
        value = event["properties"][spec.field]
        return as_number(value) is None or negative(value)

    def _process_ingest(self, crash: str | None) -> None:
        from neruba.dal.usage import UsageRepository

        if crash:
            STATS["crashes_injected"] += 1
            original = UsageRepository.count_group
            with h.patched(
                UsageRepository, "count_group", h.killing_once(original, after=crash == "after_count")
            ):
                h.one_batch(h.ingest_worker(), h.INGEST_QUEUE, 100)
            # SQS gives a killed batch's messages back after the queue's visibility timeout (180 s),
            # past the worker's hold on a killed attempt (``worker.HOLD``, 120 s): the drain below
            # stands for that later delivery
            from neruba.logic.ingest import worker

            with h.patched(worker, "HOLD", timedelta(0)):
                h.drain(h.ingest_worker(), h.INGEST_QUEUE, 100)
            return
        h.drain(h.ingest_worker(), h.INGEST_QUEUE, 100)

    def _countable(self, event: dict[str, Any]) -> bool:
        """Whether the worker must count this copy (known customer and meter, a value it can aggregate)."""
        spec = METERS.get(event["code"])
        if event["customer_id"] not in self.w.customers or spec is None or spec.code not in self.w.meters:
            return False
        if spec.field is None:
            return True
        if spec.field not in event["properties"]:
            return False
        if spec.aggregation == "unique_count":
            return True
        number = as_number(event["properties"][spec.field])
        return number is not None and storable(number) and not self._refuses_negative(event)

    def _settle(self, queued: list[dict[str, Any]]) -> None:
        """Read each key's stored event and hold it against what the copies allowed."""
        by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for event in queued:
            by_key.setdefault((event["customer_id"], event["transaction_id"]), []).append(event)
        for key, copies in by_key.items():
            STATS["event_keys_settled"] += 1
            customer, tx = key
            answer = self.api("GET", f"/v1/events/{tx}", query={"customer_id": customer})
            before = self.w.events.get(key)
            self._check(
                "event_recorded",
                answer.status == 200,
                f"{key}: queued copies left no event ({answer.status})",
            )
            view = answer.body
            payload = {"code": view["code"], "timestamp": view["timestamp"], "properties": view["properties"]}
            status = view["status"]
            if before is not None and before.status == "accepted":
                self._check(
                    "accepted_stands",
                    status == "accepted" and _same(payload, before.payload),
                    f"{key}: an accepted event changed to {status} {payload}",
                )
                continue
            # every countable copy counts: an hourly sum is never limited to what one number can store
            countable = [c for c in copies if self._countable(c)]
            if countable:
                self._check(
                    "accepted",
                    status == "accepted",
                    f"{key}: countable copies {countable} ended {status} ({view.get('reason')})",
                )
            if status == "accepted":
                match = [c for c in countable if _same(payload, _payload(c))]
                self._check(
                    "accepted_is_countable",
                    bool(match),
                    f"{key}: accepted {payload}, which no countable copy was",
                )
                spec = METERS[view["code"]]
                self.w.usage.add(customer, spec, match[0]["timestamp"], match[0]["properties"])
                self.w.dirty.add((customer, spec.code))
                self.w.events[key] = Stored("accepted", payload)
            else:
                self._check(
                    "failed_has_reason",
                    status == "failed" and bool(view.get("reason")),
                    f"{key}: {status} without a reason",
                )
                self.w.events[key] = Stored("failed", payload)

    # ------------------------------------------------------------ subscriptions
    def _current_period_billed(self, sub: Subscription) -> bool:
        k = sub.period_of(self.w.now0)
        return sub.boundary(k + 1) <= self.w.clock

    @rule(
        customer=st.sampled_from(sorted(CUSTOMERS)),
        plan=st.sampled_from(PLANS),
        days=st.integers(0, 34),
        hour=st.integers(0, 23),
        retry=st.booleans(),
    )
    def subscribe(self, customer: str, plan: str, days: int, hour: int, retry: bool) -> None:
        self._step("subscribe")
        start = (self.w.now0 - timedelta(days=days, hours=hour, minutes=7)).replace(microsecond=0)
        version = self.w.plans.get(plan)
        mine = [s for s in self.w.subs.values() if s.customer == customer]
        overlap = bool(
            version and any(s.live() or s.ended_at is None for s in mine if s.meters() & version.meters())
        )
        if mine and not overlap:
            return  # one subscription per customer (usage is stored per customer and meter)
        key = hashlib.sha256(f"{customer}{plan}{start}".encode()).hexdigest()[:16]
        body = {"customer_id": customer, "plan_code": plan, "start_at": start.isoformat()}
        answer = self.api("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": key})
        if customer not in self.w.customers or version is None:
            self._check(
                "invalid_input", answer.status == 404, f"subscribe to unknown answered {answer.status}"
            )
            return
        if version.currency != CUSTOMERS[customer]:
            self._check("invalid_input", answer.status == 400, f"currency mismatch answered {answer.status}")
            return
        if overlap:
            self._check(
                "no_double_billing",
                answer.status == 409,
                f"overlapping subscription answered {answer.status}",
            )
            return
        self._check("valid_input", answer.status == 201, f"subscribe answered {answer.status} {answer.body}")
        if retry:
            again = self.api("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": key})
            self._check(
                "idempotent_create",
                again.ok() and again.body["id"] == answer.body["id"],
                f"retried create answered {again.status} {again.body}",
            )
        self.w.unbilled.add(answer.body["id"])
        self.w.subs[answer.body["id"]] = Subscription(
            answer.body["id"], customer, start, [Phase(version, start)]
        )

    def _changeable(self) -> list[Subscription]:
        return [
            s
            for s in self.w.subs.values()
            if s.live() and s.start <= self.w.now0 and not self._current_period_billed(s)
        ]

    @precondition(lambda self: bool(self._changeable()))
    @rule(
        data=st.data(),
        plan=st.sampled_from(PLANS),
        where=st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("0.999"), Decimal(1)]),
    )
    def change_plan(self, data: st.DataObject, plan: str, where: Decimal) -> None:
        self._step("change_plan")
        sub = data.draw(st.sampled_from(self._changeable()))
        k = sub.period_of(self.w.now0)
        if sub.period_of(datetime.now(UTC)) != k:
            return  # a period boundary between the model's hour and the API's clock
        period_start = sub.boundary(k)
        earliest = max(period_start, sub.phases[-1].start)
        at = earliest + timedelta(seconds=int((self.w.now0 - earliest).total_seconds() * float(where)))
        at = min(at, self.w.now0)
        version = self.w.plans.get(plan)
        answer = self.api(
            "POST", f"/v1/subscriptions/{sub.id}/change-plan", {"plan_code": plan, "at": at.isoformat()}
        )
        if version is None:
            self._check(
                "invalid_input", answer.status == 404, f"change to unknown plan answered {answer.status}"
            )
            return
        if version.currency != sub.phases[0].version.currency or version.interval != sub.interval:
            self._check(
                "invalid_input", answer.status == 400, f"incompatible change answered {answer.status}"
            )
            return
        self._check(
            "valid_input", answer.status == 200, f"change plan answered {answer.status} {answer.body}"
        )
        recorded = (answer.body.get("phases") or [{}])[-1].get("created_at")
        sub.phases[-1].end = at
        sub.phases.append(
            Phase(version, at, recorded=parse_time(recorded) if recorded else datetime.now(UTC))
        )

    @precondition(lambda self: bool(self._changeable()))
    @rule(data=st.data(), at_period_end=st.booleans())
    def cancel(self, data: st.DataObject, at_period_end: bool) -> None:
        self._step("cancel")
        candidates = self._changeable()
        sub = data.draw(st.sampled_from(candidates))
        answer = self.api("POST", f"/v1/subscriptions/{sub.id}/cancel", {"at_period_end": at_period_end})
        self._check("valid_input", answer.status == 200, f"cancel answered {answer.status} {answer.body}")
        sub.canceled_at = parse_time(answer.body["canceled_at"])
        if at_period_end:
            sub.cancel_at_period_end = True
        else:
            sub.ended_at = parse_time(answer.body["ended_at"])
            sub.phases[-1].end = sub.ended_at
        if not at_period_end:  # ended: nothing more to cancel (a cancellation at period end may be repeated)
            again = self.api("POST", f"/v1/subscriptions/{sub.id}/cancel", {"at_period_end": True})
            self._check(
                "invalid_input", 400 <= again.status < 500, f"cancel after the end answered {again.status}"
            )

    # ------------------------------------------------------------ credits and money actions
    @rule(
        customer=st.sampled_from(sorted(CUSTOMERS)),
        amount=st.sampled_from([1, 500, 2000, 0, -5, 10**13]),
        kind=st.sampled_from(["purchased", "promotional"]),
    )
    def grant(self, customer: str, amount: int, kind: str) -> None:
        self._step("grant")
        body = {"kind": kind, "amount_minor": amount, "reason": "oracle"}
        answer = self.api(
            "POST",
            f"/admin/customers/{customer}/credit-grants",
            body,
            headers={"Idempotency-Key": f"g{len(self.w.granted)}{customer}{amount}{self.api.calls}"},
        )
        if not 1 <= amount <= 10**12:
            self._check("invalid_input", answer.status == 422, f"grant of {amount} answered {answer.status}")
        elif customer not in self.w.customers:
            self._check("invalid_input", answer.status == 404, f"grant to unknown answered {answer.status}")
        elif False:
            self._check("invalid_input", answer.status == 422, f"grant of {amount} answered {answer.status}")
        else:
            self._check("valid_input", answer.status == 201, f"grant answered {answer.status} {answer.body}")
            self.w.granted[customer] = self.w.granted.get(customer, 0) + amount

    @rule(
        customer=st.sampled_from(sorted(CUSTOMERS)),
        action=st.sampled_from(["refunds", "disputes"]),
        amount=st.sampled_from([1, 1000, 900000]),
        which=st.sampled_from(["unknown", "own"]),
    )
    def money_against_nothing(self, customer: str, action: str, amount: int, which: str) -> None:
        """Refunds and disputes against invoices that collected nothing: impossible, so refused."""
        self._step("refund_dispute")
        mine = [
            i
            for i, v in self.w.invoices.items()
            if v["customer"] == customer and not (i in self.w.money.bills and self.w.money.bills[i].paid)
        ]
        invoice = mine[0] if which == "own" and mine else "in_" + "0" * 24
        before = self._postings(customer)
        answer = self.api(
            "POST",
            f"/admin/customers/{customer}/{action}",
            {"amount_minor": amount, "invoice_id": invoice, "reason": "oracle"},
            headers={"Idempotency-Key": f"m{self.api.calls}{customer}{action}"},  # money actions need one
        )
        # docs/limits.md, 'Refunds and disputes': an unknown customer or invoice is 404, an invoice of the
        # customer that collected nothing (unpaid, or settled by credits alone) is 409
        want = 409 if invoice in mine and customer in self.w.customers else 404
        self._check(
            "impossible_money_action",
            answer.status == want,
            f"{action} of {amount} against {invoice} answered {answer.status} {answer.body}, not {want}",
        )
        self._check(
            "no_partial_write", self._postings(customer) == before, f"refused {action} wrote postings"
        )

    def _postings(self, customer: str) -> int:
        if customer not in self.w.customers:
            return 0
        answer = self.api("GET", f"/v1/customers/{customer}/ledger", query={"limit": "100"})
        return len(answer.body["data"])

    # ------------------------------------------------------------ billing
    @rule(
        step=st.sampled_from(
            [timedelta(0), timedelta(hours=2), timedelta(days=3), timedelta(days=12), timedelta(days=31)]
        ),
        crash=st.booleans(),
    )
    def bill(self, step: timedelta, crash: bool) -> None:
        self._step("bill")
        self.w.clock = min(self.w.clock + step, self.w.now0 + MAX_AHEAD)
        h.billing_run(self.w.clock)
        self.w.unbilled.clear()
        for sub in self.w.subs.values():
            sub.run_after_end = sub.ended_at is not None
        if crash:
            from neruba.logic.billing import worker as billing_worker

            STATS["crashes_injected"] += 1
            with h.patched(billing_worker, "commit", h.killing_once(billing_worker.commit, after=True)):
                from functions.billing_worker import app

                with h.patched(app, "clock", lambda: self.w.clock):
                    h.one_batch(app.lambda_handler, h.BILLING_QUEUE, 10)
        h.billing_work(self.w.clock)
        self._check_invoices()

    @precondition(lambda self: bool(self.w.invoices))
    @rule(data=st.data())
    def rerun(self, data: st.DataObject) -> None:
        self._step("rerun")
        invoice = data.draw(st.sampled_from(sorted(self.w.invoices)))
        customer = self.w.invoices[invoice]["customer"]
        ending = any(not s.live() for s in self.w.subs.values() if s.customer == customer)
        before = self._books(customer) if ending else None
        answer = self.api(
            "POST",
            f"/admin/invoices/{invoice}/rerun",
            {"reason": "oracle rerun"},
            headers={"Idempotency-Key": f"rr{self.api.calls}"},
        )
        self._check("no_5xx", answer.status < 500, "rerun failed")
        if answer.ok() and self.w.invoices[invoice]["status"] == "draft":
            self.w.invoices[invoice]["expected"] = None  # re-rated now: compared again at the next bill
            self.w.invoices[invoice]["status"] = "rerun"
        # a finalized window of an ended subscription: the difference on one correction document, at once
        if before is not None:
            self._settled(customer, before, {invoice}, "rerun")
        self._check_invoices()

    def _check_invoices(self) -> None:
        for customer in sorted(self.w.customers):
            answer = self.api("GET", "/v1/invoices", query={"customer_id": customer, "limit": "100"})
            self._check(
                "valid_input", answer.status == 200, f"invoices answered {answer.status} {answer.body}"
            )
            seen = {}
            for invoice in answer.body["data"]:
                if invoice.get("kind") not in ("opening", "usage"):
                    continue
                seen[(invoice["subscription_id"], invoice["kind"], parse_time(invoice["period_start"]))] = (
                    invoice
                )
                self._check_invoice(invoice)
            due = {
                (sub.id, kind, start)
                for sub in self.w.subs.values()
                if sub.customer == customer and sub.id not in self.w.unbilled  # no billing run yet
                for kind, start, end, due_at in sub.windows()
                if due_at <= self.w.clock and (end != sub.ended_at or sub.run_after_end)
            }
            self._check(
                "windows_billed",
                set(seen) == due,
                f"{customer}: invoices for {sorted(seen)} but due {sorted(due)}",
            )

    def _check_invoice(self, invoice: dict[str, Any]) -> None:
        record = self.w.invoices.setdefault(
            invoice["id"], {"status": None, "expected": None, "customer": invoice["customer_id"]}
        )
        sub = self.w.subs[invoice["subscription_id"]]
        # the lines are priced when the invoice is created and again when it is finalized (a payment that
        # moves it on to paid changes no line)
        if record["expected"] is None or (
            record["status"] != invoice["status"] and invoice["status"] in ("draft", "finalized")
        ):
            record["expected"] = rate_window(
                sub, self.w.usage, METERS, invoice["kind"], parse_time(invoice["period_start"])
            )
            record["status"] = invoice["status"]
        lines = {}
        for line in invoice["lines"]:
            if line["kind"] != "adjustment" and int(line["amount_minor"]):
                lines[line["line_id"]] = int(line["amount_minor"])
        subtotal = sum(int(line["amount_minor"]) for line in invoice["lines"])
        self._check(
            "invoice_sums",
            subtotal == int(invoice["subtotal_minor"]),
            f"{invoice['id']}: lines sum to {subtotal}, subtotal {invoice['subtotal_minor']}",
        )
        credits = int(invoice.get("credits_applied_minor") or 0)
        self._check(
            "invoice_sums",
            int(invoice["total_minor"]) == subtotal - credits
            and credits >= 0
            and credits <= max(0, subtotal),
            f"{invoice['id']}: total {invoice['total_minor']} credits {credits}",
        )
        paid = int(invoice.get("amount_paid_minor") or 0)
        self._check(
            "paid_within_total",
            0 <= paid <= max(0, int(invoice["total_minor"])),
            f"{invoice['id']}: paid {paid} of {invoice['total_minor']}",
        )
        STATS["invoices_compared"] += 1
        STATS[f"invoices_compared:{sub.interval}"] += 1
        if record["expected"] is not None:
            self._check(
                "invoice_lines",
                lines == record["expected"],
                f"{invoice['id']} ({invoice['kind']} {invoice['period_start']}..{invoice['period_end']}, "
                f"{invoice['status']}): lines {lines}, the model prices {record['expected']}",
            )

    # ------------------------------------------------------------ operations
    def sweep(self) -> None:
        self._step("sweep")
        # a short window: the usage check costs one query per minute and journal shard of its window
        now = datetime.now(UTC)
        window = {"from": (now - timedelta(minutes=5)).isoformat(), "to": now.isoformat()}
        ending = sorted({s.customer for s in self.w.subs.values() if not s.live()} & self.w.customers)
        books = {c: self._books(c) for c in ending}  # only ended subscriptions get corrections
        answer = self.api("POST", "/admin/sweeps", window)
        self._check("valid_input", answer.status == 201, f"sweep answered {answer.status} {answer.body}")
        names = {check["name"] for check in answer.body["checks"]}
        self._check("sweep_checks", {"receivable", "corrections"} <= names, f"sweep ran {sorted(names)}")
        for check in answer.body["checks"]:
            self._check(
                "sweep_reports_failures",
                check["error"] is None,
                f"sweep check {check['name']} failed: {check}",
            )
            if check["name"] == "receivable":  # every invoice's share of the receivable is what it owes
                self._check("receivable_agrees", not check.get("found"), f"receivable check: {check}")
        for customer, before in books.items():  # late usage on ended subscriptions: billed, once
            self._settled(customer, before, None, "sweep")
        self.w.dirty |= {(c, m) for c in self.w.customers for m in self.w.meters}

    def redrive(self) -> None:
        self._step("redrive")
        moved = h.redrive(h.INGEST_DLQ, h.INGEST_QUEUE)
        STATS["redriven"] += moved
        h.drain(h.ingest_worker(), h.INGEST_QUEUE, 100)
        self.w.dirty |= {(c, m) for c in self.w.customers for m in self.w.meters}

    # ------------------------------------------------------------ invariants
    @invariant()
    def usage_equals_the_model(self) -> None:
        for customer, meter in sorted(self.w.dirty):
            if customer in self.w.customers and meter in self.w.meters:
                self._usage_matches(customer, METERS[meter])
        self.w.dirty.clear()

    def _usage_matches(self, customer: str, meter: MeterSpec) -> None:
        start = hour_of(self.w.now0 - timedelta(days=35))
        got: dict[datetime, tuple[Decimal, int]] = {}
        for a, b in (
            (start, start + timedelta(days=30)),
            (start + timedelta(days=30), hour_of(self.w.now0) + timedelta(hours=2)),
        ):
            answer = self.api(
                "GET",
                f"/v1/customers/{customer}/usage",
                query={
                    "meter": meter.code,
                    "from": a.isoformat(),
                    "to": b.isoformat(),
                    "granularity": "hour",
                },
            )
            self._check("valid_input", answer.status == 200, f"usage answered {answer.status} {answer.body}")
            for row in answer.body["data"]:
                got[parse_time(row["bucket"])] = (Decimal(str(row["quantity"])), int(row["events"]))
        want = self.w.usage.hours(customer, meter.code)
        # a cell recomputed from its surviving events after a void may stay, at 0 events (docs/billing.md,
        # "Voiding and amending events"): an hour whose every event was voided is listed empty or not at all
        got = {
            hour: row
            for hour, row in got.items()
            if hour in want or row != (Decimal(0), 0) or (customer, meter.code, hour) not in self.w.voided
        }
        self._check(
            "usage",
            set(got) == set(want),
            f"{customer}/{meter.code}: hours {sorted(got)} read, the model has {sorted(want)}",
        )
        for hour, cells in want.items():
            events, quantity, tied = self.w.usage.quantity(meter, cells)
            read_quantity, read_events = got[hour]
            self._check(
                "counted_once",
                read_events == events,
                f"{customer}/{meter.code} {hour}: {read_events} events counted, {events} accepted",
            )
            ok = read_quantity == quantity if quantity is not None else read_quantity in (tied or set())
            self._check(
                "usage",
                ok,
                f"{customer}/{meter.code} {hour}: quantity {read_quantity}, the model {quantity or tied}",
            )

    def _unchanged_since(self, invariant: str) -> bool:
        """Whether nothing was written since ``invariant`` last looked (then it holds as it did)."""
        if self.w.looked.get(invariant) == h.WRITES[0]:
            return True
        self.w.looked[invariant] = h.WRITES[0]
        return False

    @invariant()
    def nothing_in_a_dlq_without_a_reason(self) -> None:
        if self._unchanged_since("dlq"):
            return
        from neruba.dal.usage import UsageRepository
        from neruba.settings import get_settings

        usage = UsageRepository(get_settings().usage_table)
        for message in h.dlq_messages(h.INGEST_DLQ):
            body = h.decode(message["Body"])
            event = body.get("event", body)
            item = usage.get_event(str(event.get("customer_id")), str(event.get("transaction_id")))
            self._check(
                "dlq_reason",
                item is not None and item.status == "failed" and bool(item.reason),
                f"in IngestDLQ without a recorded reason: {message['Body'][:300]}",
            )
        billing = h.dlq_messages(h.BILLING_DLQ)
        self._check("billing_dlq_empty", not billing, f"BillingDLQ holds {[m['Body'] for m in billing]}")

    @invariant()
    def the_books_balance(self) -> None:
        if self._unchanged_since("books"):
            return
        from neruba.dal.ledger import LedgerRepository
        from neruba.settings import get_settings

        ledger = LedgerRepository(get_settings().ledger_table)
        for customer in sorted(self.w.customers):
            differences = ledger.reconcile(customer)  # once: it reads every posting of the customer
            self._check("ledger_reconciles", differences == [], f"{customer}: {differences}")
            balances = ledger.balances(customer)
            for currency, accounts in balances.items():
                self._check(
                    "debits_equal_credits",
                    sum(accounts.values()) == 0,
                    f"{customer} {currency}: accounts sum to {sum(accounts.values())}: {accounts}",
                )
                cash = sum(v for k, v in accounts.items() if k.split("#")[0] == "cash")
                self._check("no_negative_cash", cash >= 0, f"{customer} {currency}: cash {cash}")


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    return {"code": event["code"], "timestamp": event["timestamp"], "properties": event["properties"]}


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    if a["code"] != b["code"] or parse_time(a["timestamp"]) != parse_time(b["timestamp"]):
        return False
    pa, pb = a["properties"], b["properties"]
    return set(pa) == set(pb) and all(_same_value(pa[k], pb[k]) for k in pa)


def _same_value(x: Any, y: Any) -> bool:
    """Whether two property values are the same as the event view answers them: every decimal in an
    answer is a string of its canonical text (docs/billing.md, 'Numbers in API answers'), so a number
    sent with a fraction (``0.000001``) reads back as ``"0.000001"``; integers stay numbers."""
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    if isinstance(x, str) and isinstance(y, str):
        return x == y
    if isinstance(x, str) or isinstance(y, str):
        text, number = (x, y) if isinstance(x, str) else (y, x)
        fraction = isinstance(number, Decimal) and number != number.to_integral_value()
        return fraction and text == canonical(number)
    return Decimal(str(x)) == Decimal(str(y))
