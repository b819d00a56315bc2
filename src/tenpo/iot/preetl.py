"""Pre-ETL of device events (people counters, ToF cameras) into the raw IoT tables.

A body is one event, an array, or ``{"events": [...]}``. Each event is validated on its own:
schema (``tenpo.iot.models``), registered device of the object's tenant, a line the device
has, a sane interval, and no timestamp more than a day after the object was registered.
A repeated (device_id, seq) inside one object is a re-send and is dropped silently.

Objects landed by the MQTT subscriber (content type :data:`MQTT_BATCH`) are JSON Lines, one
message per line: ``{"topic", "device_id", "received_at", "payload"}`` where ``payload`` is the
message text as received. Every event of a message must carry the topic's device id, and
"too far in the future" is measured from when that message was received.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from pydantic import ValidationError

from tenpo.control.directory import DeviceRef, Directory
from tenpo.core.bodies import EVENT_FIELDS, split_records
from tenpo.core.preetl import ParseResult, Reject
from tenpo.iot.models import (
    DEVICE_EVENT,
    SCHEMA_VERSION,
    CountEvent,
    HeartbeatEvent,
    TrackEvent,
)
from tenpo.lake.landing import ObjectRegistered
from tenpo.warehouse.schemas import RAW_DEVICE_HEARTBEATS, RAW_IOT_COUNTS, RAW_IOT_TRACKS

__all__ = [
    "DEFAULT_LINES",
    "FUTURE_TOLERANCE",
    "MQTT_BATCH",
    "EventCheck",
    "IotPreEtl",
    "check_event",
    "split_events",
]

log = logging.getLogger(__name__)

COUNTS, TRACKS, HEARTBEATS = "raw_iot_counts", "raw_iot_tracks", "raw_device_heartbeats"
TABLE_OF_TYPE = {"count": COUNTS, "track": TRACKS, "heartbeat": HEARTBEATS}
FUTURE_TOLERANCE = timedelta(days=1)
# A count's line must be one of the device's lines or zones (a ToF camera counts per zone);
# a device with neither configured accepts the two standard lines.
DEFAULT_LINES = ("entrance", "passby")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)

MQTT_BATCH = "application/vnd.tenpo.mqtt-batch+jsonl"
"""Content type of a landing object holding a batch of MQTT messages (one JSON line each)."""


def split_events(body: Any) -> list[Any]:
    """The events of a decoded body: one event, an array, or ``{"events": [...]}`` — the
    gateway's rule (:func:`tenpo.core.bodies.split_records`: both at once is ambiguous)."""
    return split_records(body, "events", EVENT_FIELDS, "event")


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


class _Rows:
    """Column lists of the three tables."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in schema}
            for name, schema in (
                (COUNTS, RAW_IOT_COUNTS),
                (TRACKS, RAW_IOT_TRACKS),
                (HEARTBEATS, RAW_DEVICE_HEARTBEATS),
            )
        }

    def add(self, table: str, **values: Any) -> None:
        cols = self.tables[table]
        for name, value in values.items():
            cols[name].append(value)

    def build(self) -> dict[str, pa.Table]:
        out = {}
        for name, schema in ((COUNTS, RAW_IOT_COUNTS), (TRACKS, RAW_IOT_TRACKS)):
            out[name] = _table(schema, self.tables[name])
        out[HEARTBEATS] = _table(RAW_DEVICE_HEARTBEATS, self.tables[HEARTBEATS])
        return out


def _table(schema: pa.Schema, cols: dict[str, list[Any]]) -> pa.Table:
    arrays = []
    for fld in schema:
        values = cols[fld.name]
        if pa.types.is_timestamp(fld.type):
            arrays.append(pa.array(values, pa.int64()).cast(fld.type))  # epoch µs
        elif pa.types.is_date32(fld.type):
            arrays.append(pa.array(values, pa.int32()).cast(fld.type))  # day numbers
        else:
            arrays.append(pa.array(values, fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


class IotPreEtl:
    """Pre-ETL of device events into ``raw_iot_counts``, ``raw_iot_tracks`` and
    ``raw_device_heartbeats``."""

    source = "iot"

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid event; a reject per bad event (or one for a bad body)."""
        if event.content_type == MQTT_BATCH:
            return self._parse_mqtt_batch(event, data, directory)
        result = ParseResult()
        try:
            raw_events = split_events(json.loads(data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            result.rejects.append(
                Reject(COUNTS, f"not valid UTF-8 at byte offset {exc.start}: {exc.reason}")
            )
            return result
        except (ValueError, RecursionError) as exc:
            result.rejects.append(Reject(COUNTS, f"malformed JSON body: {exc}"))
            return result

        rows = _Rows()
        ctx = _Context(event, directory)
        seen: set[tuple[str, int]] = set()
        duplicates = 0
        for index, raw in enumerate(raw_events):
            outcome = ctx.load(index, raw, rows, seen)
            if isinstance(outcome, Reject):
                result.rejects.append(outcome)
            elif outcome:
                duplicates += 1
        result.tables = rows.build()
        if duplicates:
            log.debug("object %s: dropped %d duplicate events", event.object_id, duplicates)
        return result

    def _parse_mqtt_batch(
        self, event: ObjectRegistered, data: bytes, directory: Directory
    ) -> ParseResult:
        """A JSON Lines batch of MQTT messages: each message's events, checked against its topic."""
        result = ParseResult()
        rows = _Rows()
        ctx = _Context(event, directory)
        seen: set[tuple[str, int]] = set()
        index = 0
        for line_no, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                message = json.loads(line)
                device_id = message["device_id"]
                received_at = datetime.fromisoformat(message["received_at"])
                raw_events = split_events(json.loads(message["payload"]))
                if not isinstance(device_id, str) or received_at.tzinfo is None:
                    raise ValueError("device_id must be a string, received_at have an offset")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                result.rejects.append(
                    Reject(
                        COUNTS,
                        f"message {line_no}: malformed MQTT batch line: {exc!r}",
                        record=line.decode("utf-8", errors="replace")[:2000],
                        line=line_no,
                    )
                )
                continue
            for raw in raw_events:
                outcome = ctx.load(
                    index, raw, rows, seen, topic_device=device_id, received_at=received_at
                )
                index += 1
                if isinstance(outcome, Reject):
                    result.rejects.append(outcome)
        result.tables = rows.build()
        return result


@dataclass(frozen=True)
class EventCheck:
    """Outcome of :func:`check_event`: the valid event, or the reason (and its category)."""

    table: str  # raw table the event is meant for
    event: CountEvent | TrackEvent | HeartbeatEvent | None = None
    device: DeviceRef | None = None
    reason: str | None = None
    category: str | None = None  # unsupported_version | invalid_event | unknown_device | ...
    replayable: bool = False


def check_event(
    raw: Any,
    tenant_id: str,
    device_of: Callable[[str], DeviceRef | None],
    latest: datetime,
    *,
    topic_device: str | None = None,
) -> EventCheck:
    """Validate one decoded event of ``tenant_id`` (schema, device, line, interval, future).

    ``device_of`` looks a device id up in the tenant; ``latest`` is the newest acceptable
    timestamp; ``topic_device`` (MQTT) is the device the message's topic names, which every
    event must carry. Shared by the Pre-ETL and the MQTT subscriber, so both judge alike.
    """
    kind = raw.get("type") if isinstance(raw, dict) else None
    table = TABLE_OF_TYPE.get(kind, COUNTS) if isinstance(kind, str) else COUNTS

    def bad(reason: str, category: str, replayable: bool = False) -> EventCheck:
        return EventCheck(table, reason=reason, category=category, replayable=replayable)

    if not isinstance(raw, dict):
        return bad(f"expected an object, got {type(raw).__name__}", "invalid_event")
    if raw.get("v") != SCHEMA_VERSION:
        return bad(
            f"unsupported schema version v={raw.get('v')!r} (expected {SCHEMA_VERSION})",
            "unsupported_version",
        )
    try:
        ev = DEVICE_EVENT.validate_python(raw)
    except ValidationError as exc:
        return bad(_describe(exc), "invalid_event")
    if topic_device is not None and ev.device_id != topic_device:
        return bad(
            f"event of device {ev.device_id!r} published on the topic of device {topic_device!r}",
            "device_mismatch",
        )
    device = device_of(ev.device_id)
    if device is None:
        return bad(
            f"unknown device {ev.device_id!r} for tenant {tenant_id!r}", "unknown_device", True
        )

    def future(field: str, ts: datetime) -> EventCheck | None:
        if ts > latest:
            return bad(
                f"{field} {ts.isoformat()} is more than {FUTURE_TOLERANCE} after it was"
                f" received ({(latest - FUTURE_TOLERANCE).isoformat()})",
                "future_timestamp",
            )
        return None

    if isinstance(ev, CountEvent):
        lines = (device.lines + device.zones) or DEFAULT_LINES
        if ev.line not in lines:
            return bad(
                f"line {ev.line!r} is not a line of device {ev.device_id!r}"
                f" (expected one of {', '.join(lines)})",
                "unknown_line",
            )
        if ev.interval_end <= ev.interval_start:
            return bad(
                f"interval_end {ev.interval_end.isoformat()} is not after interval_start"
                f" {ev.interval_start.isoformat()}",
                "bad_interval",
            )
        if problem := future("interval_end", ev.interval_end):
            return problem
    elif isinstance(ev, TrackEvent):
        for i, point in enumerate(ev.points):
            if problem := future(f"points.{i}.ts", point.ts):
                return problem
    elif problem := future("ts", ev.ts):
        return problem
    return EventCheck(table, event=ev, device=device)


class _Context:
    def __init__(self, event: ObjectRegistered, directory: Directory) -> None:
        self.event = event
        self.directory = directory
        self._devices: dict[str, DeviceRef | None] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def device(self, device_id: str) -> DeviceRef | None:
        if device_id not in self._devices:
            self._devices[device_id] = self.directory.device(self.event.tenant_id, device_id)
        return self._devices[device_id]

    def day(self, ts: datetime, device: DeviceRef) -> int:
        tz = self._zones.get(device.timezone)
        if tz is None:
            tz = self._zones[device.timezone] = ZoneInfo(device.timezone)
        return ts.astimezone(tz).date().toordinal() - _EPOCH_DAY

    def load(
        self,
        index: int,
        raw: Any,
        rows: _Rows,
        seen: set[tuple[str, int]],
        *,
        topic_device: str | None = None,
        received_at: datetime | None = None,
    ) -> Reject | bool:
        """False when loaded, True for a dropped duplicate, or the reject."""
        received = received_at or self.event.registered_at
        check = check_event(
            raw,
            self.event.tenant_id,
            self.device,
            received + FUTURE_TOLERANCE,
            topic_device=topic_device,
        )
        if check.event is None or check.device is None:
            return Reject(
                check.table, f"event {index}: {check.reason}", record=raw, line=index + 1,
                replayable=check.replayable,
            )  # fmt: skip
        ev, device = check.event, check.device
        if (ev.device_id, ev.seq) in seen:
            return True
        seen.add((ev.device_id, ev.seq))
        common = {
            "tenant_id": self.event.tenant_id,
            "store_id": device.store_id,
            "device_id": ev.device_id,
            "seq": ev.seq,
            "source_object_id": self.event.object_id,
        }
        if isinstance(ev, CountEvent):
            rows.add(
                COUNTS, **common, line=ev.line, business_date=self.day(ev.interval_start, device),
                interval_start=_micros(ev.interval_start), interval_end=_micros(ev.interval_end),
                count_in=ev.count_in, count_out=ev.count_out,
            )  # fmt: skip
        elif isinstance(ev, TrackEvent):
            for point in ev.points:
                rows.add(
                    TRACKS, **common, track_id=ev.track_id,
                    business_date=self.day(point.ts, device), ts=_micros(point.ts),
                    x=point.x, y=point.y, zone=point.zone,
                )  # fmt: skip
        else:
            rows.add(
                HEARTBEATS, **common, business_date=self.day(ev.ts, device), ts=_micros(ev.ts),
                status=ev.status, firmware=ev.firmware, battery=ev.battery,
                received_at=_micros(received),
            )  # fmt: skip
        return False
