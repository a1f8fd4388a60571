"""The local stack runs a function's invocations as Lambda does: several at once, each in an execution
environment of its own (its own module globals), never more at once than the function's pool allows."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neruba_tools.local.isolation import isolate_resolver_state
from neruba_tools.local.pool import CONCURRENCY_VARIABLE, DEFAULT_CONCURRENCY, EnvironmentPool, pool_size
from neruba_tools.local.stack import LocalFunction
from neruba_tools.local.template import FunctionSpec, Template

PROBE = "neruba_local_pool_probe"  # a module every environment shares, as the neruba package is shared


@pytest.fixture
def probe() -> Any:
    module = types.ModuleType(PROBE)
    module.lock = threading.Lock()  # type: ignore[attr-defined]
    module.running = 0  # type: ignore[attr-defined]
    module.peak = 0  # type: ignore[attr-defined]
    module.spans = []  # type: ignore[attr-defined]
    sys.modules[PROBE] = module
    yield module
    sys.modules.pop(PROBE, None)


SLOW_HANDLER = f"""
import threading, time
import {PROBE} as probe

STATE = {{"invocations": 0}}  # module global: one per execution environment

def lambda_handler(event, context):
    with probe.lock:
        probe.running += 1
        probe.peak = max(probe.peak, probe.running)
    started = time.monotonic()
    STATE["invocations"] += 1
    seen = STATE["invocations"]
    time.sleep(event.get("sleep", 0.4))
    with probe.lock:
        probe.running -= 1
        probe.spans.append((started, time.monotonic()))
    return {{"state": id(STATE), "seen": seen, "request": context.aws_request_id}}
"""


def _function(tmp_path: Path, source: str, concurrency: int | None, name: str = "Slow") -> LocalFunction:
    code = tmp_path / name.lower()
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(textwrap.dedent(source))
    spec = FunctionSpec(name, code.name, "app.lambda_handler", 128, 30, {})
    return LocalFunction(spec, tmp_path, f"local-{name}", concurrency)


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        barrier.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_slow_invocations_of_one_function_overlap(tmp_path: Path, probe: Any) -> None:
    # GIVEN a function whose invocation takes 0.4 s, with a pool of 2
    function = _function(tmp_path, SLOW_HANDLER, concurrency=2)
    # WHEN two invocations start at once
    started = time.monotonic()
    results = _at_once([lambda: function({"sleep": 0.4}), lambda: function({"sleep": 0.4})])
    elapsed = time.monotonic() - started
    # THEN they ran at the same time: each started before the other ended, in two environments
    (a_start, a_end), (b_start, b_end) = probe.spans
    assert a_start < b_end and b_start < a_end
    assert probe.peak == 2
    assert elapsed < 0.75
    assert results[0]["state"] != results[1]["state"]


def test_the_pool_bound_holds(tmp_path: Path, probe: Any) -> None:
    # GIVEN a function with a pool of 2
    function = _function(tmp_path, SLOW_HANDLER, concurrency=2)
    # WHEN six invocations arrive at once
    results = _at_once([lambda: function({"sleep": 0.15}) for _ in range(6)])
    # THEN never more than two ran at once, two environments served all six, and every one answered
    assert probe.peak == 2
    assert function.pool.created == 2
    assert function.pool.peak == 2
    assert len({r["state"] for r in results}) == 2
    assert sorted(r["seen"] for r in results) == [1, 1, 2, 2, 3, 3]


def test_per_invocation_state_is_not_shared(tmp_path: Path, probe: Any) -> None:
    # GIVEN a function with a pool of 3
    function = _function(tmp_path, SLOW_HANDLER, concurrency=3)
    # WHEN three invocations run at once, then one more alone
    together = _at_once([lambda: function({"sleep": 0.2}) for _ in range(3)])
    alone = function({"sleep": 0})
    # THEN each concurrent invocation had its own module globals and its own Lambda context; the later
    # one reused an environment (a warm start), whose globals it saw
    assert len({r["state"] for r in together}) == 3
    assert [r["seen"] for r in together] == [1, 1, 1]
    assert len({r["request"] for r in [*together, alone]}) == 4
    assert alone["state"] in {r["state"] for r in together}
    assert alone["seen"] == 2


RESOLVER_HANDLER = """
import time
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from neruba_local_pool_router import router  # shared by every environment, as neruba's routers are

def remember_caller(app, next_middleware):  # what neruba's scope middleware does with the principal
    app.append_context(caller=app.current_event.query_string_parameters["who"])
    return next_middleware(app)

app = APIGatewayRestResolver()
app.use([remember_caller])
app.include_router(router)

def lambda_handler(event, context):
    return app.resolve(event, context)
"""

ROUTER_MODULE = """
import time
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

router = APIGatewayRouter()

@router.get("/items/<item>")
def read(item: str):
    time.sleep(0.2)  # another invocation resolves its own request meanwhile
    event = router.current_event
    return {"item": item, "path": event.path, "query": event.query_string_parameters,
            "caller": router.context.get("caller")}
"""


def _event(item: str) -> dict[str, Any]:
    return {
        "resource": "/items/{item}",
        "path": f"/items/{item}",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": {"who": item},
        "multiValueQueryStringParameters": {"who": [item]},
        "pathParameters": {"item": item},
        "requestContext": {"requestId": item, "path": f"/items/{item}", "stage": "local"},
        "body": None,
        "isBase64Encoded": False,
    }


def test_concurrent_api_requests_each_read_their_own_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Powertools resolver function (Powertools keeps the request in class attributes) in a pool,
    # with the request state made per-thread as the local stack does at start
    isolate_resolver_state()
    (tmp_path / "neruba_local_pool_router.py").write_text(ROUTER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "neruba_local_pool_router", raising=False)
    function = _function(tmp_path, RESOLVER_HANDLER, concurrency=4, name="Api")
    # WHEN four requests for different items are resolved at once
    import json

    items = ["a", "b", "c", "d"]
    answers = _at_once([lambda item=item: function(_event(item)) for item in items])  # type: ignore[misc]
    # THEN each route read its own request's path, query and context (through the shared router), never
    # another's
    bodies = [json.loads(answer["body"]) for answer in answers]
    assert bodies == [{"item": i, "path": f"/items/{i}", "query": {"who": i}, "caller": i} for i in items]


def test_pool_size_comes_from_the_reserved_concurrency_else_the_local_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CONCURRENCY_VARIABLE, raising=False)
    assert pool_size(3) == 3
    assert pool_size(None) == DEFAULT_CONCURRENCY
    monkeypatch.setenv(CONCURRENCY_VARIABLE, "7")
    assert pool_size(None) == 7
    assert pool_size(2) == 2
    with pytest.raises(ValueError, match="at least one"):
        EnvironmentPool(lambda number: print, 0)


def test_the_template_gives_reserved_concurrency_and_each_mapping_its_maximum_concurrency() -> None:
    document = {
        "Resources": {
            "Q": {"Type": "AWS::SQS::Queue"},
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "app.h",
                    "ReservedConcurrentExecutions": 3,
                    "Events": {
                        "S": {
                            "Type": "SQS",
                            "Properties": {
                                "Queue": {"Fn::GetAtt": ["Q", "Arn"]},
                                "ScalingConfig": {"MaximumConcurrency": 5},
                            },
                        }
                    },
                },
            },
            "G": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.h"}},
        }
    }
    template = Template(document)
    assert template.functions()["F"].reserved_concurrency == 3
    assert template.functions()["G"].reserved_concurrency is None
    assert [s.maximum_concurrency for s in template.sqs_sources()] == [5]


def test_a_failed_import_frees_its_place_in_the_pool(tmp_path: Path) -> None:
    # GIVEN a function whose module fails to import, with a pool of 1
    function = _function(tmp_path, "raise RuntimeError('broken')\n", concurrency=1, name="Broken")
    from neruba_tools.local.stack import FunctionLoadError

    # WHEN it is invoked twice
    for _ in range(2):
        with pytest.raises(FunctionLoadError, match="broken"):
            function({})
    # THEN each attempt failed on the import, none waited for an environment that never came
    assert function.pool.created == 0
