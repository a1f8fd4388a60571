"""Every route of every API function, called with every kind of caller, answers as documented.

The table is built from template.yaml (which function serves which route, which routes skip the
authorizer) and from each route's own scope requirement, so a route added later is covered without
editing this file. Callers: no key at all, and keys with exactly one of the scopes ingest, read, admin.
Unknown and revoked keys never reach a function (the authorizer refuses them: see
test_auth_and_keys.py and the local-stack tests); what a function must do is refuse a key without
the route's scope *before* it reads or validates anything, and never answer 5xx.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from neruba.api.scopes import route_scope
from neruba_tools.local.intrinsics import load_template
from tests.support.api import api_event, call

ROOT = Path(__file__).resolve().parents[3]
CALLERS = {"no key": None, "ingest key": "ingest", "read key": "read", "admin key": "admin"}
SAMPLE_VALUES = {
    "customer_id": "acme",
    "subscription_id": "sub_" + "0" * 20,
    "transaction_id": "tx-1",
    "code": "api_calls",
    "plan_code": "basic",
    "version": "1",
}


def _routes() -> list[tuple[str, str, str, bool]]:
    """(function folder, method, path, public) for every Api event in template.yaml."""
    template = load_template(ROOT / "template.yaml")
    rows = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        folder = Path(props["CodeUri"]).name
        for event in (props.get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            auth = (event["Properties"].get("Auth") or {}).get("Authorizer")
            rows.append(
                (folder, event["Properties"]["Method"].upper(), event["Properties"]["Path"], auth == "NONE")
            )
    return sorted(rows)


def _configure_stripe() -> None:
    import json

    import boto3

    from neruba.logic.stripe.secrets import clear_cache
    from neruba.settings import get_settings

    boto3.client("ssm").put_parameter(
        Name=get_settings().stripe_secret_name or "/neruba/stripe",
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps({"api_key": "sk_test_access", "webhook_secrets": ["whsec_access"]}),
    )
    clear_cache()


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_VALUES.get(m.group(1), "x1"), path)


ROUTES = _routes()


@pytest.mark.parametrize(
    ("folder", "method", "path", "public"), ROUTES, ids=[f"{m} {p}" for _, m, p, _ in ROUTES]
)
def test_each_route_answers_each_caller_as_documented(
    aws: dict[str, str], folder: str, method: str, path: str, public: bool
) -> None:
    # GIVEN a configured deployment (the Stripe webhook answers 503 until its secret exists, so that Stripe
    # retries instead of losing the event), the function that serves the route, and its required scope
    _configure_stripe()
    module = importlib.import_module(f"functions.{folder}.app")
    concrete = _concrete(path)
    required = route_scope(module.app, method, concrete)
    # THEN a route either skips the authorizer in the template or requires a scope in code, never neither
    assert public or required is not None, f"{method} {path} is behind the authorizer but checks no scope"
    if public:
        assert required is None, f"{method} {path} skips the authorizer yet requires {required!r}"
    for caller, scope in CALLERS.items():
        # WHEN each caller calls it (a POST with an empty JSON object)
        event = api_event(
            method, concrete, body={} if method in ("POST", "PUT", "PATCH") else None, scopes=scope
        )
        status, body, _ = call(module.lambda_handler, event)
        # THEN: never 5xx; the wrong caller gets 401 / 403 in the one error shape; the right one gets past
        assert status < 500, (caller, method, path, body)
        if public or scope == required:
            assert status not in (401, 403), (caller, method, path, body)
        elif scope is None:
            assert status == 401 and body["error"]["code"] == "unauthorized", (caller, method, path, body)
        else:
            assert status == 403 and body["error"]["code"] == "insufficient_scope", (
                caller,
                method,
                path,
                body,
            )
        if status >= 400:
            assert set(body["error"]) >= {"type", "code", "message", "request_id"}


def test_admin_scope_is_required_by_every_admin_route() -> None:
    # GIVEN every route under /admin; the only ones without the authorizer are the ANY events that answer
    # 405 to a method the path does not serve (docs/api.md), and they run no admin code
    admin_routes = [(f, m, p) for f, m, p, public in ROUTES if p.startswith("/admin/") and not public]
    unguarded = {(f, m) for f, m, p, public in ROUTES if p.startswith("/admin/") and public}
    assert unguarded == {("method_not_allowed", "ANY")}
    for folder, method, path in admin_routes:
        module = importlib.import_module(f"functions.{folder}.app")
        # THEN each one requires the admin scope
        assert route_scope(module.app, method, _concrete(path)) == "admin", (method, path)
