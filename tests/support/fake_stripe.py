"""A small in-memory Stripe API on 127.0.0.1 for tests that drive the real stripe library (no network).

It implements what invoice sync-out calls: customers (create, retrieve), invoice items (create, list by
invoice), invoices (create, retrieve, list by customer, finalize). Requests are form-encoded as the stripe
library sends them (``metadata[key]=value``).

Idempotency works like Stripe API v1: the first response to an ``Idempotency-Key`` (status and body,
*including a 500* once the endpoint has begun executing) is saved and replayed for the same key and the
same parameters (header ``Idempotent-Replayed: true``); the same key with different parameters is a 400
``idempotency_error``.

Fault injection per path pattern (``/v1/invoices/*/finalize``):

* ``fail_next(pattern, n)``: the next ``n`` calls answer 500 *without* executing (saved under their key,
  as Stripe does once execution began);
* ``fail_after_execute(pattern, n)``: the next ``n`` calls execute (the object is created or changed) and
  then answer 500, the case of a response lost after the work was done.

Example::

    with FakeStripe() as fake:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.url})
        client.v1.customers.create(params={"name": "Acme"})
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b]=1`` -> ``{"a": {"b": "1"}}`` (enough of Stripe's form encoding for these endpoints)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class FakeStripe:
    """The server and its state; use as a context manager."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self._saved: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._faults: list[list[Any]] = []  # [pattern, remaining, execute_first]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget every object, saved answer and fault (a server shared by independent runs)."""
        with self._lock:
            for store in (self.customers, self.invoices, self.items, self._saved):
                store.clear()
            self.requests.clear()
            self._faults.clear()

    # ---------------------------------------------------------------- fault injection
    def fail_next(self, pattern: str, count: int = 1) -> None:
        self._faults.append([pattern, count, False])

    def fail_after_execute(self, pattern: str, count: int = 1) -> None:
        self._faults.append([pattern, count, True])

    def _fault(self, path: str) -> bool | None:
        for fault in self._faults:
            if fault[1] > 0 and fnmatch.fnmatch(path, fault[0]):
                fault[1] -= 1
                return bool(fault[2])
        return None

    # ---------------------------------------------------------------- request handling
    def handle(
        self, method: str, path: str, params: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any], bool]:
        """Returns (status, body, replayed)."""
        with self._lock:
            self.requests.append((method, path, key))
            fingerprint = json.dumps([method, path, params], sort_keys=True)
            if key is not None and method == "POST" and key in self._saved:
                saved_fingerprint, status, body = self._saved[key]
                if saved_fingerprint != fingerprint:
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{key}' if you meant to execute a "
                        "different request."
                    )
                    return 400, _error("idempotency_error", message), False
                return status, body, True
            fault = self._fault(path)
            if fault is None or fault:
                status, body = self._route(method, path, params)
            if fault is not None:
                status, body = 500, _error("api_error", "An unknown error occurred (injected).")
            if key is not None and method == "POST" and status != 404:
                self._saved[key] = (fingerprint, status, body)
            return status, body, False

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        routes: dict[tuple[str, ...], Callable[..., tuple[int, dict[str, Any]]]] = {
            ("POST", "customers"): self._create_customer,
            ("GET", "customers", "*"): lambda p, i: self._get(self.customers, i, "customer"),
            ("POST", "invoiceitems"): self._create_item,
            ("GET", "invoiceitems"): self._list_items,
            ("POST", "invoices"): self._create_invoice,
            ("GET", "invoices"): self._list_invoices,
            ("GET", "invoices", "*"): lambda p, i: self._get(self.invoices, i, "invoice"),
            ("POST", "invoices", "*", "finalize"): self._finalize,
        }
        shape = tuple([method, *[(p if index != 1 else "*") for index, p in enumerate(parts)]])
        handler = routes.get(shape)
        if handler is None:
            return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        return handler(params, parts[1] if len(parts) > 1 else None)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _get(self, store: dict[str, dict[str, Any]], object_id: str, kind: str) -> tuple[int, dict[str, Any]]:
        if object_id not in store:
            return 404, _error(
                "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing"
            )
        return 200, store[object_id]

    def _create_customer(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        customer = {"id": self._new_id("cus"), "object": "customer", "name": params.get("name"),
                    "email": params.get("email"), "metadata": params.get("metadata", {})}  # fmt: skip
        self.customers[customer["id"]] = customer
        return 200, customer

    def _create_invoice(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        if params.get("customer") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer", code="resource_missing")
        invoice = {
            "id": self._new_id("in"), "object": "invoice", "customer": params["customer"],
            "currency": params.get("currency", "usd"), "status": "draft", "number": None, "total": 0,
            "auto_advance": params.get("auto_advance") == "true", "metadata": params.get("metadata", {}),
            "description": params.get("description"),
        }  # fmt: skip
        self.invoices[invoice["id"]] = invoice
        return 200, invoice

    def _list_invoices(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        data = [i for i in self.invoices.values() if i["customer"] == params.get("customer")]
        return 200, {"object": "list", "url": "/v1/invoices", "has_more": False, "data": data}

    def _create_item(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        invoice = self.invoices.get(params.get("invoice", ""))
        if invoice is None or invoice["status"] != "draft":
            return 400, _error(
                "invalid_request_error", "The invoice is not a draft.", code="invoice_not_editable"
            )
        item = {
            "id": self._new_id("ii"), "object": "invoiceitem", "invoice": invoice["id"],
            "customer": params.get("customer"), "amount": int(params["amount"]),
            "currency": params.get("currency"), "description": params.get("description"),
            "metadata": params.get("metadata", {}),
        }  # fmt: skip
        self.items[item["id"]] = item
        invoice["total"] += item["amount"]
        return 200, item

    def _list_items(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        data = [i for i in self.items.values() if i["invoice"] == params.get("invoice")]
        return 200, {"object": "list", "url": "/v1/invoiceitems", "has_more": False, "data": data}

    def _finalize(self, params: dict[str, Any], invoice_id: str | None) -> tuple[int, dict[str, Any]]:
        invoice = self.invoices.get(invoice_id or "")
        if invoice is None:
            return 404, _error("invalid_request_error", "No such invoice", code="resource_missing")
        if invoice["status"] != "draft":
            return 400, _error(
                "invalid_request_error", "This invoice is already finalized.", code="invoice_not_editable"
            )
        invoice["status"] = "open"
        invoice["number"] = f"FAKE-{len([i for i in self.invoices.values() if i['number']]) + 1:04d}"
        return 200, invoice

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = _nest(parse_qsl(body if method == "POST" else split.query, keep_blank_values=True))
                status, payload, replayed = fake.handle(
                    method, split.path, params, self.headers.get("Idempotency-Key")
                )
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("Request-Id", f"req_fake{next(fake._ids)}")
                if replayed:
                    self.send_header("Idempotent-Replayed", "true")
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}
