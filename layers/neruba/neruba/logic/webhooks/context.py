"""What the webhook use cases work with: the repository, the queue, the stage, how to POST and resolve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neruba.dal.webhooks import WebhooksRepository
from neruba.logic.webhooks.http import Answer, post
from neruba.logic.webhooks.urls import Resolver, resolve


@dataclass
class Webhooks:
    repo: WebhooksRepository
    queue_url: str | None
    stage: str
    ops_table: str
    idempotency: Any = None  # a BillingRepository (operator idempotency records), or None in tests
    post: Callable[..., Answer] = post  # (url, body, headers[, address]): logic.webhooks.http.post
    resolver: Resolver = resolve

    def enqueue(self, messages: list[tuple[str, int]]) -> None:
        """Queue ``(body, delay seconds)`` delivery messages on WebhookDeliveryQueue."""
        if not messages:
            return
        if not self.queue_url:
            raise RuntimeError("NERUBA_WEBHOOK_DELIVERY_QUEUE_URL is not set")
        from neruba.dal.webhooks import enqueue

        enqueue(self.queue_url, messages)
