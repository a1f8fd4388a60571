"""Test-wide environment: fake AWS credentials, Neruba settings, no metric output, no real AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "neruba",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "NERUBA_STAGE": "local",
    "NERUBA_KEYS_TABLE": "test-KeysTable",
    "NERUBA_CATALOG_TABLE": "test-CatalogTable",
    "NERUBA_USAGE_TABLE": "test-UsageTable",
    "NERUBA_BILLING_TABLE": "test-BillingTable",
    "NERUBA_LEDGER_TABLE": "test-LedgerTable",
    "NERUBA_OPS_TABLE": "test-OpsTable",
    "NERUBA_INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-IngestQueue",
    "NERUBA_BILLING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-BillingQueue",
    "NERUBA_STRIPE_EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-StripeEventsQueue",
    "NERUBA_STRIPE_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-StripeSyncQueue",
    "NERUBA_WEBHOOK_DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-WebhookDeliveryQueue",
    "NERUBA_DOCS_ENABLED": "true",
    "NERUBA_STRIPE_SECRET_NAME": "/neruba/stripe",
}
for _key, _value in TEST_ENVIRONMENT.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session", autouse=True)
def _moto_patched() -> Iterator[None]:
    """moto with the local stack's patches (neruba_tools.local.emulator.EmulatorPatches): transactions back
    up the items they name instead of deep-copying tables, queries read the queried partition, answers are
    written with their member names worked out once, and DynamoDB requests run one at a time. The same
    answers and stored state as moto's own code (tests/infra/test_local_emulator.py and
    test_answer_lookups.py compare them, with the patches taken out by ``moto_as_released``), in about
    half the time per functional test."""
    from neruba_tools.local.emulator import EmulatorPatches

    with EmulatorPatches():
        yield


@pytest.fixture
def moto_as_released() -> Iterator[None]:
    """moto's own code for one test, even under the session's patches (``_moto_patched``): for the tests
    that compare the patches with moto."""
    from neruba_tools.local.emulator import EmulatorPatches

    depth = EmulatorPatches._depth
    for _ in range(depth):
        EmulatorPatches().uninstall()
    try:
        yield
    finally:
        for _ in range(depth):
            EmulatorPatches().install()


@pytest.fixture(autouse=True)
def _fresh_wiring() -> Iterator[None]:
    """Each test starts from an empty composition root: its own settings (a test that patches NERUBA_*
    variables must not leave them cached for the next one), clients, contexts and caches, and nothing a
    test installed in ``neruba.bootstrap`` survives it (nor the SQS client of tests.support.queues)."""
    from neruba import bootstrap
    from tests.support.queues import forget_client

    bootstrap.reset()
    forget_client()
    yield
    bootstrap.reset()
    forget_client()


@pytest.fixture(autouse=True)
def _inline_backfills_unhurried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill request runs inline for ``INLINE_SECONDS`` (10 s) and leaves the rest to the billing
    worker. On a loaded machine (two workers on two cores) a test's commit can reach that time and answer
    ``committing`` where the test expects the inline answer; tests run inline without the time budget,
    and the tests of the budget set it themselves (its 50-event bound still applies)."""
    from neruba.logic.billing import backfill_commit

    monkeypatch.setattr(backfill_commit, "INLINE_SECONDS", 600)


# Parallel runs (pytest-xdist, `make pytest`; docs/testing.md "Parallel workers"). Each worker is a process
# with its own moto, environment and fixtures. A test that needs a package-, module- or session-scoped
# fixture of ours shares one worker with the other tests of that fixture (`--dist loadgroup` keeps an
# xdist_group on one worker), so a local stack or the SAM transform is set up once, not once per worker.
# Session fixtures cheap enough to set up in every worker are listed here.
EVERY_WORKER = frozenset({"_moto", "source"})
# The longest tests (seconds on a quiet machine), started first so that no worker ends with one of them
# while the other is idle.
LONG_FIRST = ("tests/oracle/", "tests/client/test_client_faults.py")


# Deep cases (docs/testing.md "Deep cases"): the kill points of a fault matrix beyond a covering set (marker
# ``deep``), and the full size of scaled tests (marker ``scaled``: property runs, storms, fuzzing, sized with
# ``tests.support.deep.size``). ``make test`` leaves the deep cases out and runs scaled tests small
# (``--deep skip``, the default); ``make deep`` runs the deep cases and the scaled tests at full size
# (``--deep only``); ``--deep all`` runs everything, scaled tests at full size.
DEEP_CHOICES = ("skip", "only", "all")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--deep",
        choices=DEEP_CHOICES,
        default="skip",
        help="deep cases (marker deep): skip them (default, make test), run only them (make deep), or all",
    )


def deep_selection(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect what ``--deep`` leaves out (reported as deselected, never as passed)."""
    mode = config.getoption("--deep")
    if mode == "all":
        return
    keep, drop = [], []
    for item in items:
        deep = item.get_closest_marker("deep") is not None
        scaled = item.get_closest_marker("scaled") is not None
        (keep if (deep or scaled if mode == "only" else not deep) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deep_selection(config, items)
    for item in items:
        group = shared_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))  # stable: the rest keeps its order


def shared_fixture_group(item: pytest.Item) -> str | None:
    """The widest of the test's package-, module- or session-scoped fixtures defined under tests/, as a
    group name (None: the test can run on any worker)."""
    rank = {"module": 1, "package": 2, "session": 3}
    widest: tuple[int, str] | None = None
    fixtures = getattr(item, "_fixtureinfo", None)
    for name, definitions in fixtures.name2fixturedefs.items() if fixtures else ():
        for definition in definitions:
            scope = definition.scope
            if scope not in rank or name in EVERY_WORKER or not definition.baseid.startswith("tests"):
                continue
            owner = item.nodeid.split("::", 1)[0] if scope == "module" else definition.baseid
            candidate = (rank[scope], f"{scope}:{owner}:{name}" if scope != "module" else f"module:{owner}")
            widest = max(widest, candidate) if widest else candidate
    return widest[1] if widest else None


# IAM check (docs/deploy.md "IAM check"): every AWS call a function makes during the tests must be allowed
# by that function's policy in template.yaml. Each process records (tests/support/iam_recorder.py); xdist
# workers hand their records to the controller, which compares them with the template at the session's end
# and fails the session with the list of missing permissions.
IAM_CHECK = os.environ.get("NERUBA_IAM_CHECK", "on") != "off"
_iam_rows: list[list[str]] = []


def pytest_configure(config: pytest.Config) -> None:
    os.environ["NERUBA_DEEP"] = config.getoption("--deep")  # read by tests.support.deep.size at import
    if IAM_CHECK:
        from tests.support import iam_recorder

        iam_recorder.install()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    _iam_rows.extend(getattr(node, "workeroutput", {}).get("iam_calls", []))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IAM_CHECK:
        return
    from tests.support import iam_recorder

    rows = iam_recorder.recorded()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller checks
        workeroutput["iam_calls"] = rows
        return
    from neruba_tools.iam_policies import Call, gaps, report
    from tests.support.aws import _template

    found = gaps(_template(), [Call(*row) for row in [*_iam_rows, *rows]])
    if found:
        session.config.stash[_IAM_REPORT] = report(found)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


_IAM_REPORT = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    text = config.stash.get(_IAM_REPORT, None)
    if text:
        terminalreporter.section("IAM check", red=True)  # type: ignore[attr-defined]
        terminalreporter.write_line(text)  # type: ignore[attr-defined]
