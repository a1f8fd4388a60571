"""No handler imports more than it uses: ``stripe`` is loaded only by the Stripe functions, and only when
they call Stripe.

Each handler of template.yaml is imported in a fresh interpreter (as a Lambda cold start does: the
function folder's ``app.py`` loaded on its own), then the probe reports which heavy packages ended up in
``sys.modules``. The probes run a few at a time to keep the whole check to a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from neruba_tools.local.intrinsics import load_template
from tests.conftest import TEST_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT_STRIPE = {
    "StripeWebhookFunction",
    "StripeWorkerFunction",
    "StripeSyncFunction",
    "StripeAdminApiFunction",
}
HEAVY = ("stripe", "requests", "boto3", "pydantic")

_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.lambda_handler)
{after}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""

# A call that does need Stripe: checking a webhook signature (it fails, the import is what counts).
_VERIFY_SIGNATURE = """
from neruba.logic.stripe.webhook import InvalidSignatureError, verify_signature
try:
    verify_signature(b"{}", "t=1,v1=00", ["whsec_probe"], now=1)
except InvalidSignatureError:
    pass
"""


def _handlers() -> dict[str, Path]:
    """Logical id -> the handler file, for every function in template.yaml."""
    template = load_template(ROOT / "template.yaml")
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            props = resource["Properties"]
            module = props["Handler"].split(".")[0]
            found[logical_id] = ROOT / props["CodeUri"] / f"{module}.py"
    return found


def _probe(path: Path, after: str = "") -> list[str]:
    env = {**os.environ, **TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}
    env.pop("AWS_ENDPOINT_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(path=str(path), after=after, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.fixture(scope="module")
def imported() -> dict[str, list[str]]:
    """Logical id -> heavy packages loaded by importing its handler in a fresh interpreter."""
    handlers = _handlers()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(handlers, pool.map(_probe, handlers.values()), strict=True))
    return results


def test_every_function_of_the_template_is_probed(imported: dict[str, Any]) -> None:
    # GIVEN the handlers of template.yaml
    # THEN each was imported, including every function allowed to use Stripe
    assert set(imported) >= MAY_IMPORT_STRIPE
    assert len(imported) >= 15


def test_no_handler_imports_stripe_at_cold_start(imported: dict[str, list[str]]) -> None:
    # GIVEN each handler imported in a fresh interpreter
    importing = sorted(name for name, modules in imported.items() if "stripe" in modules)
    # THEN the non-Stripe functions never load stripe, and the Stripe functions defer it until they call
    # Stripe (a stored event processed or replayed without a Stripe call never pays for it)
    assert not [name for name in importing if name not in MAY_IMPORT_STRIPE], importing
    assert importing == [], importing


def test_the_probe_sees_stripe_once_a_handler_needs_it() -> None:
    # GIVEN the webhook handler, imported fresh, then asked to check a signature (which needs stripe)
    path = _handlers()["StripeWebhookFunction"]
    # WHEN the probe runs
    loaded = _probe(path, after=_VERIFY_SIGNATURE)
    # THEN stripe is in sys.modules: the probe can tell (the tests above are not vacuous)
    assert "stripe" in loaded


def test_the_stripe_library_ships_only_with_the_functions_that_call_it() -> None:
    # GIVEN the functions whose code imports stripe at run time (signature checks, the Stripe API client)
    callers = {"StripeWebhookFunction", "StripeSyncFunction"}
    handlers = _handlers()
    for name, path in handlers.items():
        requirements = path.parent / "requirements.txt"
        ships = requirements.exists() and "stripe==" in requirements.read_text()
        # THEN exactly those bundle it (the shared layer does not carry it)
        assert ships == (name in callers), name
    layer = (ROOT / "layers" / "neruba" / "requirements.txt").read_text()
    assert "stripe" not in layer
