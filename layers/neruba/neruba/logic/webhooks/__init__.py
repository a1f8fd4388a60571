"""Outgoing webhooks: signed events about what changed, written with the change, delivered at least once.

Public face (the modules behind it are ``outbox``, ``relay``, ``delivery``, ``endpoints``, ``signing``,
``urls``, ``http`` and ``context``):

- :func:`event_action` / :func:`notify`: the outbox item a producer adds to its own transaction;
- :func:`relay_once`: the scheduled fan-out of outbox items to delivery messages;
- :func:`process_message`: the delivery worker's attempt; :func:`resend`;
- :func:`verify` / :func:`signature_header`: the ``Neruba-Signature`` header (docs/webhooks.md).
"""

from typing import TYPE_CHECKING

from neruba.logic.webhooks.signing import HEADER, TOLERANCE_SECONDS, SignatureError, signature_header, verify

if TYPE_CHECKING:
    from neruba.logic.webhooks.delivery import process_message, resend
    from neruba.logic.webhooks.outbox import event_action, notify
    from neruba.logic.webhooks.relay import relay_once

__all__ = [
    "HEADER",
    "TOLERANCE_SECONDS",
    "SignatureError",
    "event_action",
    "notify",
    "process_message",
    "relay_once",
    "resend",
    "signature_header",
    "verify",
]


def __getattr__(name: str) -> object:
    """The heavier parts load on first use (a producer importing ``event_action`` pays for no HTTP code)."""
    if name in ("event_action", "notify"):
        from neruba.logic.webhooks import outbox

        return getattr(outbox, name)
    if name == "relay_once":
        from neruba.logic.webhooks.relay import relay_once

        return relay_once
    if name in ("process_message", "resend"):
        from neruba.logic.webhooks import delivery

        return getattr(delivery, name)
    raise AttributeError(name)
