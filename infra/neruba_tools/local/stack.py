"""The local stack: a moto server, the template's tables and queues, an API Gateway look-alike, SQS
pollers and schedules, and a local Stripe API (``stripe_local.py``), all built from template.yaml and run
in this process, without Docker.

Example:
    >>> with LocalStack("template.yaml", ".", api_port=0, moto_port=0) as stack:  # doctest: +SKIP
    ...     print(stack.base_url, stack.moto_url)
    ...     stack.fire_schedule("SweeperFunction")
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from neruba_tools.local.emulator import EmulatorPatches
from neruba_tools.local.gateway import Gateway
from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION, load_template
from neruba_tools.local.isolation import isolate_resolver_state
from neruba_tools.local.parameters import parameter_problem
from neruba_tools.local.pollers import QueuePoller
from neruba_tools.local.pool import EnvironmentPool, pool_size
from neruba_tools.local.provision import local_template, provision_template
from neruba_tools.local.schedules import Schedule
from neruba_tools.local.stripe_local import LocalStripe
from neruba_tools.local.template import FunctionSpec

LOG = logging.getLogger("neruba.local")
LOCAL_PARAMETERS = {"Stage": "local", "DocsEnabled": "true"}


class PortInUseError(RuntimeError):
    """A port the stack needs is taken by another process."""


class FunctionLoadError(RuntimeError):
    """A function's handler could not be imported."""


class LocalLambdaContext:
    """What a handler sees of its Lambda context; the remaining time counts down from the Timeout."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.identity = self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """A function of the template, callable as ``function(event)``. Like Lambda, it runs each invocation
    in an execution environment of its own (the handler module imported afresh, with its own globals),
    one invocation per environment at a time, at most ``concurrency`` at once (``pool.py``)."""

    def __init__(
        self, spec: FunctionSpec, repo_root: Path, name: str, concurrency: int | None = None
    ) -> None:
        self.spec, self.name = spec, name
        module, _, self.attribute = spec.handler.rpartition(".")
        self.path = repo_root / spec.code_uri / (module.replace(".", "/") + ".py")
        self.concurrency = concurrency or pool_size(spec.reserved_concurrency)
        self.pool = EnvironmentPool(self._import, self.concurrency)

    def _import(self, number: int) -> Callable[..., Any]:
        """The handler of a new environment: its module, imported under a name of its own."""
        where = f"{self.spec.logical_id} (Handler {self.spec.handler}, {self.path})"
        if not self.path.is_file():
            raise FunctionLoadError(f"{where}: the handler file does not exist")
        module_name = f"neruba_fn_{self.spec.logical_id}" + (f"__{number}" if number else "")
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise FunctionLoadError(f"{where}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise FunctionLoadError(f"{where}: import failed: {exc!r}") from exc
        handler = getattr(module, self.attribute, None)
        if not callable(handler):
            raise FunctionLoadError(f"{where}: no callable {self.attribute}")
        return handler

    def load(self) -> Callable[..., Any]:
        """The handler of an environment (the first is imported now if none exists yet)."""
        return self.pool.first()

    def __call__(self, event: Any, context: Any = None) -> Any:
        with self.pool.environment() as handler:
            context = context or LocalLambdaContext(self.name, self.spec.memory_size, self.spec.timeout)
            started = time.monotonic()
            try:
                return handler(event, context)
            finally:
                if (elapsed := time.monotonic() - started) > self.spec.timeout:
                    LOG.warning(
                        "%s ran %.1f s, over its %d s Timeout",
                        self.spec.logical_id,
                        elapsed,
                        self.spec.timeout,
                    )

    invoke = __call__


def _check_port(host: str, port: int, flag: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"{host}:{port} is already in use; choose another port with {flag} PORT (0 picks a free one)"
            ) from exc


def _reset_neruba_caches() -> None:
    """Forget what the neruba package built for the last environment (contexts, catalog caches,
    repositories, boto3 clients, settings: ``neruba.bootstrap.reset``), if it is importable."""
    try:
        from neruba import bootstrap
    except ImportError:
        return
    bootstrap.reset()


class LocalStack:
    """The whole template on localhost; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        repo_root: str | Path = ".",
        host: str = "127.0.0.1",
        api_port: int = 0,
        moto_port: int = 0,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "neruba-local",
        poll_interval: float = 0.2,
        *,
        schedules: bool = True,
        retry_delay: int | None = None,
        log_requests: bool = False,
        state_dir: str | Path | None = None,
        snapshot_interval: float = 60.0,
        stripe: bool = True,
        stripe_port: int = 0,
    ) -> None:
        self.repo_root = Path(repo_root).resolve()
        self.document = load_template(self.repo_root / template_path)
        declared = self.document.get("Parameters") or {}
        unknown = sorted(set(parameters or {}) - set(declared))
        if unknown:
            known = ", ".join(declared)
            raise ValueError(f"{template_path} declares no parameter {', '.join(unknown)}; it has: {known}")
        for name, value in (parameters or {}).items():
            problem = None if LOCAL_PARAMETERS.get(name) == str(value) else (
                parameter_problem(name, declared[name], str(value))
            )  # fmt: skip
            if problem:
                raise ValueError(problem)
        self.parameters = {
            **{k: v for k, v in LOCAL_PARAMETERS.items() if k in declared},
            **(parameters or {}),
        }
        self.template = local_template(self.document, stack_name, self.parameters)
        self.host, self.api_port, self.moto_port, self.stack_name = host, api_port, moto_port, stack_name
        self.poll_interval, self.retry_delay, self.with_schedules = poll_interval, retry_delay, schedules
        self.functions = {
            logical_id: LocalFunction(
                spec, self.repo_root, self.template.intrinsics.resolve(logical_id, None)
            )
            for logical_id, spec in self.template.functions().items()
        }
        self.gateway = Gateway(self.template, self.invoke, control=self, log_requests=log_requests)
        self.env: dict[str, str] = {}
        self.resources: dict[str, str] = {}  # logical id -> table name / queue URL
        self.queue_urls: dict[str, str] = {}
        self.pollers: list[QueuePoller] = []
        self.schedules: dict[str, Schedule] = {}
        self._moto: Any = None
        self._patches: EmulatorPatches | None = None
        self._saved_env: dict[str, str | None] = {}
        self._started = False
        self.running = False  # True once start() completed, until stop()
        self.state_dir = Path(state_dir) if state_dir else None
        self.snapshot_interval = snapshot_interval
        self.restored: dict[str, int] = {}  # what --state-dir brought back at start
        self._state: Any = None
        self._snapshotter: Any = None
        self._state_lock: Any = None  # the open DIR/.lock while this stack owns its state directory
        self.with_stripe, self.stripe_port = stripe, stripe_port
        self.stripe: LocalStripe | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._client_host}:{self.api_port}"

    @property
    def stripe_url(self) -> str | None:
        """The local Stripe API's address (None without one)."""
        return self.stripe.url if self.stripe is not None else None

    @property
    def stripe_webhook_secret(self) -> str | None:
        return self.stripe.webhook_secret if self.stripe is not None else None

    @property
    def moto_url(self) -> str:
        return f"http://{self._client_host}:{self.moto_port}"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> LocalStack:
        """Start moto, provision, set the handlers' environment, serve the API, start pollers/schedules."""
        if self._started:
            return self
        self._started = True
        isolate_resolver_state()
        self._patches = EmulatorPatches().install()
        try:
            try:
                self.api_port = self.gateway.bind(self.host, self.api_port)
            except OSError as exc:
                raise PortInUseError(
                    f"{self.host}:{self.api_port} is already in use; choose another port with --port PORT "
                    "(or NERUBA_LOCAL_PORT; 0 picks a free one)"
                ) from exc
            self._start_stripe()
            self._start_moto()
            self._set_environment()
            session = boto3.session.Session()
            self.resources = provision_template(self.template, session=session, endpoint_url=self.moto_url)
            queues = self.template.resources("AWS::SQS::Queue")
            self.queue_urls = {k: v for k, v in self.resources.items() if k in queues}
            self._restore_state(session)
            self._configure_stripe(session)
            self._migrate()
            self.gateway.serve()
            self._start_pollers(session)
            self._start_schedules()
            if self._state is not None and self.snapshot_interval > 0:
                from neruba_tools.local.state import Snapshotter

                self._snapshotter = Snapshotter(
                    self._state, self.table_names, self.queue_urls, self.snapshot_interval
                )
                self._snapshotter.start()
        except BaseException:
            self.stop()
            raise
        self.running = True
        return self

    @property
    def table_names(self) -> dict[str, str]:
        return {k: v for k, v in self.resources.items() if k not in self.queue_urls}

    def _restore_state(self, session: Any) -> None:
        """With a state directory: load what the last run saved into the fresh tables and queues."""
        if self.state_dir is None:
            return
        from neruba_tools.local.state import StateDir, claim

        self._state_lock = claim(self.state_dir)  # before any snapshot can be written
        clients = {
            name: session.client(name, endpoint_url=self.moto_url, region_name=REGION)
            for name in ("dynamodb", "sqs", "ssm")
        }
        fake = self.stripe.fake if self.stripe is not None else None
        self._state = StateDir(self.state_dir, clients, {"stripe.json": fake.dump} if fake else None)
        self.restored = self._state.restore(self.table_names, self.queue_urls)
        saved_stripe = self._state.read_file("stripe.json")
        if fake is not None and saved_stripe is not None:
            fake.load(saved_stripe)

    def _save_state(self) -> None:
        """At the stop, with nothing consuming the queues any more: a last snapshot."""
        if self._snapshotter is not None:
            self._snapshotter.stop()
            self._snapshotter = None
        if self._state is not None and self._moto is not None:
            try:
                self._state.save(self.table_names, self.queue_urls)
            except Exception:
                LOG.exception("saving the local stack's state to %s failed", self.state_dir)
        self._state = None
        if self._state_lock is not None:
            self._state_lock.close()
            self._state_lock = None

    def _migrate(self) -> None:
        """Run the data migrations, as the template's ``Custom::Migrations`` resource does on each deploy."""
        if self.template.resources("Custom::Migrations"):
            from neruba.migrations import migrate

            migrate(log=LOG.info)

    def _start_stripe(self) -> None:
        try:
            self.stripe = LocalStripe(self.host, self.stripe_port, enabled=self.with_stripe)
        except OSError as exc:
            raise PortInUseError(
                f"{self.host}:{self.stripe_port} is already in use; choose another port with --stripe-port "
                "PORT (0 picks a free one)"
            ) from exc
        self.stripe.start()

    def _configure_stripe(self, session: Any) -> None:
        """The Stripe parameter (local test key, webhook secret) and the fake's webhook endpoint."""
        name = self.env.get("NERUBA_STRIPE_SECRET_NAME")
        if self.stripe is None or not name:
            return
        ssm = session.client("ssm", endpoint_url=self.moto_url, region_name=REGION)
        self.stripe.configure(ssm, name, self.base_url)

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        if self.moto_port:
            _check_port(self.host, self.moto_port, "--moto-port")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()
        self.moto_port = int(self._moto.get_host_and_port()[1])

    def _set_environment(self) -> None:
        env: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_PROFILE": None,  # a profile from the shell must not send the handlers to real AWS
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        functions: dict[str, str] = {}
        for logical_id in self.functions:
            for key, value in self.template.function_environment(logical_id).items():
                if key in functions and functions[key] != value:
                    LOG.warning("%s sets %s=%r, another function %r: one process has one value", logical_id,
                                key, value, functions[key])  # fmt: skip
                functions[key] = value
        env.update(functions)
        if self.stripe is not None:
            env.update(self.stripe.environment())
        if os.environ.get("NERUBA_LOCAL_LOG_LEVEL"):
            env["POWERTOOLS_LOG_LEVEL"] = os.environ["NERUBA_LOCAL_LOG_LEVEL"]
        for key, setting in env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if setting is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = setting
        self.env = {k: v for k, v in env.items() if v is not None}
        _reset_neruba_caches()

    def _start_pollers(self, session: Any) -> None:
        """Pollers for each SQS event: as many as the mapping's MaximumConcurrency allows, within the
        function's pool (Lambda's pollers scale up to that many concurrent invocations)."""
        config = Config(retries={"max_attempts": 2}, read_timeout=30)
        for source in self.template.sqs_sources():
            if not source.enabled or source.queue not in self.queue_urls:
                LOG.warning(
                    "%s.%s: not polled (disabled or not a queue of the template)",
                    source.function,
                    source.event,
                )
                continue
            function = self.functions[source.function]
            count = min(source.maximum_concurrency or function.concurrency, function.concurrency)
            for number in range(count):
                poller = QueuePoller(
                    session.client("sqs", endpoint_url=self.moto_url, region_name=REGION, config=config),
                    self.queue_urls[source.queue],
                    self.template.intrinsics.resolve(source.queue, "Arn"),
                    function,
                    batch_size=source.batch_size,
                    window=source.window,
                    report_failures=source.report_failures,
                    retry_delay=self.retry_delay,
                    poll_interval=self.poll_interval,
                    timeout=function.spec.timeout,
                    name=f"{source.function}.{source.event}" + (f"#{number}" if number else ""),
                )
                self.pollers.append(poller)
                poller.start()

    def _start_schedules(self) -> None:
        for spec in self.template.schedules():
            name = f"{spec.function}.{spec.event}"
            schedule = Schedule(
                name, spec.expression, self.functions[spec.function], spec.enabled, spec.input, spec.rule_name
            )
            self.schedules[name] = schedule
            if self.with_schedules:
                schedule.start()

    def stop(self) -> None:
        """Stop every thread and moto; undo the environment changes this stack made (if still in place)."""
        workers: list[Schedule | QueuePoller] = [*self.schedules.values(), *self.pollers]
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.stop()
        self.pollers, self.schedules = [], {}
        self.gateway.stop()
        self._save_state()
        if self.stripe is not None:
            self.stripe.stop()
            self.stripe = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._patches is not None:
            self._patches.uninstall()
            self._patches = None
        for key, previous in self._saved_env.items():
            if os.environ.get(key) == self.env.get(key):
                if previous is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = previous
        self._saved_env, self._started, self.running = {}, False, False
        _reset_neruba_caches()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------- actions
    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call a function's handler now, with a fresh Lambda context."""
        return self.functions[logical_id](event)

    def preload(self) -> dict[str, FunctionLoadError]:
        """Import every handler now; returns the ones that failed (logical id -> error)."""
        failed = {}
        for logical_id, function in self.functions.items():
            try:
                function.load()
            except FunctionLoadError as exc:
                failed[logical_id] = exc
        return failed

    def pay_invoice(self, invoice_id: str) -> tuple[int, dict[str, Any]]:
        """Pay our invoice in the local Stripe, which posts a signed ``invoice.paid`` to the webhook route."""
        if self.stripe is None:
            return 503, {"error": {"code": "stack_stopped", "message": "the local stack is not running"}}
        from neruba.dal.invoices import InvoicesRepository
        from neruba.settings import get_settings

        invoice = InvoicesRepository(get_settings().billing_table).get(invoice_id)
        if invoice is None:
            return 404, {"error": {"code": "invoice_not_found", "message": f"no invoice {invoice_id}"}}
        if invoice.status in ("draft", "void"):
            code = "invoice_not_finalized" if invoice.status == "draft" else "invoice_not_payable"
            message = (
                f"{invoice_id} is {invoice.status}: only a finalized invoice is sent to Stripe and can "
                "be paid"
            )
            return 409, {"error": {"code": code, "message": message}}
        return self.stripe.pay(invoice_id)

    def schedule_names(self) -> list[str]:
        return sorted(self.schedules)

    def fire_schedule(self, name: str) -> Any:
        """Run a schedule now, named ``Function.Event``, by its function, its event name or its rule name."""
        if name in self.schedules:
            return self.schedules[name].fire()
        candidates = [
            s for key, s in self.schedules.items() if name in (*key.split("."), s.rule_arn.rsplit("/", 1)[1])
        ]
        if len(candidates) != 1:
            known = ", ".join(self.schedules) or "none"
            raise KeyError(f"schedule {name} names {len(candidates)} schedules (known: {known})")
        return candidates[0].fire()

    def queue_counts(self) -> dict[str, dict[str, Any]]:
        """Every queue with its visible / in-flight / delayed message counts."""
        sqs = boto3.session.Session().client("sqs", endpoint_url=self.moto_url, region_name=REGION)
        counts = {}
        for logical_id, url in self.queue_urls.items():
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            counts[logical_id] = {
                "url": url,
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        return counts
