"""What each Lambda handler imports at cold start (a fresh interpreter per handler, as Lambda starts one).

Heavy packages are imported only where used: only the Stripe functions may import ``stripe``, and the
system API imports no other route module until a docs request asks for them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.cold_start import _HANDLER, handlers, run_python

ROOT = Path(__file__).resolve().parents[2]
_REPORT = """
import json, sys
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "stripe", "neruba"))))
"""


def _imported_by(path: Path) -> set[str]:
    env = {key: value for key, value in os.environ.items() if key != "AWS_ENDPOINT_URL"}
    return set(run_python(_HANDLER.format(path=str(path)) + _REPORT, env))


@pytest.fixture(scope="module")
def imported() -> dict[str, set[str]]:
    return {name: _imported_by(path) for name, (path, _kind) in handlers().items()}


def test_only_stripe_functions_import_stripe(imported: dict[str, set[str]]) -> None:
    # GIVEN every handler imported in a fresh interpreter
    # WHEN / THEN only functions named Stripe* may have loaded the stripe SDK
    offenders = {name for name, modules in imported.items() if "stripe" in modules and "Stripe" not in name}
    assert not offenders


def test_system_api_imports_no_other_route_module_before_a_docs_request(
    imported: dict[str, set[str]],
) -> None:
    # GIVEN the system API (health, readiness, docs) imported cold
    routes = {m for m in imported["SystemApiFunction"] if m.startswith("neruba.api.routes.")}
    # THEN only its own router is loaded: the documented ones come with the first /docs or /openapi.json
    assert routes == {"neruba.api.routes.system"}


def test_functions_that_only_page_or_validate_ids_build_no_catalog_models(
    imported: dict[str, set[str]],
) -> None:
    # GIVEN handlers whose routes only need id patterns and cursors from the catalog modules
    # WHEN / THEN they do not import the catalog models (each pydantic model built costs the cold start)
    for name in ("ReadApiFunction", "BillingApiFunction", "OpsApiFunction", "StripeWebhookFunction"):
        assert "neruba.models.catalog" not in imported[name], name


def test_the_405_function_imports_no_route_module_and_no_aws_sdk(imported: dict[str, set[str]]) -> None:
    # GIVEN the function every API path's ANY event reaches, imported cold
    modules = imported["MethodNotAllowedFunction"]
    # THEN it loads no route module, no model and no boto3: it only lists methods and answers 405
    assert not {m for m in modules if m.startswith(("neruba.api.routes.", "neruba.models.", "neruba.dal"))}
    assert "boto3" not in modules
