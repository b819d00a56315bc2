"""Device event payloads (FORMATS.md), schema version 1, shared by HTTP ingest and MQTT.

Strict pydantic models: wrong types are errors, not coerced (unknown extra fields are
ignored); timestamps are ISO 8601 strings with an offset. ``DeviceEvent`` is the
discriminated union on ``type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

__all__ = [
    "CountEvent",
    "DEVICE_EVENT",
    "DeviceEvent",
    "HeartbeatEvent",
    "SCHEMA_VERSION",
    "TrackEvent",
    "TrackPoint",
]

SCHEMA_VERSION = 1


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string), Field(strict=False)]


MAX_SEQ = 2**63 - 1
"""Largest ``seq``: the int64 column's (a larger one rejects the event, not the body)."""
MAX_COUNT = 1_000_000
"""Largest ``in``/``out`` of one interval: far above any doorway, inside the int32 column."""


class _Model(BaseModel):
    # Unknown extra fields are ignored so devices can add diagnostics without breaking ingest.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class _Event(_Model):
    v: Literal[1] = Field(description="Schema version.")
    device_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0, le=MAX_SEQ, description="Per-device increasing sequence number.")


class CountEvent(_Event):
    """People counted crossing ``line`` during [interval_start, interval_end)."""

    type: Literal["count"]
    line: str = Field(min_length=1, description="entrance, passby or a configured zone name.")
    interval_start: Timestamp
    interval_end: Timestamp
    count_in: int = Field(alias="in", ge=0, le=MAX_COUNT)
    count_out: int = Field(alias="out", ge=0, le=MAX_COUNT)


class TrackPoint(_Model):
    """One position of a tracked person (metres in the device's floor frame)."""

    ts: Timestamp
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    zone: str | None = None


class TrackEvent(_Event):
    """A ToF camera track: points of one person."""

    type: Literal["track"]
    track_id: str = Field(min_length=1)
    points: list[TrackPoint] = Field(min_length=1)


class HeartbeatEvent(_Event):
    """Device health."""

    type: Literal["heartbeat"]
    ts: Timestamp
    status: str = Field(min_length=1)
    firmware: str | None = None
    battery: float | None = Field(default=None, ge=0, le=1)


DeviceEvent = Annotated[CountEvent | TrackEvent | HeartbeatEvent, Field(discriminator="type")]
DEVICE_EVENT: TypeAdapter[CountEvent | TrackEvent | HeartbeatEvent] = TypeAdapter(DeviceEvent)
