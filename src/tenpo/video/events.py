"""Visitor events from the video analyzer (JSONL) and their Pre-ETL into ``raw_visitor_events``.

One JSON object per line: ``camera_id``, ``person_id`` (null when no PersonID was assigned),
``event`` (entry | exit), ``ts`` (ISO 8601 with offset), ``quality`` (0..1) and ``track_id``.
The camera must be a registered ``rgb_camera`` of the object's tenant; its store and
timezone give ``store_id`` and the business date.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pyarrow as pa
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tenpo.control.directory import DeviceRef, Directory
from tenpo.core.preetl import ParseResult, Reject
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


class VisitorEvent(BaseModel):
    """One entry or exit of a person seen by a camera (the analyzer writes these)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    camera_id: str = Field(min_length=1)
    person_id: str | None = Field(description="PersonID; null when none was assigned.")
    event: Literal["entry", "exit"]
    ts: Annotated[AwareDatetime, BeforeValidator(_iso_string), Field(strict=False)]
    quality: float = Field(ge=0, le=1)
    track_id: str = Field(min_length=1)


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
