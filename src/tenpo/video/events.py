"""Visitor events from the video analyzer (JSONL) and their Pre-ETL into ``raw_visitor_events``.

One JSON object per line: ``camera_id``, ``person_id`` (null when no PersonID was assigned),
``event`` (entry | exit), ``ts`` (ISO 8601 with offset), ``quality`` (0..1) and ``track_id``.
The camera must be a registered ``rgb_camera`` of the object's tenant; its store and
timezone give ``store_id`` and the business date.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from tenpo.control.directory import DeviceRef, Directory
from tenpo.core.preetl import ParseResult, Reject, unicode_text
from tenpo.lake.landing import ObjectRegistered
from tenpo.warehouse.schemas import RAW_VISITOR_EVENTS

__all__ = ["VisitorEvent", "VisitorEventsPreEtl"]

log = logging.getLogger(__name__)

TABLE = "raw_visitor_events"
CAMERA_KIND = "rgb_camera"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


Text = Annotated[str, AfterValidator(unicode_text)]


class VisitorEvent(BaseModel):
    """One entry or exit of a person seen by a camera (the analyzer writes these)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    camera_id: Text = Field(min_length=1)
    person_id: Text | None = Field(description="PersonID; null when none was assigned.")
    event: Literal["entry", "exit"]
    ts: Annotated[AwareDatetime, BeforeValidator(_iso_string), Field(strict=False)]
    quality: float = Field(ge=0, le=1)
    track_id: Text = Field(min_length=1)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


class VisitorEventsPreEtl:
    """Pre-ETL of the analyzer's JSONL visitor events into ``raw_visitor_events``."""

    source = "visitor_events"

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid line; a reject per bad line (or one for undecodable bytes)."""
        result = ParseResult()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.rejects.append(
                Reject(TABLE, f"not valid UTF-8 at byte offset {exc.start}: {exc.reason}")
            )
            return result
        fast = _vectorised(event, data, text, directory)
        if fast is not None:
            result.tables = {TABLE: fast}
            return result
        cols: dict[str, list[Any]] = {f.name: [] for f in RAW_VISITOR_EVENTS}
        cameras: dict[str, DeviceRef | None] = {}
        zones: dict[str, ZoneInfo] = {}
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except ValueError as exc:
                result.rejects.append(
                    Reject(TABLE, f"line {line_no}: malformed JSON: {exc}", line, line_no)
                )
                continue
            try:
                ev = VisitorEvent.model_validate(raw)
            except ValidationError as exc:
                result.rejects.append(
                    Reject(TABLE, f"line {line_no}: {_describe(exc)}", raw, line_no)
                )
                continue
            if ev.camera_id not in cameras:
                device = directory.device(event.tenant_id, ev.camera_id)
                cameras[ev.camera_id] = device if device and device.kind == CAMERA_KIND else None
            camera = cameras[ev.camera_id]
            if camera is None:
                result.rejects.append(
                    Reject(
                        TABLE,
                        f"line {line_no}: camera {ev.camera_id!r} is not a registered"
                        f" {CAMERA_KIND} of tenant {event.tenant_id!r}",
                        raw,
                        line_no,
                        replayable=True,
                    )
                )
                continue
            tz = zones.get(camera.timezone) or zones.setdefault(
                camera.timezone, ZoneInfo(camera.timezone)
            )
            cols["tenant_id"].append(event.tenant_id)
            cols["store_id"].append(camera.store_id)
            cols["camera_id"].append(ev.camera_id)
            cols["person_id"].append(ev.person_id)
            cols["event"].append(ev.event)
            cols["business_date"].append(ev.ts.astimezone(tz).date().toordinal() - _EPOCH_DAY)
            cols["ts"].append((ev.ts - _EPOCH) // _US)
            cols["quality"].append(ev.quality)
            cols["track_id"].append(ev.track_id)
            cols["source_object_id"].append(event.object_id)
        arrays = []
        for fld in RAW_VISITOR_EVENTS:
            values = cols[fld.name]
            if fld.name == "ts":
                arrays.append(pa.array(values, pa.int64()).cast(fld.type))
            elif fld.name == "business_date":
                arrays.append(pa.array(values, pa.int32()).cast(fld.type))
            else:
                arrays.append(pa.array(values, fld.type))
        result.tables = {TABLE: pa.Table.from_arrays(arrays, schema=RAW_VISITOR_EVENTS)}
        log.debug("visitor events %s: %d rows", event.object_id, len(cols["ts"]))
        return result


# --- vectorised path ---------------------------------------------------------------------
# The analyzer writes plain lines; Arrow's JSON reader parses a whole object in C++ and the
# checks below run on columns. Anything unusual (a type or shape Arrow refuses, a missing
# field, a value out of range, an unknown camera, a line break Python would split where Arrow
# does not, escapes) leaves it to the line-by-line path above, which names each problem, so
# both paths load the same rows (tests compare them).

_READ_SCHEMA = pa.schema(
    [("camera_id", pa.string()), ("person_id", pa.string()), ("event", pa.string()),
     ("ts", pa.string()), ("quality", pa.float64()), ("track_id", pa.string())]
)  # fmt: skip
_FIELD_KEYS = [f'"{name}"'.encode() for name in _READ_SCHEMA.names]
# Separators str.splitlines() breaks at (inside a string too) but JSON Lines does not, and
# escapes (\uXXXX: surrogates and all): the line-by-line path judges those.
_UNUSUAL = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\r", b"\xc2\x85", b"\xe2\x80\xa8",
            b"\xe2\x80\xa9", b"\\u")  # fmt: skip
_CANONICAL_TS = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _vectorised(
    event: ObjectRegistered, data: bytes, text: str, directory: Directory
) -> pa.Table | None:
    """The rows of a plain, wholly valid object, or None for the line-by-line path."""
    import pyarrow.compute as pc
    import pyarrow.json as pj

    rows = sum(1 for line in text.splitlines() if line.strip())
    if rows == 0 or any(s in data for s in _UNUSUAL) or data.count(b"{") != rows:
        return None  # nested objects could hide a missing key from the counts below
    if any(data.count(key) != rows for key in _FIELD_KEYS):
        return None  # every line names every field once (person_id null, not missing)
    try:
        read = pj.read_json(
            io.BytesIO(data),
            parse_options=pj.ParseOptions(
                explicit_schema=_READ_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        return None
    if read.num_rows != rows:
        return None
    cols = {name: read[name].combine_chunks() for name in read.column_names}
    for name in ("camera_id", "event", "ts", "quality", "track_id"):
        if cols[name].null_count:
            return None
    quality = cols["quality"]
    checks = (
        pc.all(pc.is_in(cols["event"], value_set=pa.array(["entry", "exit"]))),
        pc.all(pc.and_(pc.greater_equal(quality, 0.0), pc.less_equal(quality, 1.0))),
        pc.all(pc.greater_equal(pc.utf8_length(cols["camera_id"]), 1)),
        pc.all(pc.greater_equal(pc.utf8_length(cols["track_id"]), 1)),
        pc.all(pc.match_substring_regex(cols["ts"], _CANONICAL_TS)),
    )
    if not all(c.as_py() for c in checks):
        return None
    try:
        ts = pc.cast(cols["ts"], RAW_VISITOR_EVENTS.field("ts").type)
    except pa.ArrowInvalid:  # 2026-02-30 and the like
        return None
    names = pc.unique(cols["camera_id"])
    cameras = []
    for camera_id in names.to_pylist():
        device = directory.device(event.tenant_id, camera_id)
        if device is None or device.kind != CAMERA_KIND:
            return None
        cameras.append(device)
    which = pc.index_in(cols["camera_id"], value_set=names)
    zones = sorted({c.timezone for c in cameras})
    by_zone = [
        pc.cast(pc.local_timestamp(pc.cast(ts, pa.timestamp("us", zone))), pa.date32())
        for zone in zones
    ]
    if len(zones) == 1:
        business_date = by_zone[0]
    else:
        zone_of = pa.array([zones.index(c.timezone) for c in cameras], pa.int8())
        business_date = pc.choose(pc.take(zone_of, which), *by_zone)
    n = read.num_rows
    columns = {
        "tenant_id": pa.array([event.tenant_id] * n, pa.string()),
        "store_id": pc.take(pa.array([c.store_id for c in cameras], pa.string()), which),
        "camera_id": cols["camera_id"],
        "person_id": cols["person_id"],
        "event": cols["event"],
        "business_date": business_date,
        "ts": ts,
        "quality": quality,
        "track_id": cols["track_id"],
        "source_object_id": pa.array([event.object_id] * n, pa.string()),
    }
    return pa.Table.from_arrays(
        [columns[f.name] for f in RAW_VISITOR_EVENTS], schema=RAW_VISITOR_EVENTS
    )
