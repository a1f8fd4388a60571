"""The template's functions, loaded from their CodeUri and called like Lambda calls them."""

from __future__ import annotations

import importlib.util
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neruba_tools.local.template import ACCOUNT_ID, REGION, resources_of


class LocalContext:
    """What a handler sees of its Lambda context."""

    def __init__(self, name: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._timeout_ms = timeout * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


@dataclass
class LocalFunction:
    """One function of the template: its handler, loaded on first call, one invocation at a time
    (as in one Lambda container; Powertools keeps per-invocation state in globals)."""

    logical_id: str
    path: Path
    attribute: str
    memory: int
    timeout: int
    properties: Mapping[str, Any]
    _handler: Callable[..., Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> Callable[..., Any]:
        if self._handler is None:
            spec = importlib.util.spec_from_file_location(f"neruba_fn_{self.logical_id}", self.path)
            if spec is None or spec.loader is None:
                raise ImportError(f"{self.logical_id}: no module at {self.path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._handler = getattr(module, self.attribute)
        return self._handler

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            return self.handler()(event, LocalContext(self.logical_id, self.memory, self.timeout))


def load_functions(template: Mapping[str, Any], repo_root: Path) -> dict[str, LocalFunction]:
    defaults = template.get("Globals", {}).get("Function", {})
    functions = {}
    for logical_id, resource in resources_of(template, "AWS::Serverless::Function").items():
        props = {**defaults, **resource.get("Properties", {})}
        module, attribute = str(props["Handler"]).rsplit(".", 1)
        functions[logical_id] = LocalFunction(
            logical_id,
            repo_root / str(props["CodeUri"]) / f"{module}.py",
            attribute,
            int(props.get("MemorySize", 128)),
            int(props.get("Timeout", 3)),
            props,
        )
    return functions
