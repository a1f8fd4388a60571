"""A scripted stand-in for POST /v1/events behind httpx's MockTransport: it records every batch,
keeps each transaction id once, and fails the requests a test asks it to."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

Fault = Callable[[int, list[dict[str, Any]]], httpx.Response | Exception | None]
# a rejection: its code (the field at fault is then ``code``), or (code, field path inside the event)
Rejection = str | tuple[str, str] | None


class FakeIngest:
    def __init__(
        self, fault: Fault | None = None, reject: Callable[[dict[str, Any]], Rejection] | None = None
    ) -> None:
        self.fault = fault
        self.reject = reject
        self.batches: list[list[dict[str, Any]]] = []
        self.stored: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.read())["events"]
        with self.lock:
            self.batches.append(events)
            number = len(self.batches)
        self.gate.wait(10)
        outcome = self.fault(number, events) if self.fault else None
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            return outcome
        statuses = []
        for index, event in enumerate(events):
            rejection = self.reject(event) if self.reject else None
            if rejection:
                code, where = rejection if isinstance(rejection, tuple) else (rejection, "code")
                # as the API writes it: a path in the request body
                error = {"code": code, "message": f"{code}!", "param": f"events.{index}.{where}"}
                statuses.append(
                    {
                        "index": index,
                        "transaction_id": event["transaction_id"],
                        "status": "rejected",
                        "error": error,
                    }
                )
            else:
                with self.lock:
                    self.stored[event["transaction_id"]] += 1
                statuses.append(
                    {
                        "index": index,
                        "transaction_id": event["transaction_id"],
                        "status": "queued",
                        "error": None,
                    }
                )
        queued = sum(s["status"] == "queued" for s in statuses)
        return httpx.Response(
            202,
            json={
                "request_id": f"r{number}",
                "queued": queued,
                "rejected": len(events) - queued,
                "events": statuses,
            },
        )

    def sizes(self) -> list[int]:
        with self.lock:
            return [len(b) for b in self.batches]
