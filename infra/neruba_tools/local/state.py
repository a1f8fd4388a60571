"""What the local stack keeps across restarts with ``--state-dir DIR``: every table's items, the messages
waiting in every queue, and the SSM parameters (the local Stripe webhook secret).

moto keeps everything in memory, so without a state directory a stopped or crashed stack loses it all.
With one, the stack writes a snapshot of everything (tables, queues, parameters) every ``interval`` seconds
while it runs and once more when it stops. Queues are read from the in-process moto server's memory, not
received through SQS, so a snapshot neither hides a message from the workers nor counts as a receive; a
message being processed (received, not yet deleted) is in the snapshot, as SQS would deliver it again. At
start the last snapshot is loaded into the freshly provisioned tables and queues.

What a crash loses: every change (table writes, messages sent, received or deleted) since the last
snapshot; the stack restarts from that snapshot, tables and queues from the same moment. A message
restored at start counts its receives from zero again.

Layout: ``DIR/tables/<LogicalId>.jsonl`` (one item per line, DynamoDB's JSON),
``DIR/queues/<LogicalId>.jsonl`` (body and attributes per line), ``DIR/parameters.json``. Each file is
written to a temporary name and renamed, so a snapshot interrupted half-way leaves the previous file whole.
Binary values (DynamoDB ``B``/``BS`` attributes, SQS binary attributes) are written as
``{"__bytes__": "<base64>"}`` and read back as bytes. ``files`` adds JSON files written with every snapshot
(the stack's ``DIR/stripe.json``: the local Stripe's objects).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

BATCH = 25  # BatchWriteItem's limit on AWS (moto does not enforce it)
LOCK_FILE = ".lock"


class StateDirError(RuntimeError):
    """The state directory cannot be used (not writable, or owned by another running stack)."""


class StateDirInUseError(StateDirError):
    """Another running local stack keeps its state in the same directory."""


def claim(path: str | Path) -> Any:
    """Hold ``DIR/.lock`` for as long as the returned file is open: two stacks snapshotting into one
    directory would overwrite each other's tables. The lock is the system's (``flock``), so a crashed stack
    leaves none behind."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK_FILE).open("a+", encoding="utf-8")
    except OSError as exc:
        raise StateDirError(f"cannot keep the state in {directory}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise StateDirInUseError(
            f"the state directory {directory} is in use by another local stack ({owner}); stop it, or give "
            "another --state-dir"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


class StateDir:
    """Snapshots of one local stack's tables, queues and parameters in a directory."""

    def __init__(
        self,
        path: str | Path,
        clients: Mapping[str, Any],
        files: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.dynamodb, self.sqs, self.ssm = clients["dynamodb"], clients["sqs"], clients["ssm"]
        self.files = dict(files or {})  # file name -> what to write there as JSON, at every snapshot
        self._lock = threading.Lock()

    def read_file(self, name: str) -> Any:
        """What the last snapshot wrote to ``name`` (one of ``files``), or None."""
        found = self.path / name
        return json.loads(found.read_text(encoding="utf-8")) if found.exists() else None

    # ------------------------------------------------------------------------------------- restore
    def restore(self, tables: Mapping[str, str], queues: Mapping[str, str]) -> dict[str, int]:
        """Load the last snapshot; returns how many items, messages and parameters came back."""
        counts = {"items": 0, "messages": 0, "parameters": 0}
        for logical_id, name in tables.items():
            for chunk in _chunks(_read_lines(self.path / "tables" / f"{logical_id}.jsonl"), BATCH):
                requests = [{"PutRequest": {"Item": item}} for item in chunk]
                unprocessed: dict[str, Any] = {name: requests}
                while unprocessed:
                    unprocessed = self.dynamodb.batch_write_item(RequestItems=unprocessed).get(
                        "UnprocessedItems"
                    )
                counts["items"] += len(chunk)
        for logical_id, url in queues.items():
            for chunk in _chunks(_read_lines(self.path / "queues" / f"{logical_id}.jsonl"), 10):
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": m["body"],
                        **({"MessageAttributes": m["attributes"]} if m.get("attributes") else {}),
                    }
                    for i, m in enumerate(chunk)
                ]
                failed = self.sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
                if failed:
                    raise RuntimeError(f"restoring {logical_id}: {failed}")
                counts["messages"] += len(chunk)
        parameters = self.path / "parameters.json"
        if parameters.exists():
            for parameter in json.loads(parameters.read_text()):
                self.ssm.put_parameter(
                    Name=parameter["Name"], Value=parameter["Value"], Type=parameter["Type"], Overwrite=True
                )
                counts["parameters"] += 1
        return counts

    # ------------------------------------------------------------------------------------ snapshots
    def save(self, tables: Mapping[str, str], queues: Mapping[str, str]) -> None:
        """Write the tables, the queues and the parameters (each file replaced by a rename)."""
        with self._lock:
            for logical_id, name in tables.items():
                _write_lines(self.path / "tables" / f"{logical_id}.jsonl", self._items(name))
            for logical_id, url in queues.items():
                _write_lines(self.path / "queues" / f"{logical_id}.jsonl", _queued(url))
            _write_text(self.path / "parameters.json", json.dumps(self._parameters(), indent=1))
            for name, supplier in self.files.items():
                _write_text(self.path / name, json.dumps(supplier()))

    def _items(self, table: str) -> Iterable[dict[str, Any]]:
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            yield from page.get("Items", [])

    def _parameters(self) -> list[dict[str, str]]:
        found = []
        for page in self.ssm.get_paginator("get_parameters_by_path").paginate(
            Path="/", Recursive=True, WithDecryption=True
        ):
            found += [{k: p[k] for k in ("Name", "Value", "Type")} for p in page["Parameters"]]
        return found


def _queued(url: str) -> list[dict[str, Any]]:
    """Every message a queue of the in-process moto server holds (visible, in flight or delayed), read from
    its memory: nothing is received, so workers see no difference and no receive is counted."""
    from moto.sqs.models import sqs_backends

    from neruba_tools.local.intrinsics import REGION

    account, name = url.rstrip("/").split("/")[-2:]
    queue = sqs_backends[account][REGION].queues[name]
    with queue._messages_lock:
        messages = list(queue._messages)
    return [{"body": m.body, "attributes": dict(m.message_attributes or {})} for m in messages]


class Snapshotter(threading.Thread):
    """Saves the tables, queues and parameters every ``interval`` seconds until stopped."""

    def __init__(
        self, state: StateDir, tables: Mapping[str, str], queues: Mapping[str, str], interval: float
    ) -> None:
        super().__init__(name="local-state-snapshots", daemon=True)
        self.state, self.tables, self.queues, self.interval = state, dict(tables), dict(queues), interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.state.save(self.tables, self.queues)
            except Exception as exc:  # a failed snapshot keeps the previous one; the next try may work
                print(f"warning: state snapshot failed: {exc!r}", flush=True)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 60)


def _read_lines(path: Path) -> Iterable[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line, object_hook=_from_json)


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, separators=(",", ":"), default=_to_json) + "\n")
    temporary.replace(path)


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot save a {type(value).__name__}")


def _from_json(found: dict[str, Any]) -> Any:
    """``{"__bytes__": "<base64>"}`` back to bytes (a DynamoDB map value is never a bare string)."""
    if len(found) == 1 and isinstance(found.get("__bytes__"), str):
        return base64.b64decode(found["__bytes__"])
    return found


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
