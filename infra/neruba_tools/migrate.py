"""``neruba migrate``: run the pending data migrations now (what every deploy and ``make run`` do).

    neruba migrate [--stack NAME]          run what is not yet recorded; exit 1 naming a failing migration
    neruba migrate --list [--stack NAME]   every migration: applied (when, checksum) or pending

Tables come from ``--stack NAME`` (CloudFormation, or the local stack's names on a local endpoint) or
from the ``NERUBA_*`` environment.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("migrate", help="run pending data migrations")
    parser.add_argument("--stack", help="CloudFormation stack whose tables to use (default: NERUBA_* env)")
    parser.add_argument("--list", action="store_true", help="show applied and pending migrations")
    parser.set_defaults(func=run)


def _list() -> int:
    from neruba.dal import maintenance
    from neruba.dal.ops import OpsRepository
    from neruba.migrations import discover
    from neruba.settings import get_settings

    settings = get_settings()
    migrations = discover()
    applied = OpsRepository(settings.ops_table).applied_migrations([m.number for m in migrations])
    for migration in migrations:
        record = applied.get(migration.number)
        if record:
            changed = "" if record.checksum == migration.checksum else " (file changed since)"
            state = f"applied {record.applied_at} checksum {record.checksum}{changed}"
        else:
            state = "pending"
        print(f"{migration.number:04d} {migration.name:<28} {state}")
    schema = maintenance.get(settings.ops_table, "META#schema")
    print(f"Schema version: {schema.get('schema_version') if schema else 'none recorded'}")
    return 0


def migrate_now(log: Any = print) -> int:
    """Run the pending migrations against the configured tables; 0 when all are applied, 1 on failure."""
    from neruba.migrations import MigrationFailedError, migrate

    try:
        outcomes = migrate(log=log)
    except MigrationFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    applied = [o for o in outcomes if o.status == "applied"]
    log(f"Migrations: {len(applied)} applied, {len(outcomes) - len(applied)} already recorded.")
    return 0


def run(args: argparse.Namespace) -> int:
    from neruba_tools.stackinfo import use_stack_settings

    use_stack_settings(args.stack)
    return _list() if args.list else migrate_now()
