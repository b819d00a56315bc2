"""Pre-ETL of device events (people counters, ToF cameras) into the raw IoT tables.

A body is one event, an array, or ``{"events": [...]}``. Each event is validated on its own:
schema (``tenpo.iot.models``), registered device of the object's tenant, a line the device
has, a sane interval, and no timestamp more than a day after the object was registered.
A repeated (device_id, seq) inside one object is a re-send and is dropped silently.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from pydantic import ValidationError

from tenpo.control.directory import DeviceRef, Directory
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

__all__ = ["DEFAULT_LINES", "FUTURE_TOLERANCE", "IotPreEtl", "split_events"]

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


def split_events(body: Any) -> list[Any]:
    """The events of a decoded body: one event, an array, or ``{"events": [...]}``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "events" in body and "type" not in body:
            if not isinstance(body["events"], list):
                raise ValueError("'events' must be an array")
            return list(body["events"])
        return [body]
    raise ValueError(f"expected an event object or an array, got {type(body).__name__}")


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


class _Context:
    def __init__(self, event: ObjectRegistered, directory: Directory) -> None:
        self.event = event
        self.directory = directory
        self.latest = event.registered_at + FUTURE_TOLERANCE
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

    def load(self, index: int, raw: Any, rows: _Rows, seen: set[tuple[str, int]]) -> Reject | bool:
        """False when loaded, True for a dropped duplicate, or the reject."""
        kind = raw.get("type") if isinstance(raw, dict) else None
        table = TABLE_OF_TYPE.get(kind, COUNTS) if isinstance(kind, str) else COUNTS

        def reject(reason: str, replayable: bool = False) -> Reject:
            return Reject(
                table, f"event {index}: {reason}", record=raw, line=index + 1,
                replayable=replayable,
            )  # fmt: skip

        if not isinstance(raw, dict):
            return reject(f"expected an object, got {type(raw).__name__}")
        if raw.get("v") != SCHEMA_VERSION:
            return reject(
                f"unsupported schema version v={raw.get('v')!r} (expected {SCHEMA_VERSION})"
            )
        try:
            ev = DEVICE_EVENT.validate_python(raw)
        except ValidationError as exc:
            return reject(_describe(exc))
        key = (ev.device_id, ev.seq)
        if key in seen:
            return True
        device = self.device(ev.device_id)
        if device is None:
            return reject(
                f"unknown device {ev.device_id!r} for tenant {self.event.tenant_id!r}",
                replayable=True,
            )
        common = {
            "tenant_id": self.event.tenant_id,
            "store_id": device.store_id,
            "device_id": ev.device_id,
            "seq": ev.seq,
            "source_object_id": self.event.object_id,
        }
        if isinstance(ev, CountEvent):
            lines = (device.lines + device.zones) or DEFAULT_LINES
            if ev.line not in lines:
                return reject(
                    f"line {ev.line!r} is not a line of device {ev.device_id!r}"
                    f" (expected one of {', '.join(lines)})"
                )
            if ev.interval_end <= ev.interval_start:
                return reject(
                    f"interval_end {ev.interval_end.isoformat()} is not after interval_start"
                    f" {ev.interval_start.isoformat()}"
                )
            if problem := self._future("interval_end", ev.interval_end):
                return reject(problem)
            seen.add(key)
            rows.add(
                COUNTS, **common, line=ev.line, business_date=self.day(ev.interval_start, device),
                interval_start=_micros(ev.interval_start), interval_end=_micros(ev.interval_end),
                count_in=ev.count_in, count_out=ev.count_out,
            )  # fmt: skip
        elif isinstance(ev, TrackEvent):
            for i, point in enumerate(ev.points):
                if problem := self._future(f"points.{i}.ts", point.ts):
                    return reject(problem)
            seen.add(key)
            for point in ev.points:
                rows.add(
                    TRACKS, **common, track_id=ev.track_id,
                    business_date=self.day(point.ts, device), ts=_micros(point.ts),
                    x=point.x, y=point.y, zone=point.zone,
                )  # fmt: skip
        else:
            assert isinstance(ev, HeartbeatEvent)
            if problem := self._future("ts", ev.ts):
                return reject(problem)
            seen.add(key)
            rows.add(
                HEARTBEATS, **common, business_date=self.day(ev.ts, device), ts=_micros(ev.ts),
                status=ev.status, firmware=ev.firmware, battery=ev.battery,
            )  # fmt: skip
        return False

    def _future(self, field: str, ts: datetime) -> str | None:
        if ts > self.latest:
            return (
                f"{field} {ts.isoformat()} is more than {FUTURE_TOLERANCE} after the object"
                f" was received ({self.event.registered_at.isoformat()})"
            )
        return None
