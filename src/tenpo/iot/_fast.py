"""Column-wise fast path of the IoT Pre-ETL: JSON bodies and MQTT frames objects of counts,
heartbeats and ToF tracks.

The body (or each MQTT message's payload) is decoded once by orjson and each field checked as
a column (:mod:`tenpo.core.columns`: exact JSON types, the models' bounds, canonical instants by
one Arrow cast); devices are looked up once per id, lines once per (device, line), local dates
once per zone and UTC hour. Only the events a column check flags go through the event-by-event
path (``_Context.load``), which names their problem; when that path would load one of them
after all, or the object holds anything else (a body orjson refuses, a malformed MQTT frame or
payload), the whole object goes to it. Both paths give identical rows and rejects (tests
compare them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tenpo.control.directory import DeviceRef, Directory
from tenpo.core.bodies import BodyError
from tenpo.core.columns import DAY_US, instants, ints, strings, utc_offsets, valid
from tenpo.core.preetl import ParseResult
from tenpo.iot.models import SCHEMA_VERSION
from tenpo.iot.preetl import (
    _BATTERY,
    _COUNT_IN,
    _COUNT_OUT,
    _DEVICE_LEN,
    _LINE_LEN,
    _SCHEMAS,
    _SEQ,
    _STATUS_LEN,
    _TRACK_ID_LEN,
    COUNTS,
    DEFAULT_LINES,
    FUTURE_TOLERANCE,
    HEARTBEATS,
    TRACKS,
    _Context,
    _Rows,
    read_frames,
    split_events,
)
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos._arrow import micros

__all__ = ["parse_fast", "parse_frames_fast"]

MIN_EVENTS = 1000
"""Bodies with fewer events go to the event path directly (the columns' fixed cost is higher)."""
_KINDS = pa.array(["count", "heartbeat", "track"])
_INT64 = (-(2**63), 2**63 - 1)


def _bound(limits: tuple[float, float]) -> tuple[int, int]:
    low, high = limits
    return (max(_INT64[0], int(low)) if math.isfinite(low) else _INT64[0],
            min(_INT64[1], int(high)) if math.isfinite(high) else _INT64[1])  # fmt: skip


def _length_ok(column: pa.Array, limits: tuple[float, float]) -> np.ndarray:
    low, high = _bound(limits)
    lengths = pc.utf8_length(column)
    return valid(pc.and_(pc.greater_equal(lengths, low), pc.less_equal(lengths, high)))


def parse_fast(event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult | None:
    """The result of a plain JSON body, or None when the event-by-event path must run."""
    try:
        raws = split_events(orjson.loads(data))
    except (orjson.JSONDecodeError, BodyError):
        return None
    if len(raws) < MIN_EVENTS:
        return None

    def row_reading() -> _Reading:
        return split_events(json.loads(data.decode("utf-8"))), None, None

    return _columns(event, directory, raws, None, None, row_reading)


def parse_frames_fast(
    event: ObjectRegistered, data: bytes, directory: Directory
) -> ParseResult | None:
    """The result of an :data:`~tenpo.iot.preetl.MQTT_FRAMES` object whose frames and payloads
    are all well formed, or None when the message-by-message path must run (which names a bad
    frame or payload). Each event is checked against its message's topic device and measured
    from its message's ``received_at``, as that path does."""
    raws: list[Any] = []
    topics: list[str] = []
    received: list[datetime] = []
    received_us: list[int] = []
    stamps: dict[str, tuple[datetime, int]] = {}
    try:
        for header, payload in read_frames(data):
            device_id, stamp = header.get("device_id"), header.get("received_at")
            if type(device_id) is not str or type(stamp) is not str:
                return None
            found = stamps.get(stamp)
            if found is None:
                at = datetime.fromisoformat(stamp)
                if at.tzinfo is None:
                    return None
                found = stamps[stamp] = (at, micros(at))
            events = split_events(orjson.loads(payload))
            raws.extend(events)
            topics.extend([device_id] * len(events))
            received.extend([found[0]] * len(events))
            received_us.extend([found[1]] * len(events))
    except (ValueError, RecursionError):  # orjson's and the frames' errors, BodyError
        return None
    if len(raws) < MIN_EVENTS:
        return None

    def row_reading() -> _Reading:
        row_raws: list[Any] = []
        for _, payload in read_frames(data):
            row_raws.extend(split_events(json.loads(payload)))
        return row_raws, topics, received

    return _columns(event, directory, raws, topics, np.array(received_us, np.int64), row_reading)


_Reading = tuple[list[Any], list[str] | None, list[datetime] | None]
"""The event path's reading of an object: its events (stdlib JSON), and per event the topic
device and the message's receive time (None for a plain JSON body)."""


def _columns(
    event: ObjectRegistered,
    directory: Directory,
    raws: list[Any],
    topics: list[str] | None,
    received_us: np.ndarray | None,
    row_reading: Callable[[], _Reading],
) -> ParseResult | None:
    """Rows and rejects of decoded events (see the module docstring), or None.

    ``topics`` and ``received_us`` (epoch µs) are per event for MQTT messages; None means the
    object itself: no topic, received when it was registered.
    """
    n = len(raws)
    if any(type(r) is not dict for r in raws):
        return None
    kind_text = strings([r.get("type") for r in raws])
    kinds = pc.index_in(kind_text, value_set=_KINDS)
    bad = ~valid(pc.is_valid(kinds))
    kind = np.asarray(pc.fill_null(kinds, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    is_count, is_beat, is_track = (kind == 0) & ~bad, (kind == 1) & ~bad, (kind == 2) & ~bad
    _, ok_v = ints([r.get("v") for r in raws], SCHEMA_VERSION, SCHEMA_VERSION)
    device_ids = strings([r.get("device_id") for r in raws])
    seq, ok_seq = ints([r.get("seq") for r in raws], *_bound(_SEQ))
    bad |= ~ok_v | ~ok_seq | ~_length_ok(device_ids, _DEVICE_LEN)
    if topics is not None:  # every event of a message carries its topic's device
        bad |= ~valid(pc.equal(device_ids, pa.array(topics, pa.string())))

    ctx = _Context(event, directory)
    id_list = device_ids.to_pylist()
    known: list[DeviceRef] = []
    index: dict[str, int] = {}
    for device_id in dict.fromkeys(id_list):
        device = ctx.device(device_id) if isinstance(device_id, str) else None
        if device is not None:
            index[device_id] = len(known)
            known.append(device)
    device_of = np.array([index.get(d, -1) if d is not None else -1 for d in id_list], np.int64)
    bad |= device_of < 0
    tolerance = micros(event.registered_at + FUTURE_TOLERANCE) - micros(event.registered_at)
    if received_us is None:
        received_us = np.full(n, micros(event.registered_at), np.int64)
    latest = received_us + tolerance

    # Counts: line, interval, counts. Heartbeats: ts, status, firmware, battery.
    lines = strings([r.get("line") if c else None for r, c in zip(raws, is_count, strict=True)])
    start, ok_start = instants([r.get("interval_start") for r in raws])
    end, ok_end = instants([r.get("interval_end") for r in raws])
    count_in, ok_in = ints([r.get("in") for r in raws], *_bound(_COUNT_IN))
    count_out, ok_out = ints([r.get("out") for r in raws], *_bound(_COUNT_OUT))
    line_list = lines.to_pylist()
    line_ok = np.zeros(n, bool)
    allowed: dict[tuple[int, str], bool] = {}
    for i in np.flatnonzero(is_count & (device_of >= 0)).tolist():
        key = (int(device_of[i]), line_list[i])
        if key not in allowed:
            device = known[key[0]]
            allowed[key] = key[1] in ((device.lines + device.zones) or DEFAULT_LINES)
        line_ok[i] = allowed[key]
    count_ok = _length_ok(lines, _LINE_LEN) & line_ok & ok_start & ok_end & ok_in & ok_out
    count_ok &= (start < end) & (end <= latest)
    bad |= is_count & ~count_ok

    ts, ok_ts = instants([r.get("ts") for r in raws])
    status = strings([r.get("status") if b else None for r, b in zip(raws, is_beat, strict=True)])
    firmware_raw = [r.get("firmware") if b else None for r, b in zip(raws, is_beat, strict=True)]
    firmware = strings(firmware_raw)
    battery_raw = [r.get("battery") if b else None for r, b in zip(raws, is_beat, strict=True)]
    low, high = _BATTERY
    battery_ok = np.array([b is None or (type(b) is float and low <= b <= high)
                           for b in battery_raw], dtype=bool)  # fmt: skip
    firmware_ok = np.array([f is None for f in firmware_raw]) | valid(pc.string_is_ascii(firmware))
    beat_ok = ok_ts & (ts <= latest) & battery_ok & firmware_ok
    beat_ok &= valid(pc.string_is_ascii(status)) & _length_ok(status, _STATUS_LEN)
    bad |= is_beat & ~beat_ok

    # Tracks (ToF cameras): an ASCII track id and a non-empty list of points, each with a
    # canonical ts (not in the future), finite float x and y, and no zone or an ASCII one.
    track_ids = strings([r.get("track_id") if t else None
                         for r, t in zip(raws, is_track, strict=True)])  # fmt: skip
    point_lists = [r.get("points") if t else None for r, t in zip(raws, is_track, strict=True)]
    n_points = np.fromiter((len(p) if type(p) is list else 0 for p in point_lists), np.int64,
                           count=n)  # fmt: skip
    points = [p for ps in point_lists if type(ps) is list for p in ps]
    owner = np.repeat(np.arange(n, dtype=np.int64), n_points)
    point_is_dict = np.fromiter((type(p) is dict for p in points), bool, count=len(points))
    if not point_is_dict.all():
        points = [p if type(p) is dict else {} for p in points]
    point_ts, ok_pts = instants([p.get("ts") for p in points])
    xy_ok = point_is_dict & ok_pts & (point_ts <= latest[owner])
    xy = []
    for name in ("x", "y"):
        values = np.array([v if type(v) is float else math.nan for p in points
                           for v in (p.get(name),)], np.float64)  # fmt: skip
        xy.append(values)
        xy_ok &= np.isfinite(values)
    zone_raw = [p.get("zone") for p in points]
    zones_col = strings(zone_raw)
    xy_ok &= np.fromiter((z is None for z in zone_raw), bool, count=len(points)) | valid(
        pc.string_is_ascii(zones_col)
    )
    track_ok = valid(pc.string_is_ascii(track_ids)) & _length_ok(track_ids, _TRACK_ID_LEN)
    track_ok &= (n_points > 0) & (np.bincount(owner, weights=~xy_ok, minlength=n) == 0)
    bad |= is_track & ~track_ok

    # Re-sends: a repeated (device_id, seq) of a valid event is dropped (the first one stays).
    keep = ~bad
    seen: dict[tuple[str, int], int] = {}
    for i in np.flatnonzero(keep).tolist():
        resend = (id_list[i], int(seq[i]))
        if resend in seen:
            keep[i] = False
        else:
            seen[resend] = i
    result = ParseResult()
    if bad.any() and not _name_problems(
        event, directory, np.flatnonzero(bad), seen, result, row_reading
    ):
        return None

    zones = [d.timezone for d in known]
    at = np.where(kind == 0, start, ts)
    day = (at + utc_offsets(at, np.where(keep & (kind != 2), device_of, -1), zones)) // DAY_US
    store_ids = pc.take(pa.array([d.store_id for d in known] + [None], pa.string()),
                        pa.array(np.where(keep, device_of, len(known))))  # fmt: skip
    rows = _Rows(event.tenant_id, event.object_id)
    empty = rows.build()
    counts, beats, tracks = keep & (kind == 0), keep & (kind == 1), keep & (kind == 2)
    c, h = pa.array(counts), pa.array(beats)
    n_c, n_h = int(counts.sum()), int(beats.sum())
    tables: dict[str, pa.Table] = {}
    point_keep = tracks[owner]
    if point_keep.any():
        kept_owner = owner[point_keep]
        taken = pa.array(kept_owner)
        kept_ts = point_ts[point_keep]
        point_day = (kept_ts + utc_offsets(kept_ts, device_of[kept_owner], zones)) // DAY_US
        tables[TRACKS] = _table(TRACKS, len(kept_owner), event, {
            "store_id": pc.take(store_ids, taken), "device_id": pc.take(device_ids, taken),
            "track_id": pc.take(track_ids, taken), "business_date": point_day, "ts": kept_ts,
            "x": xy[0][point_keep], "y": xy[1][point_keep],
            "zone": pc.filter(zones_col, pa.array(point_keep)), "seq": seq[kept_owner],
        })  # fmt: skip
    else:
        tables[TRACKS] = empty[TRACKS]
    tables[COUNTS] = _table(COUNTS, n_c, event, {
        "store_id": pc.filter(store_ids, c), "device_id": pc.filter(device_ids, c),
        "line": pc.filter(lines, c), "business_date": day[counts],
        "interval_start": start[counts], "interval_end": end[counts],
        "count_in": count_in[counts], "count_out": count_out[counts], "seq": seq[counts],
    })  # fmt: skip
    battery = pa.array(battery_raw, pa.float64())
    tables[HEARTBEATS] = _table(HEARTBEATS, n_h, event, {
        "store_id": pc.filter(store_ids, h), "device_id": pc.filter(device_ids, h),
        "business_date": day[beats], "ts": ts[beats], "status": pc.filter(status, h),
        "firmware": pc.filter(firmware, h), "battery": pc.filter(battery, h),
        "seq": seq[beats], "received_at": received_us[beats],
    })  # fmt: skip
    result.tables = {name: tables[name] for name in empty}
    return result


def _table(name: str, n: int, event: ObjectRegistered, cols: dict[str, Any]) -> pa.Table:
    schema = _SCHEMAS[name]
    cols["tenant_id"] = pa.repeat(pa.scalar(event.tenant_id), n) if n else pa.array([], pa.string())
    cols["source_object_id"] = (
        pa.repeat(pa.scalar(event.object_id), n) if n else pa.array([], pa.string())
    )
    arrays = []
    for fld in schema:
        values = cols[fld.name]
        if isinstance(values, pa.Array):
            arrays.append(values.cast(fld.type))
        elif pa.types.is_timestamp(fld.type):
            arrays.append(pa.array(values, pa.int64()).cast(fld.type))
        elif pa.types.is_date32(fld.type):
            arrays.append(pa.array(values, pa.int32()).cast(fld.type))
        else:
            arrays.append(pa.array(values, fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _name_problems(
    event: ObjectRegistered,
    directory: Directory,
    flagged: np.ndarray,
    loaded: dict[tuple[str, int], int],
    result: ParseResult,
    row_reading: Callable[[], _Reading],
) -> bool:
    """Reject each flagged event with the event-by-event path's reason; False when that path
    would load (or drop as a re-send) one of them after all."""
    raws, topics, received = row_reading()  # that path's reading of the records
    ctx = _Context(event, directory)
    scratch = _Rows(event.tenant_id, event.object_id)
    for i in flagged.tolist():
        seen = {key for key, at in loaded.items() if at < i}
        outcome = ctx.load(
            i, raws[i], scratch, seen,
            topic_device=None if topics is None else topics[i],
            received_at=None if received is None else received[i],
        )  # fmt: skip
        if isinstance(outcome, bool):
            return False
        result.rejects.append(outcome)
    return True
