"""The ``EventBus`` interface: at-least-once topics with durable consumers.

Semantics every implementation keeps (tests in ``tests/bus`` run the same suite on each):

* ``publish`` is idempotent per ``event_id``: publishing the same id twice stores one event.
* A durable consumer (a name) sees every event of its topic once it exists, in publish order,
  across restarts; events published before the consumer's first fetch are delivered too.
* A fetched event that is not acknowledged within ``ack_wait`` seconds is delivered again
  (``attempt`` counts deliveries); ``nak`` makes it available again at once.
* Consumers never share progress: two names each get every event.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

OBJECT_REGISTERED = "objects.registered"
"""Topic of :class:`tenpo.lake.ObjectRegistered`: one event per object put in landing/."""

PARTITIONS_CHANGED = "partitions.changed"
"""Topic of ``{"table", "tenant_id", "business_date"}`` events after a raw partition commit."""

PARTITIONS_LATE = "partitions.late"
"""Topic of late data: a raw partition of a past business date changed (``tenpo.iot.late``).

Payload ``{"table", "tenant_id", "business_date", "part_key", "days_late", "detected_at"}``;
the orchestrator recomputes the marts of that date. Event id ``late:{part_key}``.
"""


@dataclass(frozen=True)
class Delivery:
    """One delivery of an event to a consumer; hand it back to ``ack``/``nak``."""

    topic: str
    event_id: str
    payload: dict[str, Any]
    attempt: int
    token: Any = field(default=None, compare=False, repr=False)


class EventBus(ABC):
    """At-least-once publish/subscribe with durable, acknowledging consumers."""

    @abstractmethod
    def publish(self, topic: str, payload: dict[str, Any], event_id: str) -> None:
        """Publish ``payload`` (JSON-serialisable) on ``topic``; idempotent per ``event_id``."""

    @abstractmethod
    def fetch(
        self, topic: str, consumer: str, max_events: int = 100, timeout: float = 1.0
    ) -> list[Delivery]:
        """Up to ``max_events`` deliveries for ``consumer``, waiting at most ``timeout`` s."""

    @abstractmethod
    def ack(self, delivery: Delivery) -> None:
        """Mark ``delivery`` processed: it is never delivered to this consumer again."""

    @abstractmethod
    def nak(self, delivery: Delivery) -> None:
        """Give ``delivery`` back for redelivery now."""

    def pending(self, topic: str, consumer: str) -> int:
        """Events of ``topic`` not yet acknowledged by ``consumer`` (best effort)."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode(payload: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a payload (dates as ISO strings)."""
    return json.dumps(payload, default=str, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> dict[str, Any]:
    """The payload dict of JSON bytes."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("event payload is not a JSON object")
    return value
