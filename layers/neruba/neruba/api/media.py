"""Which request bodies count as JSON, checked once for every route in ``resolver.make_handler``.

A body must be declared ``application/json`` (any case, with parameters such as ``charset``) or a JSON
suffix type ``application/<anything>+json``; a body without a ``Content-Type`` is read as JSON; anything
else is 415 ``unsupported_media_type``. Requests without a body are not checked.

Example:
    >>> [is_json("APPLICATION/JSON; charset=UTF-8"), is_json("application/vnd.api+json")]
    [True, True]
    >>> is_json("text/plain")
    False
"""

from __future__ import annotations

from typing import Any

from neruba.api.scopes import find_route
from neruba.errors import UnsupportedMediaTypeError

JSON = "application/json"


def is_json(content_type: str) -> bool:
    """Whether a Content-Type value names JSON (media types are case-insensitive)."""
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return media == JSON or (kind == "application" and subtype.endswith("+json") and len(subtype) > 5)


def content_type_of(event: dict[str, Any]) -> str | None:
    """The request's Content-Type, whatever the header's case (None when absent)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "content-type" and value is not None:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == "content-type" and values:
            return str(values[-1])
    return None


def json_body_event(app: Any, event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """``event`` ready for the resolver: a body declared as any JSON type is handed on as
    ``application/json`` (the resolver's parser knows only that spelling; the body bytes are untouched);
    a body of another type, on a route ``app`` serves, raises UnsupportedMediaTypeError."""
    declared = content_type_of(event)
    if not body or declared is None or declared.split(";", 1)[0].strip() == JSON:
        return event
    if find_route(app, str(event.get("httpMethod") or ""), str(event.get("path") or "")) is None:
        return event  # no such route: the resolver answers 404 / 405
    if not is_json(declared):
        media = declared.split(";", 1)[0].strip()[:100]
        raise UnsupportedMediaTypeError(
            f"The body must be JSON (Content-Type: application/json), not {media!r}.", param="Content-Type"
        )
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    return {
        **event,
        "headers": {**headers, "Content-Type": JSON},
        "multiValueHeaders": {**multi, "Content-Type": [JSON]},
    }
