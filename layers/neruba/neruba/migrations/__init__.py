"""Numbered, idempotent data migrations, recorded in the ops table (``MIG#{number:04d}``).

A migration is one module of this package named ``m{NNNN}_{name}.py`` with a docstring (what it does and
why it is idempotent) and ``def apply(ctx: MigrationContext) -> dict[str, Any]`` returning counts for the
record. Adding a file is all it takes: :func:`discover` finds it, :func:`run_migrations` runs every
migration not yet recorded, in number order, and records each one after it completes. A recorded
migration is skipped. A failing one stops the run with :class:`MigrationFailedError` (the ones before it
stay recorded; it is retried on the next run, which is safe because each migration is idempotent).

They run on every deploy (the ``Custom::Migrations`` resource of template.yaml calls
``functions/migrations``), at local stack start-up, and with ``neruba migrate``.

Example:
    >>> [m.number for m in discover()][:2]
    [1, 2]
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.ops import OpsRepository
    from neruba.settings import Settings

MODULE_NAME = re.compile(r"^m(\d{4})_([a-z0-9_]+)$")


class MigrationFailedError(RuntimeError):
    """A migration raised; the message names it and the cause (it becomes the deploy's failure reason)."""


@dataclass(frozen=True, slots=True)
class MigrationContext:
    """What a migration may use: the settings (table names) and the time of the run."""

    settings: Settings
    now: datetime


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    description: str
    checksum: str
    apply: Callable[[MigrationContext], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class MigrationOutcome:
    number: int
    name: str
    status: str  # "applied" | "skipped"
    result: dict[str, Any]


def discover() -> list[Migration]:
    """Every migration of this package, by number (numbers must be unique)."""
    found: dict[int, Migration] = {}
    for info in pkgutil.iter_modules(__path__):
        match = MODULE_NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        number = int(match.group(1))
        if number in found:
            raise ValueError(f"two migrations numbered {number:04d}: {found[number].name}, {match.group(2)}")
        source = Path(str(module.__file__)).read_bytes()
        found[number] = Migration(
            number=number,
            name=match.group(2),
            description=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else "",
            checksum=hashlib.sha256(source).hexdigest()[:16],
            apply=module.apply,
        )
    return [found[n] for n in sorted(found)]


def run_migrations(
    ops: OpsRepository,
    ctx: MigrationContext,
    migrations: Sequence[Migration] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[MigrationOutcome]:
    """Run every migration not yet recorded, in order; returns what happened to each."""
    migrations = list(discover() if migrations is None else migrations)
    applied = ops.applied_migrations([m.number for m in migrations])
    outcomes = []
    for migration in migrations:
        label = f"{migration.number:04d} {migration.name}"
        if migration.number in applied:
            outcomes.append(MigrationOutcome(migration.number, migration.name, "skipped", {}))
            continue
        if log:
            log(f"migration {label}: running")
        try:
            result = migration.apply(ctx)
        except Exception as exc:
            raise MigrationFailedError(f"migration {label} failed: {type(exc).__name__}: {exc}") from exc
        ops.record_migration(
            migration.number, migration.name, migration.checksum, iso(datetime.now(UTC)), result
        )
        if log:
            log(f"migration {label}: applied {result}")
        outcomes.append(MigrationOutcome(migration.number, migration.name, "applied", result))
    return outcomes


def migrate(log: Callable[[str], None] | None = None) -> list[MigrationOutcome]:
    """Run the pending migrations against the tables of this process's settings."""
    from neruba import bootstrap
    from neruba.settings import get_settings

    ctx = MigrationContext(settings=get_settings(), now=datetime.now(UTC))
    return run_migrations(bootstrap.ops(), ctx, log=log)
