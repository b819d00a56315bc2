"""Pick the bus implementation from settings (the one place that does)."""

from __future__ import annotations

from tenpo.bus.base import EventBus
from tenpo.core.settings import Settings


def open_bus(settings: Settings) -> EventBus:
    """The configured bus: the SQLite outbox by default, NATS JetStream with ``bus=nats``."""
    if settings.bus == "nats":
        from tenpo.bus.nats import NatsBus

        return NatsBus(
            settings.nats_url, stream=settings.bus_stream, ack_wait=settings.bus_ack_wait_s
        )
    from tenpo.bus.sqlite import SqliteBus

    settings.bus_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteBus(settings.bus_path, ack_wait=settings.bus_ack_wait_s)
