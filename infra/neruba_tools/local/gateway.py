"""An HTTP server that answers like API Gateway (REST API, Lambda proxy integration, TOKEN authorizers,
gateway responses), with routes, authorizers and error bodies all read from the template.

Local-only control routes live under ``/_local/`` (never in the template): ``POST
/_local/schedules/{name}/fire``, ``GET /_local/schedules``, ``GET /_local/queues`` and ``POST
/_local/stripe/invoices/{invoice_id}/pay`` (pay the invoice in the local Stripe, which delivers a signed
``invoice.paid`` to ``POST /webhooks/stripe``).

Example:
    >>> gateway = Gateway(template, invoke=lambda fn, event: ...)  # doctest: +SKIP
    >>> port = gateway.bind("127.0.0.1", 0); gateway.serve()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION
from neruba_tools.local.template import ApiRoute, AuthorizerSpec, Template

LOG = logging.getLogger("neruba.local")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
BODY_TIMEOUT_S = 5  # a body shorter than its Content-Length is answered 400 after this long
DEFAULT_STATUS = {
    "UNAUTHORIZED": 401, "ACCESS_DENIED": 403, "MISSING_AUTHENTICATION_TOKEN": 403, "AUTHORIZER_FAILURE": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500, "REQUEST_TOO_LARGE": 413, "DEFAULT_4XX": 400, "DEFAULT_5XX": 502,
}  # fmt: skip
Response = tuple[int, list[tuple[str, str]], bytes]


class Control(Protocol):
    """What the /_local/ routes need from the stack."""

    def fire_schedule(self, name: str) -> Any: ...
    def schedule_names(self) -> list[str]: ...
    def queue_counts(self) -> dict[str, dict[str, Any]]: ...
    def pay_invoice(self, invoice_id: str) -> tuple[int, dict[str, Any]]: ...


class GatewayRejectionError(Exception):
    """API Gateway answers itself with the gateway response ``kind``."""

    def __init__(self, kind: str, message: str | None) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def route_pattern(path: str) -> re.Pattern[str]:
    """``/v1/customers/{id}`` -> a regex with a group per parameter (``{proxy+}`` takes the rest)."""
    pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    return re.compile("^" + re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", pattern) + "$")


def specificity(route: ApiRoute) -> list[int]:
    """Sort key: literal segments before ``{param}`` before ``{greedy+}``, then a method before ANY."""
    key = [2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in route.path.strip("/").split("/")]
    return [*key, 9, 1 if route.method == "ANY" else 0]


def policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """IAM-style evaluation of an authorizer's policy: an explicit Deny wins, else some Allow must match."""
    statements = policy.get("Statement") or []
    statements = [statements] if isinstance(statements, dict) else statements
    allowed = False
    for statement in statements:
        actions, resources = statement.get("Action", []), statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        action_ok = any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions)
        if action_ok and any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if str(statement.get("Effect")).lower() == "deny":
                return False
            allowed = allowed or str(statement.get("Effect")).lower() == "allow"
    return allowed


class Gateway:
    """Routes requests to functions through their authorizers; ``invoke(logical_id, event)`` runs one."""

    def __init__(
        self,
        template: Template,
        invoke: Callable[[str, dict[str, Any]], Any],
        control: Control | None = None,
        log_requests: bool = False,
    ) -> None:
        self.invoke, self.control, self.log_requests = invoke, control, log_requests
        self.routes = sorted(template.api_routes(), key=specificity)
        self.patterns = {route: route_pattern(route.path) for route in self.routes}
        self.authorizers: dict[tuple[str | None, str], AuthorizerSpec] = {
            (route.api, name): spec
            for route in self.routes
            for name, spec in template.authorizers(route.api).items()
        }
        self.responses = template.gateway_responses()
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ responses
    def gateway_response(self, kind: str, request_id: str, message: str | None) -> Response:
        """The body, status and headers API Gateway sends for ``kind`` (with the template's overrides)."""
        family = "DEFAULT_5XX" if DEFAULT_STATUS.get(kind, 500) >= 500 else "DEFAULT_4XX"
        spec = self.responses.get(kind) or self.responses.get(family)
        status = DEFAULT_STATUS.get(kind, 500)
        if spec is not None and spec.status_code and spec.response_type == kind:
            status = spec.status_code
        template = (spec.templates if spec else {}).get(
            "application/json"
        ) or '{"message":$context.error.messageString}'
        body = template.replace("$context.requestId", request_id).replace(
            "$context.error.messageString", json.dumps(message)
        )
        body = body.replace("$context.error.message", message or "").replace(
            "$context.error.responseType", kind
        )
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        headers += [("x-amzn-ErrorType", kind), *(spec.headers if spec else {}).items()]
        return status, headers, body.encode()

    # --------------------------------------------------------------------------------- authorizer
    def authorize(self, route: ApiRoute, headers: Mapping[str, str], method_arn: str) -> dict[str, Any]:
        """The requestContext.authorizer of an allowed request; raises GatewayRejectionError otherwise."""
        spec = self.authorizers.get((route.api, str(route.authorizer)))
        if spec is None:
            raise GatewayRejectionError("AUTHORIZER_CONFIGURATION_ERROR", None)
        token = next((v for k, v in headers.items() if k.lower() == spec.header.lower()), None)
        if not token or (spec.validation and not re.fullmatch(spec.validation, token)):
            raise GatewayRejectionError("UNAUTHORIZED", "Unauthorized")
        with self._cache_lock:
            cached = self._cache.get((spec.name, token))
        if cached and time.monotonic() < cached[0]:
            answer = cached[1]
        else:
            event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
            try:
                answer = self.invoke(spec.function, event)
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    raise GatewayRejectionError("UNAUTHORIZED", "Unauthorized") from None
                LOG.exception("authorizer %s failed", spec.function)
                raise GatewayRejectionError("AUTHORIZER_FAILURE", None) from None
            if not isinstance(answer, dict) or not isinstance(answer.get("policyDocument"), dict):
                LOG.error("authorizer %s returned no policyDocument: %.300r", spec.function, answer)
                raise GatewayRejectionError("AUTHORIZER_CONFIGURATION_ERROR", None)
            if spec.ttl > 0:
                with self._cache_lock:
                    self._cache[(spec.name, token)] = (time.monotonic() + spec.ttl, answer)
        if not policy_allows(answer["policyDocument"], method_arn):
            raise GatewayRejectionError("ACCESS_DENIED", "User is not authorized to access this resource")
        context = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in (answer.get("context") or {}).items()
        }
        return {**context, "principalId": answer.get("principalId")}

    # ------------------------------------------------------------------------------------ requests
    def match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        """As API Gateway does: the most specific resource matching ``path`` first, then on it the
        declared ``method``, else its ``ANY``; a resource with neither is not routed (403), even when a
        less specific resource would serve the method."""
        resource = next((r.path for r in self.routes if self.patterns[r].match(path)), None)
        for route in self.routes:
            found = self.patterns[route].match(path) if route.path == resource else None
            if found and route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> Response:
        """Answer one request as API Gateway would."""
        request_id = str(uuid.uuid4())
        parts = urlsplit(raw_path)
        if parts.path.startswith("/_local/"):
            return self._control(method, parts.path)
        try:
            if len(body) > MAX_BODY:
                raise GatewayRejectionError("REQUEST_TOO_LARGE", "Request Too Long")
            found = self.match(method, parts.path)
            if found is None:
                raise GatewayRejectionError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
            route, params = found
            single = {k: v for k, v in headers}
            multi: dict[str, list[str]] = {}
            for key, value in headers:
                multi.setdefault(key, []).append(value)
            method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:local/local/{method}{parts.path}"
            authorizer = self.authorize(route, single, method_arn) if route.authorizer else None
        except GatewayRejectionError as rejection:
            return self.gateway_response(rejection.kind, request_id, rejection.message)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        event = {
            "resource": route.path,
            "path": parts.path,
            "httpMethod": method,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": method,
                "extendedRequestId": request_id,
                # served at the root, as behind a custom domain: no stage prefix in the path, so the
                # OpenAPI document's server (and Swagger UI's "Try it out") is this host's root
                "path": parts.path,
                "stage": "local",
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent")},
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "domainName": single.get("Host", "localhost"),
                "authorizer": authorizer,
            },
            "body": text if body else None,
            "isBase64Encoded": encoded,
        }
        try:
            response = self.invoke(route.function, event)
            status = int(response["statusCode"])
        except Exception:
            LOG.exception("%s failed on %s %s", route.function, method, parts.path)
            return self.gateway_response("DEFAULT_5XX", request_id, "Internal server error")
        out = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
        multi_out = response.get("multiValueHeaders") or {}
        out = [(k, v) for k, v in out if k.lower() not in {m.lower() for m in multi_out}]
        out += [(k, str(v)) for k, values in multi_out.items() for v in values]
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        return status, [*out, ("x-amzn-RequestId", request_id)], raw

    def _control(self, method: str, path: str) -> Response:
        parts = path.strip("/").split("/")
        answer: dict[str, Any]
        status, answer = (
            404,
            {"error": {"code": "route_not_found", "message": f"no local route {method} {path}"}},
        )
        if self.control is not None and parts[1:2] == ["schedules"]:
            if method == "GET" and len(parts) == 2:
                status, answer = 200, {"schedules": self.control.schedule_names()}
            elif method == "POST" and len(parts) == 4 and parts[3] == "fire":
                try:
                    status, answer = (
                        200,
                        {"schedule": parts[2], "result": self.control.fire_schedule(parts[2])},
                    )
                except KeyError as exc:
                    message = str(exc.args[0]) if exc.args else f"no schedule {parts[2]}"
                    status, answer = 404, {"error": {"code": "schedule_not_found", "message": message}}
                except Exception as exc:
                    LOG.exception("schedule %s failed", parts[2])
                    status, answer = 500, {"error": {"code": "schedule_failed", "message": repr(exc)}}
        elif self.control is not None and method == "GET" and parts[1:] == ["queues"]:
            status, answer = 200, {"queues": self.control.queue_counts()}
        elif self.control is not None and method == "POST" and _is_pay(parts):
            try:
                status, answer = self.control.pay_invoice(unquote(parts[3]))
            except Exception as exc:
                LOG.exception("paying %s in the local Stripe failed", parts[3])
                status, answer = 500, {"error": {"code": "local_stripe_failed", "message": repr(exc)}}
        request_id = str(uuid.uuid4())
        if isinstance(answer.get("error"), dict):
            answer = {**answer, **_one_error_shape(status, answer["error"], request_id)}
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        return status, headers, json.dumps(answer, default=str).encode()

    # -------------------------------------------------------------------------------------- server
    def bind(self, host: str, port: int) -> int:
        """Open the listening socket (raises OSError if the port is taken); returns the port."""
        self.server = ThreadingHTTPServer((host, port), _handler_class(self))
        self.server.daemon_threads = True
        return int(self.server.server_address[1])

    def serve(self) -> None:
        assert self.server is not None, "bind() first"
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server is not None:
            if self._thread is not None:
                self.server.shutdown()
                self._thread.join(5)
            self.server.server_close()
            self.server = None


def _one_error_shape(status: int, error: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A local route's error in the API's one error shape (``type``, ``code``, ``message``,
    ``request_id``)."""
    from neruba.errors import error_body

    kind = "api_error" if status >= 500 else "invalid_request_error"
    return error_body(kind, str(error.get("code")), str(error.get("message")), request_id)


def _is_pay(parts: list[str]) -> bool:
    """``_local/stripe/invoices/{invoice_id}/pay``"""
    return len(parts) == 5 and parts[1:3] == ["stripe", "invoices"] and parts[4] == "pay"


def _handler_class(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():
                    pass
                return b"".join(chunks)
            declared = (self.headers.get("Content-Length") or "0").strip()
            if not declared.isdigit():
                raise ValueError(f"Content-Length {declared!r} is not a byte count")
            length = int(declared)
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                body = b""
            if len(body) < length:
                raise ValueError(f"the body ended before its Content-Length of {length} bytes")
            return body

        def _any(self) -> None:
            started = time.monotonic()
            self.connection.settimeout(BODY_TIMEOUT_S)
            try:
                body_in = self._read_body()
            except (ValueError, OSError) as exc:  # malformed framing: API Gateway answers 400, never hangs
                self.close_connection = True
                request_id = str(uuid.uuid4())
                status, headers, body = gateway.gateway_response(
                    "DEFAULT_4XX", request_id, f"Bad Request: {exc}"
                )
            else:
                status, headers, body = gateway.handle(
                    self.command, self.path, list(self.headers.items()), body_in, self.client_address[0]
                )
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if gateway.log_requests:
                elapsed = (time.monotonic() - started) * 1000
                sys.stderr.write(f"{self.command} {self.path} -> {status} ({elapsed:.0f} ms)\n")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
