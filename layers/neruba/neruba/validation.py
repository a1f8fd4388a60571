"""Schema errors told in our own words: each problem names its field and the rule it broke.

Pydantic reports a value that fits no member of a union once per member (``Input should be a valid
boolean`` for a number that is merely too large); here those reports are folded into one problem per
field, keeping the rule the value came closest to (a limit it broke) or, when its type fits no member,
the list of types allowed. Codes stay pydantic's (documented in docs/limits.md) except
``null_not_allowed`` (a null where a value is required) and ``invalid_type`` (a union none of whose
types fit); messages never carry the validator's wording.

Example:
    >>> from pydantic import BaseModel, ValidationError
    >>> class Body(BaseModel):
    ...     name: str
    >>> try:
    ...     Body.model_validate({"name": None})
    ... except ValidationError as exc:
    ...     describe(exc.errors())
    [Problem(param='name', code='null_not_allowed', message="'name' must not be null.")]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# pydantic-core names each member of a union in the error location: 'bool', 'constrained-int',
# 'function-after[...]', a model's class name...
_UNION_MEMBER = re.compile(
    r"^(?:bool|int|float|str|decimal|bytes|none|list|dict|set|frozenset|tuple|date|datetime|time|"
    r"timedelta|uuid|url|any|[a-z]+-[a-z-]+(?:\[.*\])?|[a-z-]+\[.*\]|[A-Z][A-Za-z0-9_]*)$"
)
_NOUNS = {
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "decimal": "a number",
    "string": "a string",
    "str": "a string",
    "dict": "a JSON object",
    "model": "a JSON object",
    "model_attributes": "a JSON object",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "frozen_set": "a list",
    "datetime": "an RFC 3339 date-time with an offset (e.g. 2026-01-31T12:00:00Z)",
    "date": "a date (YYYY-MM-DD)",
    "time": "a time of day",
    "timedelta": "a duration",
    "uuid": "a UUID",
    "url": "a URL",
    "bytes": "a string",
}
_RULES = {
    "country_unknown": "must be an ISO 3166-1 alpha-2 code of a country; {country} names none",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be a boolean (true or false)",
    "float_parsing": "must be a number",
    "decimal_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "datetime_parsing": "must be " + _NOUNS["datetime"],
    "datetime_from_date_parsing": "must be " + _NOUNS["datetime"],
    "datetime_object_invalid": "must be " + _NOUNS["datetime"],
    "timezone_aware": "needs a UTC offset (e.g. 2026-01-31T12:00:00Z)",
    "timezone_naive": "must not carry a UTC offset",
    "date_parsing": "must be " + _NOUNS["date"],
    "date_from_datetime_parsing": "must be " + _NOUNS["date"],
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_pattern_mismatch": "is not in the accepted form",  # told in words by _pattern_rule
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "decimal_max_digits": "must have at most {max_digits} digits",
    "decimal_max_places": "must have at most {decimal_places} decimal places",
    "decimal_whole_digits": "must have at most {whole_digits} digits before the decimal point",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "string_unicode": "must be valid text",
    "json_invalid": "is not valid JSON",
}


# The patterns the models use, told in words (a regular expression is the validator's wording).
_PATTERN_WORDS = {
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$": "must be 1 to 64 letters, digits, '_', '.', ':' or '-', "
    "starting with a letter or digit",
    r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$": "must be 1 to 128 letters, digits, '_', '.', ':', '@' or '-', "
    "starting with a letter or digit",
    r"^(_global|[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127})$": "must be '_global' or a customer id (1 to 128 "
    "letters, digits, '_', '.', ':', '@' or '-', starting with a letter or digit)",
    r"^[A-Za-z0-9_.:-]{1,64}$": "must be 1 to 64 letters, digits, '_', '.', ':' or '-'",
    r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$": "must be an IANA time zone name such as UTC or "
    "Europe/Paris",
    r"^[^\x00-\x1f]+$": "must not contain control characters",
    r"^[ -~]{1,255}$": "must be 1 to 255 printable ASCII characters (space to '~')",
    r"^[^@\s]+@[^@\s]+$": "must be an email address",
    r"^-?[0-9]+(\.[0-9]+)?$": "must be a decimal number written as text, such as '1250.5'",
}
_ID_PATTERN = re.compile(r"^\^([a-z]+_)\[([^\]]+)\]\{(\d+)(?:,(\d+))?\}\$$")
_PLAIN_PATTERN = re.compile(r"^\^\[([^\]]+)\]\{(\d+),(\d+)\}\$$")
_CHOICE_PATTERN = re.compile(r"^\^\(([a-z_]+(?:\|[a-z_]+)*)\)\$$")
_CHARACTER_CLASSES = {"0-9a-f": "lowercase hexadecimal digits", "A-Za-z0-9_": "letters, digits or '_'"}
MAX_PARAM_PART = 64  # a field name longer than this is cut in messages and params (never echoed whole)


def _pattern_rule(pattern: str) -> str:
    """A pattern in words: a known one, an id (``prefix_`` and characters), else a generic rule."""
    if pattern in _PATTERN_WORDS:
        return _PATTERN_WORDS[pattern]
    found = _ID_PATTERN.match(pattern)
    if found and found.group(2) in _CHARACTER_CLASSES:
        prefix, chars, low, high = found.groups()
        count = low if high is None else f"{low} to {high}"
        return f"must be '{prefix}' followed by {count} {_CHARACTER_CLASSES[chars]}"
    plain = _PLAIN_PATTERN.match(pattern)
    if plain and plain.group(1) in _CHARACTER_CLASSES:
        chars, low, high = plain.groups()
        return f"must be {low} to {high} {_CHARACTER_CLASSES[chars]}"
    choices = _CHOICE_PATTERN.match(pattern)
    if choices:
        names = [f"'{name}'" for name in choices.group(1).split("|")]
        return "must be " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])
    return "is not in the accepted form"


def _short(part: str) -> str:
    return part if len(part) <= MAX_PARAM_PART else part[:MAX_PARAM_PART] + "..."


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def param_path(*segments: str | int) -> str:
    """An error's ``param``: the path of the input at fault, one segment per level. A segment of letters,
    digits, ``_`` and ``-`` (a field name, a list index) is joined with ``.``; any other (a client's key
    holding a dot, a space, a bracket, a quote, or empty) is written in brackets as a JSON string, so a
    path reads back one way only.

    Example:
        >>> param_path("events", 3, "properties", "a.b")
        'events.3.properties["a.b"]'
        >>> param_path("events", 3, "properties", "tokens")
        'events.3.properties.tokens'
    """
    path = ""
    for segment in map(str, segments):
        if _PLAIN_SEGMENT.fullmatch(segment):
            path += ("." if path else "") + segment
        else:
            path += "[" + json.dumps(segment, ensure_ascii=False) + "]"
    return path


def within_path(prefix: str, path: str | None) -> str:
    """``path`` (as :func:`param_path` writes it) inside ``prefix``: ``within_path("events.3", "code")``
    is ``events.3.code``, and a path starting with a bracketed segment is appended as is."""
    if not path:
        return prefix
    return prefix + ("" if path.startswith("[") else ".") + path


WHY = "neruba_why"  # the error context key of a model's reason for a rule (``required_because``)


def required_because(exc: Any, field: str, why: str) -> Any:
    """The pydantic ``ValidationError`` ``exc`` again, each problem saying ``field`` (a top-level field of
    the model) is missing or null carrying ``why``, which the message tells after the rule: for a field a
    body requires although similar bodies take it as optional, ``'ticket' is required: <why>.`` The codes
    (``missing``, ``null_not_allowed``) and every other problem stay as they were. Called from a model's
    wrap validator (``models.events.EventVoidIn``)."""
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails, PydanticCustomError

    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc, kind = tuple(error["loc"]), str(error["type"])
        ctx = dict(error.get("ctx") or {})
        if loc == (field,) and (kind == "missing" or error.get("input", ...) is None):
            ctx[WHY] = why
            custom = PydanticCustomError(kind, kind, ctx)  # the message is told by ``describe``
            details.append(InitErrorDetails(type=custom, loc=loc, input=error.get("input")))
        else:
            details.append(InitErrorDetails(type=kind, loc=loc, input=error.get("input"), ctx=ctx))
    return ValidationError.from_exception_data(exc.title, details)


class FieldRuleError(ValueError):
    """Raised by a model validator when one field breaks a rule across fields: the problem names that
    field (``param``, relative to the model), not the model as a whole."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Problem:
    """One field's problem: its dotted path (None for the whole input), a code and a message."""

    param: str | None
    code: str
    message: str


def _type_noun(kind: str) -> str | None:
    """'a string' for 'string_type' (and the other '<noun>_type' codes), else None."""
    if kind.endswith("_type"):
        return _NOUNS.get(kind.removesuffix("_type"))
    return None


def _is_type_error(error: Mapping[str, Any]) -> bool:
    kind = str(error.get("type", ""))
    return kind.endswith(("_type", "_parsing")) or kind in {"is_instance_of", "literal_error", "enum"}


def _rule(error: Mapping[str, Any]) -> tuple[str, str]:
    """(code, rule in words) for one pydantic error (with the model's reason after it, when the model
    gave one: ``required_because``)."""
    code, rule = _plain_rule(error)
    why = (error.get("ctx") or {}).get(WHY)
    return (code, f"{rule}: {why}") if isinstance(why, str) and why else (code, rule)


def _plain_rule(error: Mapping[str, Any]) -> tuple[str, str]:
    kind = str(error.get("type", ""))
    if error.get("input", ...) is None and _is_type_error(error):
        return "null_not_allowed", "must not be null"
    noun = _type_noun(kind)
    if noun is not None:
        return kind, f"must be {noun}"
    if kind in {"value_error", "assertion_error"}:  # raised by our own model validators, in our words
        cause = (error.get("ctx") or {}).get("error")
        text = str(cause).rstrip(".") if cause is not None else ""
        return kind, f": {text}" if text else "is not valid"
    if kind == "string_pattern_mismatch":
        return kind, _pattern_rule(str((error.get("ctx") or {}).get("pattern", "")))
    template = _RULES.get(kind)
    if template is None:
        return kind, "is not valid"
    try:
        return kind, template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return kind, template.split(" {")[0]


def _union_rule(members: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """One rule for a value that fits no member of a union."""
    for member in members:
        if not _is_type_error(member):
            return _rule(member)  # the value had a member's type but broke that member's limit
    if any(member.get("input", ...) is None for member in members):
        return "null_not_allowed", "must not be null"
    nouns: list[str] = []
    for member in members:
        noun = _type_noun(str(member.get("type", "")))
        if noun and noun not in nouns:
            nouns.append(noun)
    if not nouns:
        return _rule(members[0])
    allowed = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " or " + nouns[-1]
    return "invalid_type", f"must be {allowed}"


def _with_param(param: str | None, rule: str) -> str:
    if rule.startswith(": "):  # a sentence of its own (a model validator's)
        return f"'{param}'{rule}." if param else f"{rule[2].upper()}{rule[3:]}."
    return f"'{param}' {rule}." if param else f"The body {rule}."


def describe(errors: Iterable[Mapping[str, Any]], *, drop: Sequence[str] = ()) -> list[Problem]:
    """One Problem per field, in the order pydantic reported them; ``drop`` names leading location parts
    that are not part of the field path (Powertools puts 'body' first)."""
    items = [dict(error) for error in errors]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    plain: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    # members of one union: the same value (the same object) reported under one parent location
    candidates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for error in items:
        loc = tuple(str(part) for part in error.get("loc", ()))
        if loc and _UNION_MEMBER.match(loc[-1]):
            candidates.setdefault(loc[:-1], []).append(error)
    unions = {
        parent
        for parent, members in candidates.items()
        if len(members) > 1 and all(m.get("input") is members[0].get("input") for m in members)
    }
    order: list[tuple[str, tuple[str, ...]]] = []
    for error in items:
        loc = tuple(str(part) for part in error.get("loc", ()))
        if loc and _UNION_MEMBER.match(loc[-1]) and loc[:-1] in unions:
            if loc[:-1] not in groups:
                groups[loc[:-1]] = []
                order.append(("union", loc[:-1]))
            groups[loc[:-1]].append(error)
        else:
            plain.append((loc, error))
            order.append(("plain", loc))
    problems: list[Problem] = []
    plain_iter = iter(plain)
    for kind, loc in order:
        if kind == "union":
            code, rule = _union_rule(groups[loc])
        else:
            loc, error = next(plain_iter)
            code, rule = _rule(error)
        parts = [part for part in loc if part != "[key]"]  # a map key at fault: the path names its entry
        cause = (error.get("ctx") or {}).get("error") if kind == "plain" else None
        if isinstance(cause, FieldRuleError):  # a rule across fields that one field breaks: name it
            parts.append(cause.param)
            rule = str(cause).rstrip(".").removeprefix(cause.param + " ")  # the field is named once
        while parts and parts[0] in drop:
            parts.pop(0)
        param = param_path(*(_short(part) for part in parts)) or None
        key_at_fault = "[key]" in loc and param is not None and not rule.startswith(": ")
        message = f"The key of '{param}' {rule}." if key_at_fault else _with_param(param, rule)
        problems.append(Problem(param, code, message))
    return problems
