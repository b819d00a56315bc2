"""Late data: raw partitions of past business dates that changed, announced for recomputation.

Devices buffer while offline and send hours or days of intervals later; the Pre-ETL already
puts each row in its own business-date partition, and the streamer publishes
``partitions.changed`` for every part it commits. :class:`LateDataMonitor` follows that topic
(durable consumer ``late-partitions``) and, for a raw table whose ``business_date`` is before
the local today (``default_timezone``), publishes ``partitions.late`` (``PARTITIONS_LATE``)::

    {"table": "raw_iot_counts", "tenant_id": "acme", "business_date": "2026-11-02",
     "part_key": "tables/raw_iot_counts/tenant=acme/date=2026-11-02/….parquet",
     "days_late": 3, "detected_at": "2026-11-05T01:02:03+00:00"}

with event id ``late:{part_key}``, so a redelivered ``partitions.changed`` never announces the
same part twice. Today's partitions are not late: the day's regular run covers them. The
orchestrator consumes ``partitions.late`` and re-materializes the marts of those dates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tenpo.bus.base import PARTITIONS_CHANGED, PARTITIONS_LATE, EventBus
from tenpo.core.ids import utcnow

__all__ = ["CONSUMER", "LateDataMonitor", "LateStats", "late_event"]

log = logging.getLogger(__name__)

CONSUMER = "late-partitions"
"""Durable consumer name of the monitor on ``partitions.changed``."""


@dataclass
class LateStats:
    """What the monitor saw: partition changes, of which late, and malformed events."""

    changed: int = 0
    late: int = 0
    malformed: int = 0


def late_event(
    payload: dict[str, object], part_key: str, today: date, now: datetime
) -> dict[str, object] | None:
    """The ``partitions.late`` payload for one ``partitions.changed`` event, or None if on time.

    Only raw tables count; ``ValueError`` when the payload lacks a table, tenant or ISO date.
    """
    table, tenant = payload.get("table"), payload.get("tenant_id")
    if not isinstance(table, str) or not isinstance(tenant, str):
        raise ValueError(f"partitions.changed payload without table/tenant_id: {payload}")
    day = date.fromisoformat(str(payload.get("business_date")))
    if not table.startswith("raw_") or day >= today:
        return None
    return {
        "table": table,
        "tenant_id": tenant,
        "business_date": day.isoformat(),
        "part_key": part_key,
        "days_late": (today - day).days,
        "detected_at": now.isoformat(),
    }


class LateDataMonitor:
    """Turns ``partitions.changed`` of past dates into ``partitions.late`` events."""

    def __init__(
        self,
        bus: EventBus,
        timezone: str = "Asia/Tokyo",
        *,
        clock: Callable[[], datetime] = utcnow,
        consumer: str = CONSUMER,
    ) -> None:
        self.bus = bus
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.consumer = consumer
        self.stats = LateStats()

    def run_once(self, max_events: int = 500, timeout: float = 0.5) -> int:
        """Handle up to ``max_events`` partition changes; returns how many were late."""
        deliveries = self.bus.fetch(PARTITIONS_CHANGED, self.consumer, max_events, timeout)
        now = self.clock()
        today = now.astimezone(self.tz).date()
        late = 0
        for delivery in deliveries:
            self.stats.changed += 1
            try:
                payload = late_event(delivery.payload, delivery.event_id, today, now)
            except ValueError as exc:
                self.stats.malformed += 1
                log.error("ignoring malformed partitions.changed %s: %s", delivery.event_id, exc)
                self.bus.ack(delivery)
                continue
            if payload is not None:
                self.bus.publish(PARTITIONS_LATE, payload, event_id=f"late:{delivery.event_id}")
                late += 1
                log.info(
                    "late data: %s tenant=%s date=%s (%s day(s) late)",
                    payload["table"],
                    payload["tenant_id"],
                    payload["business_date"],
                    payload["days_late"],
                )
            self.bus.ack(delivery)
        self.stats.late += late
        return late

    def run_forever(self, stop: threading.Event) -> LateStats:
        """Handle partition changes until ``stop`` is set; bus failures are retried."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.run_once()
                backoff = 0.0
            except Exception:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                log.exception("late-data monitor failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
        return self.stats
