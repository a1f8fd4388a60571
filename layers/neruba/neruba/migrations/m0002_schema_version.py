"""Record the data schema version of the stack in the ops table (``META#schema`` / ``#``).

Operators and later migrations read it to tell which shape the stored data has (``neruba migrate --list``
prints it). Idempotent: the item is written only when absent or older than this version (a conditional
put), so a second run, or a run after a newer migration raised the version, changes nothing.
"""

from __future__ import annotations

from typing import Any

from neruba.dal import maintenance
from neruba.migrations import MigrationContext
from neruba.timefmt import iso

VERSION = 2


def apply(ctx: MigrationContext) -> dict[str, Any]:
    item = {"pk": "META#schema", "sk": "#", "schema_version": VERSION, "updated_at": iso(ctx.now)}
    written = maintenance.put_if(
        ctx.settings.ops_table, item, "attribute_not_exists(pk) OR schema_version < :v", {":v": VERSION}
    )
    return {"version": VERSION, "written": written}
