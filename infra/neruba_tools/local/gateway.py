"""An HTTP server that answers like API Gateway (REST API, Lambda proxy, TOKEN authorizer, gateway
responses), with routes, authorizer and error bodies all read from template.yaml."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from neruba_tools.local.functions import LocalFunction
from neruba_tools.local.template import ACCOUNT_ID, REGION, resources_of


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorized: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\\{([^}]+)\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def routes_of(template: Mapping[str, Any]) -> list[Route]:
    routes = []
    for logical_id, resource in resources_of(template, "AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "Api":
                props = event["Properties"]
                authorizer = props.get("Auth", {}).get("Authorizer")
                routes.append(Route(props["Method"].upper(), props["Path"], logical_id, authorizer != "NONE"))
    # literal segments before parameters, as API Gateway prefers the most specific resource
    return sorted(routes, key=lambda r: [(s.startswith("{"), s) for s in r.path.split("/")])


class Gateway:
    """Routes requests to functions through the authorizer; call ``serve(host, port)`` to start."""

    def __init__(self, template: Mapping[str, Any], functions: Mapping[str, LocalFunction]) -> None:
        self.functions = functions
        self.routes = routes_of(template)
        api = next(iter(resources_of(template, "AWS::Serverless::Api").values()), {})
        auth = api.get("Properties", {}).get("Auth", {})
        name = auth.get("DefaultAuthorizer")
        spec = auth.get("Authorizers", {}).get(name, {}) if name else {}
        self.authorizer = spec.get("FunctionArn", {}).get("Fn::GetAtt", [None])[0] if spec else None
        self.identity_header = spec.get("Identity", {}).get("Header", "Authorization")
        self.cache_ttl = int(spec.get("Identity", {}).get("ReauthorizeEvery", 0) or 0)
        self.responses = {
            r["Properties"]["ResponseType"]: r["Properties"]
            for r in resources_of(template, "AWS::ApiGateway::GatewayResponse").values()
        }
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.control: Callable[[str, str], tuple[int, Any] | None] = lambda method, path: None
        self.server: ThreadingHTTPServer | None = None

    def gateway_error(
        self, kind: str, default_status: int, request_id: str, message: str
    ) -> tuple[int, dict[str, str], bytes]:
        spec = self.responses.get(kind) or self.responses.get(
            "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX", {}
        )
        template = spec.get("ResponseTemplates", {}).get(
            "application/json", '{"message": $context.error.messageString}'
        )
        body = template.replace("$context.requestId", request_id).replace(
            "$context.error.messageString", json.dumps(message)
        )
        return (
            int(spec.get("StatusCode", default_status)),
            {"Content-Type": "application/json"},
            body.encode(),
        )

    def authorize(self, token: str | None, method: str, path: str) -> dict[str, Any] | str:
        if not token:
            return "UNAUTHORIZED"
        cached = self._cache.get(token)
        if cached and time.monotonic() - cached[0] < self.cache_ttl:
            return cached[1]
        arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:local/local/{method}{path}"
        try:
            policy = self.functions[str(self.authorizer)].invoke(
                {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
            )
        except Exception as exc:
            return "UNAUTHORIZED" if str(exc) == "Unauthorized" else "AUTHORIZER_FAILURE"
        statement = policy["policyDocument"]["Statement"][0]
        if statement["Effect"] != "Allow":
            return "ACCESS_DENIED"
        context = {**policy.get("context", {}), "principalId": policy.get("principalId")}
        self._cache[token] = (time.monotonic(), context)
        return context

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        request_id = str(uuid.uuid4())
        parts = urlsplit(raw_path)
        control = self.control(method, parts.path)
        if control is not None:
            return (
                control[0],
                {"Content-Type": "application/json"},
                json.dumps(control[1], default=str).encode(),
            )
        for route in self.routes:
            params = route.match(method, parts.path)
            if params is not None:
                break
        else:
            return self.gateway_error(
                "MISSING_AUTHENTICATION_TOKEN", 403, request_id, "Missing Authentication Token"
            )
        authorizer: dict[str, Any] | None = None
        if route.authorized and self.authorizer:
            token = next((v for k, v in headers.items() if k.lower() == self.identity_header.lower()), None)
            answer = self.authorize(token, method, parts.path)
            if isinstance(answer, str):
                status = {"UNAUTHORIZED": 401, "ACCESS_DENIED": 403}.get(answer, 500)
                return self.gateway_error(answer, status, request_id, answer.replace("_", " ").title())
            authorizer = answer
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            text, encoded = body.decode(), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        event = {
            "resource": route.path,
            "path": parts.path,
            "httpMethod": method,
            "headers": dict(headers),
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": "/local" + parts.path,
                "stage": "local",
                "requestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "identity": {"sourceIp": "127.0.0.1"},
                **({"authorizer": authorizer} if authorizer else {}),
            },
            "body": text if body else None,
            "isBase64Encoded": encoded,
        }
        try:
            response = self.functions[route.function].invoke(event)
        except Exception:
            return self.gateway_error("DEFAULT_5XX", 502, request_id, "Internal server error")
        out_headers = dict(response.get("headers") or {})
        out_headers.update({k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items() if v})
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        return int(response["statusCode"]), out_headers, raw

    def serve(self, host: str, port: int) -> int:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, headers, body = gateway.handle(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    self.rfile.read(length) if length else b"",
                )
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True).start()
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
