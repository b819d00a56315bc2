"""The landing zone: keep bytes as received, then announce them on the bus.

``LandingZone.land`` is the only way data enters tenpo. It stores the object under a key
derived from its content hash (or the sender's idempotency key), then publishes an
``ObjectRegistered`` event whose id is the key. Both steps are idempotent, so a sender that
retries after any failure lands the object once and announces it once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from tenpo.bus.base import OBJECT_REGISTERED, EventBus
from tenpo.core.errors import Conflict
from tenpo.core.ids import content_id, idempotency_id, utcnow
from tenpo.lake.base import Lake
from tenpo.lake.keys import landing_key

log = logging.getLogger(__name__)


class ObjectRegistered(BaseModel):
    """Event: an object was stored in ``landing/`` and awaits its Pre-ETL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    source: str
    tenant_id: str
    business_date: date
    object_id: str
    size: int
    sha256: str
    content_type: str
    registered_at: datetime
    meta: dict[str, str] = {}


@dataclass(frozen=True)
class Landed:
    """Result of :meth:`LandingZone.land`; ``created`` is False for a re-send."""

    event: ObjectRegistered
    created: bool


class LandingZone:
    """Stores raw objects in the lake and publishes their registration."""

    def __init__(self, lake: Lake, bus: EventBus, timezone: str = "Asia/Tokyo") -> None:
        self.lake = lake
        self.bus = bus
        self._tz = ZoneInfo(timezone)

    def land(
        self,
        source: str,
        tenant_id: str,
        data: bytes,
        ext: str,
        *,
        idempotency_key: str | None = None,
        day: date | None = None,
        content_type: str = "application/octet-stream",
        meta: dict[str, str] | None = None,
    ) -> Landed:
        """Keep ``data`` under ``landing/{source}/…`` and publish ``ObjectRegistered``.

        Raises :class:`Conflict` when ``idempotency_key`` was used before for other bytes.
        """
        digest = hashlib.sha256(data).hexdigest()
        object_id = idempotency_id(idempotency_key) if idempotency_key else content_id(data)
        day = day or utcnow().astimezone(self._tz).date()
        key = landing_key(source, tenant_id, day, object_id, ext)
        created = self.lake.put_if_absent(key, data)
        if not created and idempotency_key:
            if hashlib.sha256(self.lake.get(key)).hexdigest() != digest:
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} was already used for different content"
                )
        event = ObjectRegistered(
            key=key,
            source=source,
            tenant_id=tenant_id,
            business_date=day,
            object_id=object_id,
            size=len(data),
            sha256=digest,
            content_type=content_type,
            registered_at=utcnow(),
            meta=meta or {},
        )
        # Publishing again for a re-send is harmless: the event id is the key.
        self.bus.publish(OBJECT_REGISTERED, event.model_dump(mode="json"), event_id=key)
        log.debug("landed %s (%d bytes, new=%s)", key, len(data), created)
        return Landed(event=event, created=created)
