"""A small in-memory Stripe API on 127.0.0.1 that the real stripe library talks to (no network).

It is the local stack's Stripe (``make run`` serves it and points the functions at it) and the tests'. It
implements what invoice sync-out calls: customers (create, retrieve), invoice items (create, list by
invoice), invoices (create, retrieve, list by customer, finalize), and paying an open invoice
(``POST /v1/invoices/{id}/pay``, as Stripe's API does), which delivers a signed ``invoice.paid`` event to
the webhook endpoint when one is set (``set_webhook``). Requests are form-encoded as the stripe library
sends them (``metadata[key]=value``). With ``api_key`` set, a request with another key is answered 401
(the key as a bearer token, or as the user name of basic auth: ``curl URL -u sk_test_...:``).

Idempotency works like Stripe API v1: the first response to an ``Idempotency-Key`` (status and body,
*including a 500* once the endpoint has begun executing) is saved and replayed for the same key and the
same parameters (header ``Idempotent-Replayed: true``); the same key with different parameters is a 400
``idempotency_error``.

Webhook delivery signs as Stripe does: header ``Stripe-Signature: t=<unix time>,v1=<hex>`` where the hex is
HMAC-SHA256 with the endpoint secret over ``"<t>.<raw body>"``; the body is pretty-printed JSON. It happens
once, before the answer to the request that caused it (Stripe delivers later and retries; here the caller
sees the endpoint's answer in ``deliveries``).

Stripe Tax, minimally: an invoice created with ``automatic_tax[enabled]=true`` needs its customer's
``address[country]`` (else 400 ``customer_tax_location_invalid``, as Stripe answers); at finalization it
adds a deterministic exclusive tax, ``tax_percent`` of the items' sum for that country (``state`` too when
the table names it), rounded half-up (none for a country not in the table: not registered there), sets
``tax``, ``total_taxes``, ``total_excluding_tax`` and ``total``, and delivers ``invoice.finalized``. A
credit note on such an invoice adds tax to its lines (``_credited_tax``: per line the invoice's tax in
proportion, half-up, the note crediting all that is left taking all the tax left) and answers
``subtotal``, ``total_taxes`` and ``total``.

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

import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
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

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None, id_tag: str = "fake"
    ) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self.deliveries: list[dict[str, Any]] = []  # webhook deliveries: event id, type, status, answer
        self.api_key, self.id_tag = api_key, id_tag
        self.tax_percent: dict[str, int] = {"DE": 19, "FR": 20, "US:CA": 7}  # Stripe Tax's rates here
        self.webhook: tuple[str, str] | None = None  # (endpoint URL, signing secret)
        self._outbox: list[dict[str, Any]] = []
        self._saved: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._faults: list[list[Any]] = []  # [pattern, remaining, execute_first]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-stripe", daemon=True)

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"

    def start(self) -> FakeStripe:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_webhook(self, url: str, secret: str) -> None:
        """Deliver events (``invoice.paid``) to ``url`` (http or https), signed with ``secret``."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"a webhook endpoint is an http(s) URL, not {url!r}")
        self.webhook = (url, secret)

    def find_invoice(self, key: str, value: str) -> dict[str, Any] | None:
        """The invoice whose metadata ``key`` is ``value`` (the newest), as the Stripe search API finds it."""
        with self._lock:
            found = [i for i in self.invoices.values() if (i.get("metadata") or {}).get(key) == value]
            return json.loads(json.dumps(found[-1])) if found else None

    # ---------------------------------------------------------------- state (the local stack's --state-dir)
    def dump(self) -> dict[str, Any]:
        """Everything a restart needs: objects, saved idempotent answers, the id counter."""
        with self._lock:
            state = {
                "customers": self.customers, "invoices": self.invoices, "items": self.items,
                "credit_notes": self.credit_notes,
                "saved": {key: list(value) for key, value in self._saved.items()},
                "next_id": next(self._ids),
            }  # fmt: skip
            return dict(json.loads(json.dumps(state)))

    def load(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.customers, self.invoices = dict(state["customers"]), dict(state["invoices"])
            self.items = dict(state["items"])
            self.credit_notes = dict(state.get("credit_notes", {}))
            self._saved = {key: (v[0], int(v[1]), v[2]) for key, v in state["saved"].items()}
            self._ids = itertools.count(int(state["next_id"]))

    def reset(self) -> None:
        """Forget every object, saved answer and fault (a server shared by independent runs)."""
        with self._lock:
            for store in (self.customers, self.invoices, self.items, self.credit_notes, self._saved):
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
        self, method: str, path: str, params: dict[str, Any], key: str | None, api_key: str | None = None
    ) -> tuple[int, dict[str, Any], bool]:
        """Returns (status, body, replayed)."""
        if self.api_key is not None and api_key != self.api_key:
            return 401, _error("invalid_request_error", "Invalid API Key provided."), False
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
            ("POST", "invoices", "*", "pay"): self._pay,
            ("POST", "invoices", "*", "void"): self._void,
            ("DELETE", "invoices", "*"): self._delete_invoice,
            ("POST", "credit_notes"): self._create_credit_note,
            ("GET", "credit_notes"): self._list_credit_notes,
        }
        shape = tuple([method, *[(p if index != 1 else "*") for index, p in enumerate(parts)]])
        handler = routes.get(shape)
        if handler is None:
            return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        return handler(params, parts[1] if len(parts) > 1 else None)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{self.id_tag}{next(self._ids):06d}"

    def _get(self, store: dict[str, dict[str, Any]], object_id: str, kind: str) -> tuple[int, dict[str, Any]]:
        if object_id not in store:
            return 404, _error(
                "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing"
            )
        return 200, store[object_id]

    def _create_customer(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        customer = {"id": self._new_id("cus"), "object": "customer", "name": params.get("name"),
                    "email": params.get("email"), "metadata": params.get("metadata", {}),
                    "address": params.get("address")}  # fmt: skip
        self.customers[customer["id"]] = customer
        return 200, customer

    def _create_invoice(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        if params.get("customer") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer", code="resource_missing")
        automatic = (params.get("automatic_tax") or {}).get("enabled") == "true"
        if automatic and not (self.customers[params["customer"]].get("address") or {}).get("country"):
            message = "The customer's location is not valid for automatic tax: add an address."
            return 400, _error("invalid_request_error", message, code="customer_tax_location_invalid")
        invoice = {
            "id": self._new_id("in"), "object": "invoice", "customer": params["customer"],
            "currency": params.get("currency", "usd"), "status": "draft", "number": None, "total": 0,
            "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "paid": False, "charge": None,
            "payment_intent": None, "auto_advance": params.get("auto_advance") == "true",
            "metadata": params.get("metadata", {}), "description": params.get("description"),
            "created": int(time.time()), "livemode": False,
            "automatic_tax": {"enabled": automatic, "status": None},
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
        invoice["amount_due"] = invoice["amount_remaining"] = max(invoice["total"], 0)
        return 200, item

    def _create_credit_note(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        """A credit note on a finalized invoice: never more than the invoice total less earlier notes. As
        Stripe: the note first lowers what the invoice still asks (``pre_payment_amount``, taken off
        ``amount_remaining`` and ``amount_due``); ``credit_amount``, ``refund_amount`` and
        ``out_of_band_amount`` must add up to the rest (``post_payment_amount``), else 400."""
        invoice = self.invoices.get(params.get("invoice", ""))
        if invoice is None or invoice["status"] not in ("open", "paid"):
            return 400, _error(
                "invalid_request_error", "The invoice is not finalized.", code="invoice_not_open"
            )
        lines = params.get("lines") or {}
        subtotal = sum(int(line["unit_amount"]) * int(line.get("quantity", 1)) for line in lines.values())
        tax = self._credited_tax(invoice, [int(line["unit_amount"]) * int(line.get("quantity", 1))
                                           for line in lines.values()])  # fmt: skip
        amount = subtotal + tax
        credited = sum(n["amount"] for n in self.credit_notes.values() if n["invoice"] == invoice["id"])
        if amount <= 0 or credited + amount > invoice["total"]:
            return 400, _error(
                "invalid_request_error", "The credit note exceeds the invoice.", code="amount_too_large"
            )
        parts = {k: int(params.get(k, 0)) for k in ("credit_amount", "refund_amount", "out_of_band_amount")}
        pre = min(amount, int(invoice["amount_remaining"]))  # first what the invoice still asks
        if sum(parts.values()) != amount - pre:
            message = (f"The credit note's refund, credit and out of band amounts ({sum(parts.values())}) "
                       f"must add up to its post-payment amount ({amount - pre}).")  # fmt: skip
            return 400, _error("invalid_request_error", message)
        note = {
            "id": self._new_id("cn"), "object": "credit_note", "invoice": invoice["id"], "amount": amount,
            "pre_payment_amount": pre, "post_payment_amount": amount - pre, **parts,
            "memo": params.get("memo"), "metadata": params.get("metadata", {}), "status": "issued",
            "subtotal": subtotal, "total": amount,
            "total_taxes": [{"amount": tax, "tax_behavior": "exclusive"}] if tax else [],
        }  # fmt: skip
        self.credit_notes[note["id"]] = note
        invoice["amount_remaining"] -= pre
        invoice["amount_due"] -= pre
        return 200, note

    def _credited_tax(self, invoice: dict[str, Any], amounts: list[int]) -> int:
        """Stripe Tax's part of a credit note on an automatic-tax invoice: per line, the invoice's tax in
        proportion of the line to the invoice's pre-tax total, rounded half-up, never more than the tax
        left; a note that credits all that is left of the pre-tax total takes all the tax left."""
        tax = int(invoice.get("tax") or 0) if (invoice.get("automatic_tax") or {}).get("enabled") else 0
        base = int(invoice.get("total_excluding_tax") or 0)
        if not tax or base <= 0:
            return 0
        notes = [n for n in self.credit_notes.values() if n["invoice"] == invoice["id"]]
        left_tax = tax - sum(t["amount"] for n in notes for t in n.get("total_taxes") or [])
        left_base = base - sum(int(n.get("subtotal", n["amount"])) for n in notes)
        if sum(amounts) >= left_base:
            return max(left_tax, 0)
        taken = 0
        for amount in amounts:
            taken += min((amount * tax * 2 + base) // (2 * base), left_tax - taken)  # half-up on integers
        return taken

    def _list_credit_notes(self, params: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        data = [n for n in self.credit_notes.values() if n["invoice"] == params.get("invoice")]
        return 200, {"object": "list", "url": "/v1/credit_notes", "has_more": False, "data": data}

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
        numbered = len([i for i in self.invoices.values() if i["number"]]) + 1
        invoice["number"] = f"{self.id_tag.upper()}-{numbered:04d}"
        if (invoice.get("automatic_tax") or {}).get("enabled"):
            self._add_tax(invoice)
            if self.webhook is not None:
                self._outbox.append(self._event("invoice.finalized", invoice))
        return 200, invoice

    def _add_tax(self, invoice: dict[str, Any]) -> None:
        """Stripe Tax's part of finalization: an exclusive tax on the items' sum, rounded half-up."""
        address = self.customers[invoice["customer"]].get("address") or {}
        country, state = address.get("country"), address.get("state")
        percent = self.tax_percent.get(f"{country}:{state}", self.tax_percent.get(str(country), 0))
        base = invoice["total"]
        tax = (max(base, 0) * percent * 2 + 100) // 200  # half-up on integers
        invoice.update(
            tax=tax, total_excluding_tax=base, total=base + tax,
            total_taxes=[{"amount": tax, "inclusive": False, "tax_behavior": "exclusive",
                          "taxability_reason": "standard_rated" if percent else "not_collecting",
                          "taxable_amount": max(base, 0)}],
        )  # fmt: skip
        invoice["automatic_tax"]["status"] = "complete"
        invoice["amount_due"] = invoice["amount_remaining"] = max(invoice["total"], 0)

    def _void(self, params: dict[str, Any], invoice_id: str | None) -> tuple[int, dict[str, Any]]:
        """Void an open invoice (as Stripe, only an open or uncollectible one: not a draft, a paid one or a
        void one)."""
        invoice = self.invoices.get(invoice_id or "")
        if invoice is None:
            return 404, _error("invalid_request_error", "No such invoice", code="resource_missing")
        if invoice["status"] not in ("open", "uncollectible"):
            message = f"You can only void an open or uncollectible invoice; this one is {invoice['status']}."
            return 400, _error("invalid_request_error", message, code="invoice_not_editable")
        invoice.update(status="void", amount_remaining=0)
        return 200, invoice

    def _delete_invoice(self, params: dict[str, Any], invoice_id: str | None) -> tuple[int, dict[str, Any]]:
        """Delete a draft invoice (Stripe deletes drafts only) with its items."""
        invoice = self.invoices.get(invoice_id or "")
        if invoice is None:
            return 404, _error("invalid_request_error", "No such invoice", code="resource_missing")
        if invoice["status"] != "draft":
            return 400, _error(
                "invalid_request_error", "Only a draft can be deleted.", code="invoice_not_editable"
            )
        del self.invoices[invoice["id"]]
        for item_id in [k for k, v in self.items.items() if v["invoice"] == invoice["id"]]:
            del self.items[item_id]
        return 200, {"id": invoice["id"], "object": "invoice", "deleted": True}

    def _pay(self, params: dict[str, Any], invoice_id: str | None) -> tuple[int, dict[str, Any]]:
        """Pay an open invoice in full (as a successful card charge would: what it still asks, after
        credit notes), then deliver ``invoice.paid``."""
        invoice = self.invoices.get(invoice_id or "")
        if invoice is None:
            return 404, _error("invalid_request_error", "No such invoice", code="resource_missing")
        if invoice["status"] != "open":
            message = f"You can only pay an open invoice; this one is {invoice['status']}."
            return 400, _error("invalid_request_error", message)
        charge = self._new_id("ch")
        invoice.update(
            status="paid", paid=True, amount_paid=invoice["amount_paid"] + invoice["amount_remaining"],
            amount_remaining=0, charge=charge,
            payment_intent=self._new_id("pi"), status_transitions={"paid_at": int(time.time())},
        )  # fmt: skip
        if self.webhook is not None:
            self._outbox.append(self._event("invoice.paid", invoice))
        return 200, invoice

    # ---------------------------------------------------------------- webhooks
    def _event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._new_id("evt"), "object": "event", "api_version": "2024-06-20",
            "created": int(time.time()), "livemode": False, "pending_webhooks": 1, "type": kind,
            "request": {"id": None, "idempotency_key": None}, "data": {"object": json.loads(json.dumps(obj))},
        }  # fmt: skip

    def deliver_pending(self) -> None:
        """Post the events the last requests caused to the webhook endpoint (outside the lock)."""
        with self._lock:
            events, self._outbox = self._outbox, []
        for event in events:
            self.deliveries.append(self.deliver(event))

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """Post one event, signed, to the webhook endpoint; returns what the endpoint answered."""
        assert self.webhook is not None, "set_webhook() first"
        url, secret = self.webhook
        raw = json.dumps(event, indent=2).encode("utf-8")
        request = urllib.request.Request(url, data=raw, method="POST")  # noqa: S310 (http(s) only)
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        request.add_header("Stripe-Signature", signature_header(raw, secret))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the local endpoint)
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        except OSError as error:
            status, answer = 0, str(error).encode()
        try:
            body: Any = json.loads(answer)
        except ValueError:
            body = answer.decode("utf-8", "replace")
        return {
            "event_id": event["id"], "type": event["type"], "object_id": event["data"]["object"].get("id"),
            "status": status, "answer": body,
        }  # fmt: skip

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = _nest(parse_qsl(body if method == "POST" else split.query, keep_blank_values=True))
                status, payload, replayed = fake.handle(
                    method,
                    split.path,
                    params,
                    self.headers.get("Idempotency-Key"),
                    _api_key(self.headers.get("Authorization") or ""),
                )
                fake.deliver_pending()
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

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _api_key(authorization: str) -> str | None:
    """The key of ``Bearer KEY`` (the stripe library) or of ``Basic base64(KEY:)`` (``curl -u KEY:``)."""
    scheme, _, value = authorization.partition(" ")
    if scheme == "Bearer":
        return value
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().partition(":")[0]
        except ValueError:
            return None
    return None


def signature_header(raw: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header of a delivery: HMAC-SHA256 over ``"<t>.<raw body>"``."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}
