"""The oracle's corrections after the end (a mixin of tests.oracle.machine.Oracle).

docs/billing.md, "Corrections after the end": once a subscription's billing has ended (its final window
billed), a difference found on one of its finalized invoices (a rerun, or the ``corrections`` sweep check
for late events) is billed at once on a correction invoice (or credit note) of its own, never left for a
next invoice. The model's measure: for each finalized window of an ended subscription, what was billed for
it (its own lines plus every adjustment line, on any invoice, referencing it) is, line by line, what the
model prices now; a correction document carries exactly the difference, and a second rerun or sweep issues
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from tests.oracle import harness as h
from tests.oracle.model import METERS, Subscription, parse_time, rate_window

CORRECTIONS = ("correction", "credit_note")
SETTLED = ("finalized", "paid", "payment_failed")
LATE_VALUES = {  # a countable value per meter, chosen to change what the window bills
    "calls": {},
    "tokens": {"tokens": 700, "model": "a"},
    "peak_gb": {"gb": 10**6},
    "seats": {"user": "late"},
    "level": {"lvl": 123},
}


class Books:
    """A customer's invoices as the API lists them, and what was billed for each window: the invoices'
    lines, adjustment lines counted on the line they correct, less what credit notes issued by a
    correction took back for an adjustment (docs/billing.md, "Negative corrections settle against what
    they correct")."""

    def __init__(
        self,
        docs: list[dict[str, Any]],
        notes: list[dict[str, Any]] | None = None,
        restored: list[dict[str, Any]] | None = None,
        credit: tuple[str, int] | None = None,
    ) -> None:
        self.docs = {d["id"]: d for d in docs}
        # the customer's usable credit (currency, amount) as the balance answers it: what a correction
        # invoice applies (docs/billing.md, "Credit on a correction invoice")
        self.credit = credit
        self.notes = {n["id"]: n for n in notes or [] if n.get("correction")}
        # what corrections gave back to the grants that paid a line (docs/billing.md, "Usage a credit
        # grant paid, corrected"): the customer's credit_grant_restored postings, as the ledger lists them
        self.restored = {p["id"]: p for p in restored or []}
        self.billed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for doc in docs:
            for line in doc["lines"]:
                amount = int(line["amount_minor"])
                if line["kind"] == "adjustment":
                    ref = line.get("references") or {}
                    self.billed[ref.get("invoice_id", "?")][ref.get("line_id", "?")] += amount
                else:
                    self.billed[doc["id"]][line["line_id"]] += amount
        for note in self.notes.values():
            for settled in note["correction"]["adjustments"]:
                ref = settled["corrects"]
                self.billed[ref["invoice_id"]][ref["line_id"]] -= int(settled["amount_minor"])
        for posting in self.restored.values():
            for part in posting["metadata"]["restored_from"]:
                self.billed[part["invoice_id"]][part["line_id"]] -= int(part["amount_minor"])

    def of(self, invoice_id: str) -> dict[str, int]:
        return {k: v for k, v in self.billed[invoice_id].items() if v}

    def corrections(self) -> set[str]:
        return {i for i, d in self.docs.items() if d.get("kind") in CORRECTIONS}

    def settlements(self) -> set[str]:
        """The credit notes issued by corrections."""
        return set(self.notes)

    def restorations(self) -> set[str]:
        """The postings giving grants back what they paid of a corrected line."""
        return set(self.restored)

    def usable_again(self, posting_ids: set[str]) -> int:
        """What the restorations ``posting_ids`` gave back to grants that stay usable (a grant closed at
        once gives nothing usable): credit the correction carrying them may apply."""
        return sum(
            int(part["amount_minor"])
            for p in posting_ids
            if self.restored[p]["metadata"].get("closed") is None
            for part in self.restored[p]["metadata"]["restored_from"]
        )

    def restoring(self, posting_ids: set[str], invoice_id: str) -> list[str]:
        """Those of ``posting_ids`` that gave grants back part of what ``invoice_id`` consumed."""
        return sorted(
            p
            for p in posting_ids
            if any(r["invoice_id"] == invoice_id for r in self.restored[p]["metadata"]["restored_from"])
        )

    def settling(self, note_ids: set[str], invoice_id: str) -> list[str]:
        """Those of ``note_ids`` that took back part of a correction of ``invoice_id``."""
        return sorted(
            n
            for n in note_ids
            if any(
                a["corrects"]["invoice_id"] == invoice_id for a in self.notes[n]["correction"]["adjustments"]
            )
        )


class CorrectionRules:
    """Rules and checks of corrections after a subscription's end (mixed into the Oracle)."""

    # provided by the Oracle
    api: h.Api
    w: Any

    def _step(self, name: str) -> None: ...  # pragma: no cover - the Oracle's

    def _check(self, name: str, ok: bool, message: str) -> None: ...  # pragma: no cover - the Oracle's

    def _books(self, customer: str) -> Books:
        answer = self.api("GET", "/v1/invoices", query={"customer_id": customer, "limit": "100"})
        self._check("valid_input", answer.status == 200, f"invoices answered {answer.status}")
        notes = []
        for doc in answer.body["data"]:
            if doc.get("credit_notes"):
                listed = self.api("GET", f"/v1/invoices/{doc['id']}/credit-notes")
                self._check("valid_input", listed.status == 200, f"credit notes answered {listed.status}")
                notes += listed.body["data"]
        credit = self.api("GET", f"/v1/customers/{customer}/balance")
        self._check("valid_input", credit.status == 200, f"balance answered {credit.status}")
        available = (str(credit.body["currency"]), int(credit.body["credit_available_minor"]))
        return Books(answer.body["data"], notes, self._restorations(customer), available)

    def _restorations(self, customer: str) -> list[dict[str, Any]]:
        """The customer's ``credit_grant_restored`` postings (every page of the ledger)."""
        found: list[dict[str, Any]] = []
        query = {"limit": "100"}
        while True:
            page = self.api("GET", f"/v1/customers/{customer}/ledger", query=query)
            self._check("valid_input", page.status == 200, f"ledger answered {page.status}")
            found += [p for p in page.body["data"] if p["reason"] == "credit_grant_restored"]
            if not page.body.get("has_more"):
                return found
            query = {"limit": "100", "starting_after": str(page.body["next_cursor"])}

    def _billing_ended(self, sub: Subscription, books: Books) -> bool:
        """The final window of a subscription that ends is billed (its billing state ended)."""
        if sub.live():
            return False
        kind, start, _, _ = sub.windows()[-1]
        return any(
            d.get("subscription_id") == sub.id
            and d.get("kind") == kind
            and parse_time(d["period_start"]) == start
            for d in books.docs.values()
        )

    def _in_scope(self, books: Books, only: set[str] | None = None) -> dict[str, dict[str, int]]:
        """The model's lines of every settled window of an ended subscription (``only`` those ids), where the
        model is unambiguous."""
        found = {}
        for invoice_id, doc in books.docs.items():
            if only is not None and invoice_id not in only:
                continue
            sub = self.w.subs.get(doc.get("subscription_id"))
            if sub is None or doc.get("kind") not in ("opening", "usage") or doc["status"] not in SETTLED:
                continue
            if only is None and doc["kind"] != "usage":
                continue  # the sweep re-rates usage windows
            if not self._billing_ended(sub, books):
                continue
            expected = rate_window(sub, self.w.usage, METERS, doc["kind"], parse_time(doc["period_start"]))
            if expected is not None:
                found[invoice_id] = expected
        return found

    def _settled(self, customer: str, before: Books, scope: set[str] | None, issued_by: str) -> Books:
        """After a rerun (of the ids in ``scope``) or a sweep (``scope`` None): every window in scope bills
        what the model prices, each difference on exactly one new correction document carrying it."""
        after = self._books(customer)
        expected = self._in_scope(after, scope)
        new = sorted(after.corrections() - before.corrections())
        owed = {i: _minus(lines, before.of(i)) for i, lines in expected.items()}
        owed = {i: d for i, d in owed.items() if d}
        STATS_ADD(f"corrections_owed_{issued_by.split()[0]}", len(owed))
        for invoice_id, lines in sorted(expected.items()):
            STATS_ADD("corrections_compared")
            self._check(
                "corrections_settle",
                after.of(invoice_id) == lines,
                f"{customer}: after {issued_by}, {invoice_id} bills {after.of(invoice_id)}; the model "
                f"prices {lines}",
            )
        by_original: dict[str, list[str]] = defaultdict(list)
        for doc_id in new:
            doc = after.docs[doc_id]
            refs = {(line.get("references") or {}).get("invoice_id") for line in doc["lines"]}
            self._check("one_original", len(refs) == 1, f"{doc_id} corrects {refs}")
            by_original[next(iter(refs))].append(doc_id)
            total = sum(int(line["amount_minor"]) for line in doc["lines"])
            kind = "correction" if total > 0 else "credit_note" if total < 0 else doc["kind"]
            # the customer's credit pays a correction invoice as it pays a window: at most its lines
            # (net of tax), nothing on a credit note
            credits = int(doc.get("credits_applied_minor") or 0)
            tax = int(doc.get("tax_minor") or 0)
            self._check(
                "correction_document",
                int(doc["total_minor"]) == total + tax - credits
                and 0 <= credits <= max(total, 0)
                and doc["kind"] == kind
                and doc["status"] in SETTLED,
                f"{doc_id}: {doc['kind']} {doc['status']} total {doc['total_minor']}, lines sum to {total}, "
                f"tax {tax}, credits {credits}",
            )
            given_back = after.usable_again(after.restorations() - before.restorations())
            STATS_ADD("correction_invoices_credited", 1 if credits else 0)
            if after.credit and after.credit[0] == doc["currency"] and credits < max(total, 0):
                # credit pays usage wherever it is billed: a correction invoice left asking for usage in
                # money found no usable credit (only what a later correction of the step gave back)
                self._check(
                    "correction_credit",
                    after.credit[1] <= given_back,
                    f"{doc_id}: credits {credits} of lines {total}, yet {after.credit[1]} of credit is "
                    f"usable after {issued_by}",
                )
            if scope is not None and len(new) == 1 and before.credit and before.credit[0] == doc["currency"]:
                # one correction (a rerun): it applies all it can of the credit usable before it and of
                # what it gave back itself, in the same transaction
                usable = before.credit[1] + given_back
                STATS_ADD("correction_credit_compared")
                STATS_ADD("correction_credit_applied", 1 if credits else 0)
                self._check(
                    "correction_credit",
                    credits == min(max(total, 0), usable),
                    f"{doc_id}: credits {credits}; lines {total}, credit usable {before.credit[1]} and "
                    f"{usable - before.credit[1]} given back by it",
                )
        for invoice_id in set(owed) | set(by_original):
            if invoice_id not in expected:
                continue
            docs = by_original.get(invoice_id, [])
            settling = after.settling(after.settlements() - before.settlements(), invoice_id)
            settling += after.restoring(after.restorations() - before.restorations(), invoice_id)
            # a difference in quantity alone (a line priced 0) is recorded too, on a document of 0
            # (docs/billing.md, "Late events after finalization"); never two, one whenever an amount differs
            # (or credit notes took all of it back)
            self._check(
                "one_correction",
                len(docs) <= 1 and (len(docs) == 1 or bool(settling) or invoice_id not in owed),
                f"{customer}: {issued_by} of {invoice_id} issued {[after.docs[d] for d in docs]}; the "
                f"model owes {owed.get(invoice_id)}; billed before {before.of(invoice_id)}, the model "
                f"{expected[invoice_id]}",
            )
            carried = _minus(after.of(invoice_id), before.of(invoice_id))
            self._check(
                "correction_amount",
                carried == owed.get(invoice_id, {}),
                f"{docs} carry {carried} for {invoice_id}; the model's difference {owed.get(invoice_id)}",
            )
        STATS_ADD("correction_documents", len(new))
        STATS_ADD("grant_restorations", len(after.restorations() - before.restorations()))
        return after

    # ------------------------------------------------------------ rules
    def _can_end(self) -> bool:
        """A live subscription to end, and room on the clock to bill and finalize its final window."""
        from tests.oracle.machine import MAX_AHEAD

        room = self.w.clock + timedelta(hours=4) <= self.w.now0 + MAX_AHEAD
        return room and bool(self._changeable())  # type: ignore[attr-defined]

    @precondition(lambda self: self._can_end())
    @rule(
        data=st.data(),
        via=st.sampled_from(["rerun", "sweep", "both"]),
        late=st.sampled_from([2, 8]),
        credit=st.sampled_from([2000, 0, 1]),
    )
    def end_then_correct(self, data: st.DataObject, via: str, late: int, credit: int) -> None:
        """Cancel now, bill the final window and finalize it, then (``credit``: after a grant made) late
        usage lands in it; a rerun of it and/or the corrections sweep bill the difference once (twice run:
        nothing more), the correction invoice paid by the customer's credit as a window would be."""
        self._step("end_then_correct")
        STATS_ADD(f"end_then_correct_{via}")
        ended = {s.id for s in self.w.subs.values() if s.ended_at is not None}
        self.cancel(data, False)  # type: ignore[attr-defined]
        (sub,) = [s for s in self.w.subs.values() if s.ended_at is not None and s.id not in ended]
        self.bill(timedelta(hours=2), False)  # type: ignore[attr-defined]
        self.bill(timedelta(hours=2), False)  # type: ignore[attr-defined]
        books = self._books(sub.customer)
        kind, start, end, _ = sub.windows()[-1]
        (final,) = [
            d
            for d in books.docs.values()
            if d.get("subscription_id") == sub.id
            and d["kind"] == kind
            and parse_time(d["period_start"]) == start
        ]
        self._check("final_window_finalized", final["status"] == "finalized", f"final window {final}")
        if credit:  # credit the final window did not see: the correction invoice uses it
            self.grant(sub.customer, credit, "promotional")  # type: ignore[attr-defined]
        # late usage for the closed window: a countable event of a meter its plan charges
        now = datetime.now(UTC)
        earliest = max(start, sub.start, now - timedelta(days=34))
        meters = sorted(m for m in sub.phases[-1].version.meters() if m in self.w.meters)
        batch = []
        for _ in range(late):
            meter = data.draw(st.sampled_from(meters))
            back = data.draw(
                st.sampled_from([timedelta(seconds=1), timedelta(minutes=10), timedelta(hours=5)])
            )
            at = max(earliest, min(end, now) - back)
            batch.append(
                {
                    "transaction_id": self.w.money.next_id("late"),
                    "customer_id": sub.customer,
                    "code": meter,
                    "timestamp": at.isoformat(),
                    "properties": dict(LATE_VALUES[meter]),
                }
            )
        self._send(batch, None)  # type: ignore[attr-defined]
        for attempt in range(2):  # the second sweep or rerun finds nothing left to bill
            if via in ("sweep", "both"):
                self.sweep()  # type: ignore[attr-defined]
            if via in ("rerun", "both"):
                self._rerun_after_end(sub.customer, final["id"], attempt)

    @precondition(lambda self: self._can_end())
    @rule(
        data=st.data(),
        kind=st.sampled_from(["promotional", "purchased"]),
        via=st.sampled_from(["rerun", "sweep"]),
        voids=st.sampled_from([1, 2]),
    )
    def end_then_void(self, data: st.DataObject, kind: str, via: str, voids: int) -> None:
        """Credit granted and usage in the last window, the subscription ended and its final window billed
        (the credit paying what it can), then some of that usage voided: the correction gives back money
        first, then the grants that paid it (docs/billing.md, "Usage a credit grant paid, corrected"),
        once, and the window bills what the model prices (the restorations counted as taken back)."""
        self._step("end_then_void")
        STATS_ADD(f"end_then_void_{via}")
        ended = {s.id for s in self.w.subs.values() if s.ended_at is not None}
        self.cancel(data, False)  # type: ignore[attr-defined]
        (sub,) = [s for s in self.w.subs.values() if s.ended_at is not None and s.id not in ended]
        self.grant(sub.customer, 2000, kind)  # type: ignore[attr-defined]
        _kind, start, end, _ = sub.windows()[-1]
        now = datetime.now(UTC)
        earliest = max(start, sub.start, now - timedelta(days=34))
        meters = sorted(m for m in sub.phases[-1].version.meters() if m in self.w.meters)
        batch = []
        for n in range(voids + 1):
            meter = data.draw(st.sampled_from(meters))
            at = max(earliest, min(end, now) - timedelta(minutes=10 + n))
            batch.append(
                {
                    "transaction_id": self.w.money.next_id("tovoid"),
                    "customer_id": sub.customer,
                    "code": meter,
                    "timestamp": at.isoformat(),
                    "properties": dict(LATE_VALUES[meter]),
                }
            )
        self._send(batch, None)  # type: ignore[attr-defined]
        self.bill(timedelta(hours=2), False)  # type: ignore[attr-defined]
        self.bill(timedelta(hours=2), False)  # type: ignore[attr-defined]
        books = self._books(sub.customer)
        (final,) = [
            d
            for d in books.docs.values()
            if d.get("subscription_id") == sub.id
            and d["kind"] == _kind
            and parse_time(d["period_start"]) == start
        ]
        for event in batch[:voids]:
            self._void(event)
        for attempt in range(2):  # the second sweep or rerun finds nothing left to give back
            if via == "sweep":
                self.sweep()  # type: ignore[attr-defined]
            else:
                self._rerun_after_end(sub.customer, final["id"], attempt)

    def _void(self, event: dict[str, Any]) -> None:
        """Void an accepted event through the API; the model takes its value out of its hour."""
        from tests.oracle.model import hour_of

        key = (event["customer_id"], event["transaction_id"])
        if getattr(self.w.events.get(key), "status", None) != "accepted":
            return
        answer = self.api(
            "POST",
            f"/admin/events/{event['transaction_id']}/void",
            {"customer_id": event["customer_id"], "reason": "oracle void", "ticket": "ORA-1"},
            headers={"Idempotency-Key": f"void{self.api.calls}"},
        )
        self._check("valid_input", answer.status == 200, f"void answered {answer.status} {answer.body}")
        spec = METERS[event["code"]]
        value = event["properties"].get(spec.field) if spec.field else None
        cell = self.w.usage.cells[
            (
                event["customer_id"],
                spec.code,
                hour_of(parse_time(event["timestamp"])),
                spec.group(event["properties"]),
            )
        ]
        cell.values.remove((event["timestamp"], value))
        self.w.voided.add((event["customer_id"], spec.code, hour_of(parse_time(event["timestamp"]))))
        self.w.events[key] = type(self.w.events[key])("voided", self.w.events[key].payload)
        self.w.dirty.add((event["customer_id"], spec.code))

    def _rerun_after_end(self, customer: str, invoice_id: str, attempt: int) -> None:
        before = self._books(customer)
        answer = self.api(
            "POST",
            f"/admin/invoices/{invoice_id}/rerun",
            {"reason": "late usage after the end"},
            headers={"Idempotency-Key": f"late-rr{self.api.calls}"},
        )
        self._check("valid_input", answer.status == 200, f"rerun answered {answer.status} {answer.body}")
        after = self._settled(customer, before, {invoice_id}, f"rerun {attempt + 1}")
        new = after.corrections() - before.corrections()
        notes = after.settlements() - before.settlements()
        restored = after.restorations() - before.restorations()
        action = answer.body.get("action")
        issued = bool(new or notes or restored)
        self._check(
            "rerun_answer",
            (action == "correction_invoiced") == issued and (issued or action == "unchanged"),
            f"rerun of {invoice_id} answered {action} {answer.body.get('correction')}; new documents {new}, "
            f"credit notes {notes}",
        )
        if issued:
            correction = answer.body.get("correction") or {}
            doc_id = next(iter(new)) if len(new) == 1 else None
            total = int(after.docs[doc_id]["total_minor"]) if doc_id else 0
            credited = sum(int(after.notes[n]["amount_minor"]) for n in notes)
            self._check(
                "rerun_answer",
                len(new) <= 1
                and correction.get("invoice_id") == doc_id
                and int(correction.get("amount_minor", 0)) == total - credited
                and sorted(n["id"] for n in correction.get("credit_notes") or []) == sorted(notes)
                and {r["posting_id"] for r in correction.get("grant_restorations") or []} == restored,
                f"rerun answered {correction}, issued {new}, credit notes {notes}, restorations {restored}",
            )


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = set(a) | set(b)
    return {k: a.get(k, 0) - b.get(k, 0) for k in sorted(keys) if a.get(k, 0) != b.get(k, 0)}


def STATS_ADD(key: str, n: int = 1) -> None:
    h.STATS[key] += n
