"""Pre-ETL of device events (people counters, ToF cameras) into the raw IoT tables.

A body is one event, an array, or ``{"events": [...]}``. Each event is validated on its own:
schema (``tenpo.iot.models``), registered device of the object's tenant, a line the device
has, a sane interval, and no timestamp more than a day after the object was registered.
A repeated (device_id, seq) inside one object is a re-send and is dropped silently.

Objects landed by the MQTT subscriber (content type :data:`MQTT_FRAMES`) hold the messages
byte for byte as received, each a JSON header line ``{"topic", "device_id", "received_at",
"mid", "dup", "bytes"}`` followed by exactly ``bytes`` payload bytes and a newline (see
:func:`frame` and :func:`read_frames`). Older objects (content type :data:`MQTT_BATCH`) are JSON
Lines with the payload text in a ``payload`` field; both are still read. Every event of a
message must carry the topic's device id, and "too far in the future" is measured from when
that message was received.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator
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
    "MQTT_FRAMES",
    "EventCheck",
    "IotPreEtl",
    "check_event",
    "frame",
    "judge_event",
    "read_frames",
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
"""Content type of the earlier MQTT batch objects (one JSON line per message, payload as text)."""

MQTT_FRAMES = "application/vnd.tenpo.mqtt-frames"
"""Content type of a landing object holding MQTT messages as received (see :func:`frame`)."""


def frame(topic: str, device_id: str, received_at: datetime, mid: int, dup: bool,
          payload: bytes) -> bytes:  # fmt: skip
    """One message of an :data:`MQTT_FRAMES` object: a JSON header line, the payload, ``\\n``."""
    header = json.dumps(
        {"topic": topic, "device_id": device_id, "received_at": received_at.isoformat(),
         "mid": mid, "dup": dup, "bytes": len(payload)},
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    return b"".join((header.encode(), b"\n", payload, b"\n"))


def read_frames(data: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(header, payload bytes) of each message of an :data:`MQTT_FRAMES` object, in order.

    Raises ``ValueError`` at the first frame that is not well formed (nothing after it can be
    located, so the caller rejects the rest of the object).
    """
    pos, end = 0, len(data)
    while pos < end:
        eol = data.find(b"\n", pos)
        if eol < 0:
            raise ValueError(f"frame header at byte {pos} has no end of line")
        header = json.loads(data[pos:eol])
        size = header.get("bytes") if isinstance(header, dict) else None
        if type(size) is not int or size < 0 or eol + 1 + size >= end:
            raise ValueError(f"frame header at byte {pos} has no valid 'bytes' length")
        stop = eol + 1 + size
        if data[stop : stop + 1] != b"\n":
            raise ValueError(f"frame at byte {pos}: payload of {size} bytes not followed by \\n")
        yield header, data[eol + 1 : stop]
        pos = stop + 1


def split_events(body: Any) -> list[Any]:
    """The events of a decoded body: one event, an array, or ``{"events": [...]}`` — the
    gateway's rule (:func:`tenpo.core.bodies.split_records`: both at once is ambiguous)."""
    return split_records(body, "events", EVENT_FIELDS, "event")


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


_VARYING = {
    COUNTS: ("store_id", "device_id", "line", "business_date", "interval_start", "interval_end",
             "count_in", "count_out", "seq"),
    TRACKS: ("store_id", "device_id", "track_id", "business_date", "ts", "x", "y", "zone", "seq"),
    HEARTBEATS: ("store_id", "device_id", "business_date", "ts", "status", "firmware", "battery",
                 "seq", "received_at"),
}  # fmt: skip
"""Per table, the columns a row tuple holds, in order (the others are the object's constants)."""
SCHEMAS = {COUNTS: RAW_IOT_COUNTS, TRACKS: RAW_IOT_TRACKS, HEARTBEATS: RAW_DEVICE_HEARTBEATS}


class TableRows:
    """Row tuples of the three tables (see :data:`_VARYING`), turned into columns at the end."""

    def __init__(self, tenant_id: str, object_id: str) -> None:
        self.constants = {"tenant_id": tenant_id, "source_object_id": object_id}
        self.tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _VARYING}

    def build(self) -> dict[str, pa.Table]:
        out = {}
        for name, rows in self.tables.items():
            columns: dict[str, Any] = dict(
                zip(_VARYING[name], zip(*rows, strict=True), strict=False)
            )
            for column, value in self.constants.items():
                columns[column] = [value] * len(rows)
            out[name] = _table(SCHEMAS[name], columns)
        return out


def _table(schema: pa.Schema, cols: dict[str, Any]) -> pa.Table:
    arrays = []
    for fld in schema:
        values = cols.get(fld.name, ())  # no rows: no column values either
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

    def __init__(self, *, _fast: bool = True) -> None:
        self._fast = _fast  # False: JSON bodies and MQTT frames event by event (tests compare)

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid event; a reject per bad event (or one for a bad body)."""
        if event.content_type == MQTT_FRAMES:
            return self._parse_mqtt_frames(event, data, directory)
        if event.content_type == MQTT_BATCH:
            return self._parse_mqtt_batch(event, data, directory)
        if self._fast:
            from tenpo.iot._fast import parse_fast  # imports this module

            fast = parse_fast(event, data, directory)
            if fast is not None:
                return fast
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

        rows = TableRows(event.tenant_id, event.object_id)
        ctx = Context(event, directory)
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

    def parse_many(
        self, items: list[tuple[ObjectRegistered, bytes]], directory: Directory
    ) -> list[ParseResult]:
        """The results of several objects, in order, as :meth:`parse` gives them: their plain
        JSON bodies and MQTT frames in one column pass (per-object costs shared), the others
        one by one."""
        if not self._fast:
            return [self.parse(event, data, directory) for event, data in items]
        from tenpo.iot._fast import parse_many_fast  # imports this module

        fast = parse_many_fast(items, directory)
        return [
            self.parse(event, data, directory) if result is None else result
            for result, (event, data) in zip(fast, items, strict=True)
        ]

    def _parse_mqtt_frames(
        self, event: ObjectRegistered, data: bytes, directory: Directory
    ) -> ParseResult:
        """MQTT messages as received: each message's events, checked against its topic."""
        if self._fast:
            from tenpo.iot._fast import parse_frames_fast  # imports this module

            fast = parse_frames_fast(event, data, directory)
            if fast is not None:
                return fast
        result = ParseResult()
        rows = TableRows(event.tenant_id, event.object_id)
        ctx = Context(event, directory)
        seen: set[tuple[str, int]] = set()
        index = 0
        received_seen: dict[str, datetime] = {}
        message_no = 0
        frames = read_frames(data)
        while True:
            message_no += 1
            try:
                found = next(frames, None)
                if found is None:
                    break
                header, payload = found
                device_id, stamp = header.get("device_id"), header.get("received_at")
                if not isinstance(device_id, str) or not isinstance(stamp, str):
                    raise ValueError("header needs string device_id and received_at")
                received_at = received_seen.get(stamp)
                if received_at is None:
                    received_at = received_seen[stamp] = datetime.fromisoformat(stamp)
                    if received_at.tzinfo is None:
                        raise ValueError("received_at must have an offset")
            except (ValueError, RecursionError) as exc:  # the frames after it cannot be found
                result.rejects.append(
                    Reject(COUNTS, f"message {message_no}: malformed MQTT frame: {exc}",
                           line=message_no)
                )  # fmt: skip
                break
            try:
                raw_events = split_events(json.loads(payload))
            except (ValueError, RecursionError) as exc:  # the subscriber refuses these
                result.rejects.append(
                    Reject(COUNTS, f"message {message_no}: malformed JSON payload: {exc}",
                           record=payload.decode("utf-8", errors="replace")[:2000],
                           line=message_no)
                )  # fmt: skip
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

    def _parse_mqtt_batch(
        self, event: ObjectRegistered, data: bytes, directory: Directory
    ) -> ParseResult:
        """A JSON Lines batch of MQTT messages: each message's events, checked against its topic."""
        result = ParseResult()
        rows = TableRows(event.tenant_id, event.object_id)
        ctx = Context(event, directory)
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


# --- fast path -----------------------------------------------------------------------------
# Validating every event through pydantic costs ~20 µs; events in the plain shape (exact JSON
# types, canonical RFC 3339 timestamps, values inside the models' bounds) are checked here
# directly. Anything else goes through check_event, which decides and names the problem, so
# both paths accept the same events with the same values (tests compare them).

_MISSING: Any = object()
_CANONICAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_TS_SEEN: dict[str, tuple[datetime, int] | None] = {}  # timestamps repeat across devices


def _plain_ts(value: Any) -> tuple[datetime, int] | None:
    """(aware datetime, epoch µs) of a canonical timestamp string, else None."""
    if type(value) is not str:
        return None
    hit = _TS_SEEN.get(value, _MISSING)
    if hit is not _MISSING:
        return hit
    found: tuple[datetime, int] | None = None
    if _CANONICAL_TS.fullmatch(value):
        try:
            ts = datetime.fromisoformat(value)
            found = (ts, _micros(ts))
        except ValueError:  # 2026-02-30, 24:00:00, ...: the model names the problem
            found = None
    if len(_TS_SEEN) > 200_000:
        _TS_SEEN.clear()
    _TS_SEEN[value] = found
    return found


def _bounds(model: type[Any], name: str) -> tuple[float, float]:
    """Inclusive (low, high) of a numeric or length constraint of a model field."""
    low, high = -math.inf, math.inf
    for m in model.model_fields[name].metadata:
        if (v := getattr(m, "ge", None)) is not None:
            low = max(low, v)
        if (v := getattr(m, "gt", None)) is not None:
            low = max(low, math.nextafter(v, math.inf) if isinstance(v, float) else v + 1)
        if (v := getattr(m, "le", None)) is not None:
            high = min(high, v)
        if (v := getattr(m, "lt", None)) is not None:
            high = min(high, math.nextafter(v, -math.inf) if isinstance(v, float) else v - 1)
        if (v := getattr(m, "min_length", None)) is not None:
            low = max(low, v)
        if (v := getattr(m, "max_length", None)) is not None:
            high = min(high, v)
    return low, high


# Read from the models, so the fast path never accepts what a tightened model would refuse.
SEQ = _bounds(CountEvent, "seq")
DEVICE_LEN = _bounds(CountEvent, "device_id")
LINE_LEN = _bounds(CountEvent, "line")
COUNT_IN = _bounds(CountEvent, "count_in")
COUNT_OUT = _bounds(CountEvent, "count_out")
TRACK_ID_LEN = _bounds(TrackEvent, "track_id")
STATUS_LEN = _bounds(HeartbeatEvent, "status")
BATTERY = _bounds(HeartbeatEvent, "battery")

# Valid event values, one tuple shape per type (from the fast path or from the models):
# ("count", device_id, seq, line, (start, µs), (end, µs), in, out)
# ("track", device_id, seq, track_id, [((ts, µs), x, y, zone), ...])
# ("heartbeat", device_id, seq, (ts, µs), status, firmware, battery)
Values = tuple[Any, ...]


def _plain_event(raw: Any) -> Values | None:
    """The values of ``raw`` when it is a schema-valid event in the plain shape, else None."""
    if type(raw) is not dict:
        return None
    v, device_id, seq = raw.get("v"), raw.get("device_id"), raw.get("seq")
    if type(v) is not int or v != SCHEMA_VERSION or type(device_id) is not str:
        return None
    if not DEVICE_LEN[0] <= len(device_id) <= DEVICE_LEN[1]:
        return None
    if type(seq) is not int or not SEQ[0] <= seq <= SEQ[1]:
        return None
    kind = raw.get("type")
    if kind == "count":
        line, c_in, c_out = raw.get("line"), raw.get("in"), raw.get("out")
        start, end = _plain_ts(raw.get("interval_start")), _plain_ts(raw.get("interval_end"))
        if (
            type(line) is not str
            or not LINE_LEN[0] <= len(line) <= LINE_LEN[1]
            or start is None
            or end is None
            or type(c_in) is not int
            or not COUNT_IN[0] <= c_in <= COUNT_IN[1]
            or type(c_out) is not int
            or not COUNT_OUT[0] <= c_out <= COUNT_OUT[1]
        ):
            return None
        return ("count", device_id, seq, line, start, end, c_in, c_out)
    if kind == "heartbeat":
        ts, status = _plain_ts(raw.get("ts")), raw.get("status")
        firmware, battery = raw.get("firmware"), raw.get("battery")
        if ts is None or type(status) is not str or not status.isascii():
            return None
        if not STATUS_LEN[0] <= len(status) <= STATUS_LEN[1]:
            return None
        if firmware is not None and (type(firmware) is not str or not firmware.isascii()):
            return None
        if battery is not None and (
            type(battery) is not float or not BATTERY[0] <= battery <= BATTERY[1]
        ):
            return None
        return ("heartbeat", device_id, seq, ts, status, firmware, battery)
    if kind == "track":
        track_id, raw_points = raw.get("track_id"), raw.get("points")
        # Free text must be ASCII here: the model judges the rest (lone surrogates and all).
        if type(track_id) is not str or not track_id.isascii():
            return None
        if not TRACK_ID_LEN[0] <= len(track_id):
            return None
        if len(track_id) > TRACK_ID_LEN[1] or type(raw_points) is not list or not raw_points:
            return None
        points = []
        for p in raw_points:
            if type(p) is not dict:
                return None
            pts, x, y, zone = _plain_ts(p.get("ts")), p.get("x"), p.get("y"), p.get("zone")
            if pts is None or type(x) is not float or type(y) is not float:
                return None
            if not (math.isfinite(x) and math.isfinite(y)):  # the model says about inf/nan
                return None
            if zone is not None and (type(zone) is not str or not zone.isascii()):
                return None
            points.append((pts, x, y, zone))
        return ("track", device_id, seq, track_id, points)
    return None


def _values_of(ev: CountEvent | TrackEvent | HeartbeatEvent) -> Values:
    """The same values tuple from a model-validated event (the slow path)."""
    if isinstance(ev, CountEvent):
        start, end = ev.interval_start, ev.interval_end
        return (
            "count", ev.device_id, ev.seq, ev.line, (start, _micros(start)),
            (end, _micros(end)), ev.count_in, ev.count_out,
        )  # fmt: skip
    if isinstance(ev, TrackEvent):
        points = [((p.ts, _micros(p.ts)), p.x, p.y, p.zone) for p in ev.points]
        return ("track", ev.device_id, ev.seq, ev.track_id, points)
    ts = (ev.ts, _micros(ev.ts))
    return ("heartbeat", ev.device_id, ev.seq, ts, ev.status, ev.firmware, ev.battery)


def _sane(values: Values, device: DeviceRef, latest: datetime) -> bool:
    """The device-dependent checks of check_event, without building its reason."""
    kind = values[0]
    if kind == "count":
        start, end = values[4][0], values[5][0]
        lines = (device.lines + device.zones) or DEFAULT_LINES
        return values[3] in lines and start < end <= latest
    if kind == "track":
        return all(point[0][0] <= latest for point in values[4])
    return bool(values[3][0] <= latest)


def judge_event(
    raw: Any,
    tenant_id: str,
    device_of: Callable[[str], DeviceRef | None],
    latest: datetime,
    *,
    topic_device: str | None = None,
) -> tuple[Values, DeviceRef] | EventCheck:
    """(values, device) of a valid event, else the :class:`EventCheck` naming the problem.

    Same verdicts as :func:`check_event` (which it calls for anything not plainly valid),
    at a fraction of the cost for the common case.
    """
    values = _plain_event(raw)
    if values is not None and (topic_device is None or values[1] == topic_device):
        device = device_of(values[1])
        if device is not None and _sane(values, device, latest):
            return values, device
    check = check_event(raw, tenant_id, device_of, latest, topic_device=topic_device)
    if check.event is None or check.device is None:
        return check
    return _values_of(check.event), check.device


class Context:
    def __init__(self, event: ObjectRegistered, directory: Directory) -> None:
        self.event = event
        self.directory = directory
        self._devices: dict[str, DeviceRef | None] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._days: dict[tuple[int, str], int] = {}

    def device(self, device_id: str) -> DeviceRef | None:
        if device_id not in self._devices:
            self._devices[device_id] = self.directory.device(self.event.tenant_id, device_id)
        return self._devices[device_id]

    def day(self, ts: tuple[datetime, int], device: DeviceRef) -> int:
        """Local business date (days since 1970-01-01) of ``ts`` (datetime, epoch µs)."""
        key = (ts[1], device.timezone)
        found = self._days.get(key)
        if found is None:
            tz = self._zones.get(device.timezone)
            if tz is None:
                tz = self._zones[device.timezone] = ZoneInfo(device.timezone)
            found = self._days[key] = ts[0].astimezone(tz).date().toordinal() - _EPOCH_DAY
        return found

    def load(
        self,
        index: int,
        raw: Any,
        rows: TableRows,
        seen: set[tuple[str, int]],
        *,
        topic_device: str | None = None,
        received_at: datetime | None = None,
    ) -> Reject | bool:
        """False when loaded, True for a dropped duplicate, or the reject."""
        received = received_at or self.event.registered_at
        judged = judge_event(
            raw,
            self.event.tenant_id,
            self.device,
            received + FUTURE_TOLERANCE,
            topic_device=topic_device,
        )
        if isinstance(judged, EventCheck):
            return Reject(
                judged.table, f"event {index}: {judged.reason}", record=raw, line=index + 1,
                replayable=judged.replayable,
            )  # fmt: skip
        values, device = judged
        kind, device_id, seq = values[0], values[1], values[2]
        if (device_id, seq) in seen:
            return True
        seen.add((device_id, seq))
        tables = rows.tables
        if kind == "count":
            _, _, _, line, start, end, count_in, count_out = values
            tables[COUNTS].append(
                (device.store_id, device_id, line, self.day(start, device), start[1], end[1],
                 count_in, count_out, seq)
            )  # fmt: skip
        elif kind == "track":
            track_id, day = values[3], self.day
            tables[TRACKS].extend(
                (device.store_id, device_id, track_id, day(ts, device), ts[1], x, y, zone, seq)
                for ts, x, y, zone in values[4]
            )
        else:
            _, _, _, ts, status, firmware, battery = values
            tables[HEARTBEATS].append(
                (device.store_id, device_id, self.day(ts, device), ts[1], status, firmware,
                 battery, seq, _micros(received))
            )  # fmt: skip
        return False
