"""Move the closing levels of level meters into the meters' usage partitions, where billing reads them.

Until this version a closing level was its own item, ``LVL#{customer}#{meter}`` / ``{H}``, read with a
Query of its own before a window's usage; now it is ``AGG#{customer}#{meter}`` / ``{hour before H}$``,
returned by the window's usage Query (docs/pricing.md, "Closing levels"). Each old item is moved in one
transaction (delete it if still there, put the new one if none is stored at that hour; a level billing
stored there first wins and the old one is only deleted), so a second run finds nothing left to move and
a billing run beside it never sees a level that rests on one it replaced
(``LevelsRepository.move_legacy``). Until the move, a window finding no level reads its meter from the
beginning, which bills the same.
"""

from __future__ import annotations

from typing import Any

from neruba import bootstrap
from neruba.migrations import MigrationContext


def apply(ctx: MigrationContext) -> dict[str, Any]:
    return bootstrap.usage().levels.move_legacy()
