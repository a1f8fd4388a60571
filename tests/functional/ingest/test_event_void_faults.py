"""Voids and amends under faults: a process killed before, inside or after the transaction, the same
request twice, two voids at once, a void racing ingest of the same hour. Usage always ends equal to a
recount of the surviving events, and never takes an event out twice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev
from tests.functional.ingest.test_event_voids import AT, NOW, total


class Killed(Exception):
    """The process stopped here."""


def request(tx: str, *, amend: dict[str, Any] | None = None) -> Any:
    from neruba.logic.ingest.voids import VoidRequest

    if amend is None:
        return VoidRequest("acme", tx, "duplicate", "FIN-1")
    return VoidRequest("acme", tx, "wrong quantity", "FIN-2", amend=True, **amend)


def void(tx: str, key: str = "k1", **kwargs: Any) -> dict[str, Any]:
    from neruba.logic.ingest.voids import void_event

    return void_event(request(tx, **kwargs), "key:op", key)


@pytest.fixture
def counted(send: Any, process: Any) -> None:
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 3, "model": "large"}),
        ev("c", code="tokens", timestamp=AT, properties={"tokens": 5, "model": "large"}),
    )
    process()
    assert total("tokens") == (3, Decimal(18))


def open_voids() -> list[Any]:
    from neruba import bootstrap

    return bootstrap.voids().open_voids()


def test_killed_before_the_transaction_nothing_is_written_and_a_retry_voids_once(
    counted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba import bootstrap
    from neruba.logic.ingest import voids

    def killed(unit: Any) -> None:
        raise Killed

    monkeypatch.setattr(voids, "commit", killed)
    with pytest.raises(Killed):
        void("a")
    assert bootstrap.usage().get_event("acme", "a").status == "accepted"
    assert (total("tokens"), open_voids()) == ((3, Decimal(18)), [])
    monkeypatch.undo()
    assert void("a")["correction"] == "completed"
    assert total("tokens") == (2, Decimal(8))


@pytest.mark.parametrize("amend", [None, {"properties": {"tokens": 1, "model": "large"}}])
def test_killed_after_the_transaction_a_retry_finishes_once(
    counted: None, monkeypatch: pytest.MonkeyPatch, amend: dict[str, Any] | None
) -> None:
    from neruba.logic.sweeps import usage as sweep_usage

    def killed(*args: Any) -> str:
        raise Killed

    monkeypatch.setattr(sweep_usage, "recompute_cell", killed)
    with pytest.raises(Killed):
        void("a", amend=amend)
    # the void is recorded and open; the usage is not corrected yet
    assert len(open_voids()) == 1
    assert total("tokens") == (3, Decimal(18))
    monkeypatch.undo()
    first = void("a", amend=amend)
    expected = (3, Decimal(9)) if amend else (2, Decimal(8))
    assert (first["correction"], total("tokens"), open_voids()) == ("completed", expected, [])
    assert void("a", amend=amend)["correction"] == "completed"  # and again: nothing more
    assert total("tokens") == expected


@pytest.mark.parametrize("amend", [None, {"properties": {"tokens": 1, "model": "large"}}])
def test_killed_after_the_transaction_the_voids_check_finishes_once(
    counted: None, monkeypatch: pytest.MonkeyPatch, amend: dict[str, Any] | None
) -> None:
    from neruba.logic.ingest.voids import finish_open
    from neruba.logic.sweeps import usage as sweep_usage

    def killed(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(sweep_usage, "adopt_uncounted" if amend else "recompute_cell", killed)
    with pytest.raises(Killed):
        void("a", amend=amend)
    monkeypatch.undo()
    done = finish_open()
    assert done["finished"] == [{"customer_id": "acme", "transaction_id": "a"}]
    expected = (3, Decimal(9)) if amend else (2, Decimal(8))
    assert total("tokens") == expected
    assert finish_open() == {"finished": [], "waiting": [], "failed": []}
    assert total("tokens") == expected


def test_killed_after_finishing_before_closing_the_next_finish_changes_nothing(
    counted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.voids import VoidsRepository
    from neruba.logic.ingest.voids import finish_open

    def killed(self: Any, open_void: Any) -> None:
        raise Killed

    monkeypatch.setattr(VoidsRepository, "close", killed)
    with pytest.raises(Killed):
        void("a", amend={"properties": {"tokens": 2, "model": "large"}})
    assert total("tokens") == (3, Decimal(10))
    monkeypatch.undo()
    assert len(finish_open()["finished"]) == 1
    assert total("tokens") == (3, Decimal(10))


def test_two_voids_of_one_event_at_once_take_it_out_once(
    counted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.ingest import voids

    real_commit = voids.commit
    raced: list[dict[str, Any]] = []

    def racing(unit: Any) -> None:
        if not raced:
            raced.append({})
            raced[0] = void("a", key="other")  # the other request commits first
        real_commit(unit)

    monkeypatch.setattr(voids, "commit", racing)
    with pytest.raises(ConflictError) as refused:
        void("a")
    assert refused.value.code == "event_already_voided"
    assert raced[0]["status"] == "voided"
    assert total("tokens") == (2, Decimal(8))


def test_a_void_racing_ingest_of_the_same_hour_loses_neither(
    counted: None, send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.usage import UsageRepository

    real_aggregates = UsageRepository.aggregates
    ingested: list[bool] = []

    def racing(self: Any, *args: Any) -> Any:
        if not ingested:  # a batch counts in the same cell between the recount's reads and its write
            ingested.append(True)
            send(ev("d", code="tokens", timestamp=AT, properties={"tokens": 100, "model": "large"}))
            process()
        return real_aggregates(self, *args)

    monkeypatch.setattr(UsageRepository, "aggregates", racing)
    assert void("a")["correction"] == "completed"
    monkeypatch.undo()
    assert total("tokens") == (3, Decimal(108))


def test_a_void_racing_a_limit_counter_update_decides_again(
    send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba import bootstrap
    from neruba.domain.limits import LimitSettings
    from neruba.logic.idempotency import Actor
    from neruba.logic.ingest import voids
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    put_limits(
        "acme",
        UsageLimitsIn.model_validate({"meters": [{"meter_code": "api_calls", "hard_cap": "100"}]}),
        None,
        Actor(),
    )
    send(ev("a", timestamp=AT), ev("b", timestamp=AT))
    process()
    real_commit = voids.commit
    batches: list[bool] = []

    def racing(unit: Any) -> None:
        if not batches:  # a batch moves the counter after the void read it
            batches.append(True)
            send(ev("c", timestamp=AT))
            process()
        real_commit(unit)

    monkeypatch.setattr(voids, "commit", racing)
    void("a")
    stored = LimitSettings.from_stored(bootstrap.limits().settings_text("acme"))
    assert stored is not None
    counter = bootstrap.limits().counter("acme", "api_calls", *stored.period(NOW))
    assert (counter.used, counter.events) == (Decimal(2), 2)
    assert total("api_calls") == (2, Decimal(2))


def test_a_void_of_pending_usage_waits_for_the_fold(catalog: Any, send: Any, process: Any) -> None:
    """A cell whose pending usage is not folded yet is not recomputed: the void answers ``pending``, the
    voids check leaves it waiting, and finishes it once the fold has run."""
    from neruba.logic.ingest.voids import VoidRequest, finish_open, void_event
    from neruba.models.catalog import Customer
    from tests.functional.ingest.test_pending_usage import CUSTOMERS, _counts, _fold, _items, _sparse

    for external_id in CUSTOMERS:
        catalog.create_customer(Customer(external_id=external_id, name=external_id, currency="USD"))
    send(*_sparse("a"))
    process()
    assert _items("AGG#") == []  # every customer's day is pending
    answer = void_event(VoidRequest("c03", "a0-c03", "test event", "FIN-3"), "key:op", "k1")
    assert (answer["status"], answer["correction"]) == ("voided", "pending")
    assert _counts()["c03"] == 1  # the usage read still counts it: its pending day holds it until the fold
    assert finish_open()["waiting"] == [{"customer_id": "c03", "transaction_id": "a0-c03"}]
    assert _counts()["c03"] == 1  # the voids check alone cannot finish it either
    _fold()
    assert finish_open()["finished"] == [{"customer_id": "c03", "transaction_id": "a0-c03"}]
    assert _counts() == {**dict.fromkeys(CUSTOMERS, 1), "c03": 0}
    assert finish_open() == {"finished": [], "waiting": [], "failed": []}
    assert _counts()["c03"] == 0


def test_voids_and_amends_on_threads_while_batches_count_the_same_hour(
    send: Any, process: Any, atomic_requests: None
) -> None:
    """Four voids or amends and four ingest batches of the same customer, meter and hour at once: the
    usage ends as the surviving events', the limit counter too."""
    import threading

    from neruba import bootstrap
    from neruba.domain.limits import LimitSettings
    from neruba.errors import ConflictError
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    limits = UsageLimitsIn.model_validate({"meters": [{"meter_code": "tokens", "hard_cap": "100000"}]})
    put_limits("acme", limits, None, Actor())
    send(
        *(
            ev(f"o{i}", code="tokens", timestamp=AT, properties={"tokens": i + 1, "model": "m"})
            for i in range(4)
        )
    )
    process()
    send(
        *(
            ev(f"n{i}", code="tokens", timestamp=AT, properties={"tokens": 100, "model": "m"})
            for i in range(8)
        )
    )
    from functions.ingest_worker import app

    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def voiding(i: int) -> None:
        barrier.wait()
        try:
            amend = {"properties": {"tokens": 1000, "model": "m"}} if i % 2 else None
            for _ in range(10):  # as a client does with 409 event_void_conflict ("try again")
                try:
                    void(f"o{i}", key=f"t{i}", amend=amend)
                    break
                except ConflictError as conflict:
                    if conflict.code != "event_void_conflict":
                        raise
        except BaseException as exc:  # reported below
            errors.append(exc)

    def ingesting() -> None:
        barrier.wait()
        drain(app.lambda_handler, queue_url("IngestQueue"), batch_size=2)

    threads = [threading.Thread(target=voiding, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=ingesting))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    from neruba.logic.ingest.voids import finish_open

    finish_open()  # anything a race left pending
    # o1 and o3 amended to 1000 each, o0 and o2 voided, 8 x 100 new
    assert total("tokens") == (10, Decimal(2800))
    stored = LimitSettings.from_stored(bootstrap.limits().settings_text("acme"))
    assert stored is not None
    counter = bootstrap.limits().counter("acme", "tokens", *stored.period(NOW))
    assert (counter.used, counter.events) == (Decimal(2800), 10)
