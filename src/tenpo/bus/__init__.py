"""Event bus: at-least-once topics with durable consumers (SQLite outbox or NATS JetStream)."""

from tenpo.bus.base import OBJECT_REGISTERED, PARTITIONS_CHANGED, Delivery, EventBus
from tenpo.bus.factory import open_bus

__all__ = ["OBJECT_REGISTERED", "PARTITIONS_CHANGED", "Delivery", "EventBus", "open_bus"]
