"""The local stack: moto server + tables and queues + API gateway + queue pollers + schedules, all from
template.yaml.

Example:
    >>> with LocalStack() as stack:  # doctest: +SKIP
    ...     print(stack.base_url)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from neruba_tools.local.functions import LocalFunction, load_functions
from neruba_tools.local.gateway import Gateway
from neruba_tools.local.pollers import QueuePoller
from neruba_tools.local.provision import LocalResolver, provision_template
from neruba_tools.local.schedules import Schedule
from neruba_tools.local.template import Intrinsics, function_environment, load_template, resources_of

LOCAL_PARAMETERS = {"Stage": "local", "DocsEnabled": "true"}


class PortInUseError(RuntimeError):
    """A port the stack needs is taken."""


def _free_port(host: str, port: int, flag: str) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(f"{host}:{port} is already in use; choose another with {flag} PORT") from exc
        return int(probe.getsockname()[1])


class LocalStack:
    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        repo_root: str | Path = ".",
        host: str = "127.0.0.1",
        api_port: int = 0,
        moto_port: int = 0,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "neruba-local",
        schedules: bool = True,
    ) -> None:
        self.repo_root = Path(repo_root).resolve()
        self.template = load_template(self.repo_root / template_path)
        self.host, self.api_port, self.moto_port = host, api_port, moto_port
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.stack_name = stack_name
        self.with_schedules = schedules
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[QueuePoller] = []
        self.schedules: dict[str, Schedule] = {}
        self.env: dict[str, str] = {}
        self.gateway: Gateway | None = None
        self._moto: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def moto_url(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    def start(self) -> LocalStack:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto_port = _free_port(self.host, self.moto_port, "--moto-port")
        api_port = _free_port(self.host, self.api_port, "--port")
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()
        self._set_environment()
        provision_template(self.template, self.stack_name, self.parameters)
        self.functions = load_functions(self.template, self.repo_root)
        self.gateway = Gateway(self.template, self.functions)
        self.gateway.control = self._control
        self.api_port = self.gateway.serve(self.host, api_port)
        self._start_workers()
        return self

    def _set_environment(self) -> None:
        resolver = LocalResolver(self.template, self.stack_name)
        intrinsics = Intrinsics(self.template, resolver, self.parameters, self.stack_name)
        env = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        for logical_id in resources_of(self.template, "AWS::Serverless::Function"):
            env.update(
                {
                    k: str(v)
                    for k, v in intrinsics.evaluate(function_environment(self.template, logical_id)).items()
                }
            )
        env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        env["POWERTOOLS_LOG_LEVEL"] = os.environ.get("NERUBA_LOCAL_LOG_LEVEL", "WARNING")
        self.env = env
        os.environ.update(env)
        from neruba.dal.clients import reset_clients
        from neruba.settings import get_settings

        reset_clients()
        get_settings.cache_clear()

    def _start_workers(self) -> None:
        resolver = LocalResolver(self.template, self.stack_name)
        sqs = boto3.client("sqs", endpoint_url=self.moto_url, config=Config(retries={"max_attempts": 1}))
        for logical_id, function in self.functions.items():
            for name, event in function.properties.get("Events", {}).items():
                props = event.get("Properties", {})
                if event.get("Type") == "SQS":
                    queue = props["Queue"]["Fn::GetAtt"][0]
                    poller = QueuePoller(
                        sqs,
                        resolver(queue, None),
                        resolver(queue, "Arn"),
                        function,
                        batch_size=int(props.get("BatchSize", 10)),
                        window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                        report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    )
                    self.pollers.append(poller)
                    poller.start()
                elif event.get("Type") in ("Schedule", "ScheduleV2"):
                    intrinsics = Intrinsics(self.template, resolver, self.parameters, self.stack_name)
                    schedule = Schedule(
                        f"{logical_id}.{name}", str(intrinsics.evaluate(props["Schedule"])), function
                    )
                    self.schedules[schedule.name] = schedule
                    if self.with_schedules:
                        schedule.start()

    def _control(self, method: str, path: str) -> tuple[int, Any] | None:
        """Local-only routes: POST /_local/schedules/{name}/fire, GET /_local/schedules."""
        if not path.startswith("/_local/"):
            return None
        if method == "GET" and path == "/_local/schedules":
            return 200, {name: s.expression for name, s in self.schedules.items()}
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "schedules" and parts[3] == "fire":
            if parts[2] not in self.schedules:
                return 404, {"error": {"code": "schedule_not_found", "message": parts[2]}}
            return 200, {"schedule": parts[2], "result": self.fire_schedule(parts[2])}
        return 404, {"error": {"code": "route_not_found", "message": path}}

    def fire_schedule(self, name: str) -> Any:
        return self.schedules[name].fire()

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        return self.functions[logical_id].invoke(event)

    def stop(self) -> None:
        for schedule in self.schedules.values():
            schedule.stop()
        for poller in self.pollers:
            poller.stop()
        if self.gateway:
            self.gateway.stop()
        if self._moto:
            self._moto.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
