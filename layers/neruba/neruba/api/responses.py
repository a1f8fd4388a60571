"""JSON responses that keep numbers exact: integers as JSON numbers, decimals as strings.

The one rule of every answer (docs/billing.md, "Numbers in API answers"): money is an integer of minor
units (``*_minor``), counts are integers, and every decimal (a quantity, a unit price, a fraction, a tier
amount) is a string holding the exact decimal, never a JSON number with a fraction. Decimals are strings
by type (any ``Decimal``) and, on invoice lines, by field: a stored line's quantity of 10 reads back as an
integer, and still leaves as ``"10"``, so a field never changes type with its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response

from neruba import jsonutil
from neruba.timefmt import answer_times

LINE_DECIMALS = ("quantity", "unit_price")
TIER_DECIMALS = ("quantity", "up_to", "unit_price", "flat_fee", "amount")
SOURCE_COUNTS = frozenset(
    {"events", "hours", "free_events", "billable_events", "per_event_priced", "filter", "seconds"}
    | {"number_in_period", "n", "plan_version", "version", "seq", "index"}
)
"""The integers a line's ``source`` may hold besides money (``*_minor``): counts, indexes, whole
seconds. Every other number in a source, at any depth, is a decimal and leaves as text."""


def json_response(data: Any, status: int = 200) -> Response[str]:
    """A JSON response serialised by ``neruba.jsonutil`` (sorted keys), decimals as strings, every time in
    UTC with ``Z`` (``timefmt.answer_times``: the one rule, whichever format a time was stored in)."""
    body = jsonutil.dumps(jsonutil.decimals_as_text(_lines_as_text(answer_times(data))))
    return Response(status_code=status, content_type="application/json", body=body)


def _lines_as_text(value: Any) -> Any:
    """Every invoice line inside ``value`` (a mapping with ``line_id`` and ``amount_minor``) with its
    decimal fields as strings, including those of its tiers, its source and an explanation's price."""
    if isinstance(value, Mapping):
        out = {key: _lines_as_text(item) for key, item in value.items()}
        if "line_id" in out and "amount_minor" in out:
            _text(out, LINE_DECIMALS)
            if isinstance(out.get("source"), Mapping):
                out["source"] = _source_text(out["source"])
            if isinstance(out.get("aggregate"), Mapping):
                out["aggregate"] = _text(dict(out["aggregate"]), ("quantity",))
            for holder in (out.get("source"), out.get("adjustment")):  # what an adjustment corrects
                if isinstance(holder, dict):
                    for part in ("billed", "rerated", "difference"):
                        if isinstance(holder.get(part), Mapping):
                            holder[part] = _text(dict(holder[part]), ("quantity",))
            price = out.get("price")
            if isinstance(price, Mapping):
                out["price"] = _text(dict(price), ("unit_price",))
                out["price"]["tiers"] = [_tier(t) for t in price.get("tiers") or []]
            if isinstance(out.get("tiers"), list):
                out["tiers"] = [_tier(t) for t in out["tiers"]]
        return out
    if isinstance(value, list | tuple):
        return [_lines_as_text(item) for item in value]
    return value


def _source_text(value: Any, key: str = "") -> Any:
    """A line's source with every integer that is not a count or money (:data:`SOURCE_COUNTS`,
    ``*_minor``) as decimal text, at any depth: a stored decimal reads back as an integer when whole."""
    if isinstance(value, Mapping):
        return {name: _source_text(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_source_text(item, key) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        if key in SOURCE_COUNTS or key.endswith("_minor"):
            return value
        return jsonutil.number_text(value)
    return value


def _tier(tier: Any) -> Any:
    return _text(dict(tier), TIER_DECIMALS) if isinstance(tier, Mapping) else tier


def _text(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    for name in names:
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            fields[name] = jsonutil.number_text(value)
    return fields
