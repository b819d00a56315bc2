"""IoT: device event payload models and their Pre-ETL (the MQTT subscriber comes later)."""

from __future__ import annotations

from tenpo.iot.models import (
    DEVICE_EVENT,
    CountEvent,
    DeviceEvent,
    HeartbeatEvent,
    TrackEvent,
    TrackPoint,
)
from tenpo.iot.preetl import IotPreEtl, split_events

__all__ = [
    "DEVICE_EVENT",
    "CountEvent",
    "DeviceEvent",
    "HeartbeatEvent",
    "IotPreEtl",
    "TrackEvent",
    "TrackPoint",
    "split_events",
]
