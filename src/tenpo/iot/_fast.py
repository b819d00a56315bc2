"""Column-wise fast path of the IoT Pre-ETL: JSON bodies and MQTT frames objects of counts,
heartbeats and ToF tracks.

The body (or each MQTT message's payload) is decoded once by orjson and each field checked as
a column (:mod:`tenpo.core.columns`: exact JSON types, the models' bounds, canonical instants by
one Arrow cast); devices are looked up once per id, lines once per (device, line), local dates
once per zone and UTC hour. Only the events a column check flags go through the event-by-event
path (``Context.load``), which names their problem; when that path would load one of them
after all, or the object holds anything else (a body orjson refuses, a malformed MQTT frame or
payload), the whole object goes to it. Both paths give identical rows and rejects (tests
compare them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    BATTERY,
    COUNT_IN,
    COUNT_OUT,
    COUNTS,
    DEFAULT_LINES,
    DEVICE_LEN,
    FUTURE_TOLERANCE,
    HEARTBEATS,
    LINE_LEN,
    MQTT_BATCH,
    MQTT_FRAMES,
    SCHEMAS,
    SEQ,
    STATUS_LEN,
    TRACK_ID_LEN,
    TRACKS,
    Context,
    TableRows,
    read_frames,
    split_events,
)
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos._arrow import micros

__all__ = ["parse_fast", "parse_frames_fast", "parse_many_fast"]

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


@dataclass
class _Decoded:
    """One object's events as orjson read them, with what the event path needs to judge them."""

    event: ObjectRegistered
    raws: list[Any]
    received_us: list[int]  # per event: epoch µs its message (or the object) was received
    topics: list[str] | None  # per event: the device its MQTT topic names (None: no topic)
    row_reading: Callable[[], _Reading]


_Reading = tuple[list[Any], list[str] | None, list[datetime] | None]
"""The event path's reading of an object: its events (stdlib JSON), and per event the topic
device and the message's receive time (None for a plain JSON body)."""


def parse_fast(event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult | None:
    """The result of a plain JSON body, or None when the event-by-event path must run."""
    decoded = _decode_json(event, data)
    if decoded is None or len(decoded.raws) < MIN_EVENTS:
        return None
    return _columns([decoded], directory)[0]


def parse_frames_fast(
    event: ObjectRegistered, data: bytes, directory: Directory
) -> ParseResult | None:
    """The result of an :data:`~tenpo.iot.preetl.MQTT_FRAMES` object whose frames and payloads
    are all well formed, or None when the message-by-message path must run (which names a bad
    frame or payload). Each event is checked against its message's topic device and measured
    from its message's ``received_at``, as that path does."""
    decoded = _decode_frames(event, data)
    if decoded is None or len(decoded.raws) < MIN_EVENTS:
        return None
    return _columns([decoded], directory)[0]


def parse_many_fast(
    items: list[tuple[ObjectRegistered, bytes]], directory: Directory
) -> list[ParseResult | None]:
    """The results of several objects in one column pass (their per-object costs shared), in
    order; None for each object the event path must parse (see :func:`parse_fast`)."""
    decoded: list[_Decoded | None] = []
    for event, data in items:
        if event.content_type == MQTT_FRAMES:
            decoded.append(_decode_frames(event, data))
        elif event.content_type == MQTT_BATCH:
            decoded.append(None)
        else:
            decoded.append(_decode_json(event, data))
    ready = [d for d in decoded if d is not None]
    if sum(len(d.raws) for d in ready) < MIN_EVENTS:
        return [None] * len(items)
    results = iter(_columns(ready, directory))
    return [None if d is None else next(results) for d in decoded]


def _decode_json(event: ObjectRegistered, data: bytes) -> _Decoded | None:
    try:
        raws = split_events(orjson.loads(data))
    except (orjson.JSONDecodeError, BodyError):
        return None

    def row_reading() -> _Reading:
        return split_events(json.loads(data.decode("utf-8"))), None, None

    received = [micros(event.registered_at)] * len(raws)
    return _Decoded(event, raws, received, None, row_reading)


def _decode_frames(event: ObjectRegistered, data: bytes) -> _Decoded | None:
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

    def row_reading() -> _Reading:
        row_raws: list[Any] = []
        for _, payload in read_frames(data):
            row_raws.extend(split_events(json.loads(payload)))
        return row_raws, topics, received

    return _Decoded(event, raws, received_us, topics, row_reading)


def _columns(objects: list[_Decoded], directory: Directory) -> list[ParseResult | None]:
    """Rows and rejects of each object's decoded events (see the module docstring), in one
    pass over all of them; None for an object the event path must parse."""
    results: list[ParseResult | None] = [ParseResult() for _ in objects]
    sizes = np.array([len(o.raws) for o in objects], np.int64)
    for k, o in enumerate(objects):
        if any(type(r) is not dict for r in o.raws):
            results[k], sizes[k] = None, 0
    raws = [r for o, res in zip(objects, results, strict=True) if res is not None for r in o.raws]
    n = len(raws)
    obj = np.repeat(np.arange(len(objects), dtype=np.int64), sizes)
    offsets = np.cumsum(sizes) - sizes  # each object's first event in the pass
    live = [o for o, res in zip(objects, results, strict=True) if res is not None]
    received_us = np.array([us for o in live for us in o.received_us], np.int64)
    kind_text = strings([r.get("type") for r in raws])
    kinds = pc.index_in(kind_text, value_set=_KINDS)
    bad = ~valid(pc.is_valid(kinds))
    kind = np.asarray(pc.fill_null(kinds, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    is_count, is_beat, is_track = (kind == 0) & ~bad, (kind == 1) & ~bad, (kind == 2) & ~bad
    _, ok_v = ints([r.get("v") for r in raws], SCHEMA_VERSION, SCHEMA_VERSION)
    device_ids = strings([r.get("device_id") for r in raws])
    seq, ok_seq = ints([r.get("seq") for r in raws], *_bound(SEQ))
    bad |= ~ok_v | ~ok_seq | ~_length_ok(device_ids, DEVICE_LEN)
    if any(o.topics is not None for o in live):  # every event of a message: its topic's device
        no_topic: list[str | None] = [None]
        topics = [t for o in live for t in (o.topics or no_topic * len(o.raws))]
        same = valid(pc.equal(device_ids, pa.array(topics, pa.string())))
        has_topic = np.repeat([o.topics is not None for o in live], [len(o.raws) for o in live])
        bad |= has_topic & ~same

    # Devices: one look-up per (tenant, device id).
    tenants = [o.event.tenant_id for o in objects]
    id_list = device_ids.to_pylist()
    obj_list = obj.tolist()
    known: list[DeviceRef] = []
    index: dict[tuple[str, str], int] = {}
    for pair in dict.fromkeys(zip((tenants[k] for k in obj_list), id_list, strict=True)):
        device = directory.device(*pair) if isinstance(pair[1], str) else None
        if device is not None:
            index[pair] = len(known)
            known.append(device)
    device_of = np.array([index.get((tenants[k], d), -1) if d is not None else -1
                          for k, d in zip(obj_list, id_list, strict=True)], np.int64)  # fmt: skip
    bad |= device_of < 0
    tolerance = FUTURE_TOLERANCE // timedelta(microseconds=1)
    latest = received_us + tolerance

    # Counts: line, interval, counts. Heartbeats: ts, status, firmware, battery.
    lines = strings([r.get("line") if c else None for r, c in zip(raws, is_count, strict=True)])
    start, ok_start = instants([r.get("interval_start") for r in raws])
    end, ok_end = instants([r.get("interval_end") for r in raws])
    count_in, ok_in = ints([r.get("in") for r in raws], *_bound(COUNT_IN))
    count_out, ok_out = ints([r.get("out") for r in raws], *_bound(COUNT_OUT))
    line_list = lines.to_pylist()
    line_ok = np.zeros(n, bool)
    allowed: dict[tuple[int, str], bool] = {}
    for i in np.flatnonzero(is_count & (device_of >= 0)).tolist():
        key = (int(device_of[i]), line_list[i])
        if key not in allowed:
            device = known[key[0]]
            allowed[key] = key[1] in ((device.lines + device.zones) or DEFAULT_LINES)
        line_ok[i] = allowed[key]
    count_ok = _length_ok(lines, LINE_LEN) & line_ok & ok_start & ok_end & ok_in & ok_out
    count_ok &= (start < end) & (end <= latest)
    bad |= is_count & ~count_ok

    ts, ok_ts = instants([r.get("ts") for r in raws])
    status = strings([r.get("status") if b else None for r, b in zip(raws, is_beat, strict=True)])
    firmware_raw = [r.get("firmware") if b else None for r, b in zip(raws, is_beat, strict=True)]
    firmware = strings(firmware_raw)
    battery_raw = [r.get("battery") if b else None for r, b in zip(raws, is_beat, strict=True)]
    low, high = BATTERY
    battery_ok = np.array([b is None or (type(b) is float and low <= b <= high)
                           for b in battery_raw], dtype=bool)  # fmt: skip
    firmware_ok = np.array([f is None for f in firmware_raw], bool)
    firmware_ok |= valid(pc.string_is_ascii(firmware))
    beat_ok = ok_ts & (ts <= latest) & battery_ok & firmware_ok
    beat_ok &= valid(pc.string_is_ascii(status)) & _length_ok(status, STATUS_LEN)
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
    track_ok = valid(pc.string_is_ascii(track_ids)) & _length_ok(track_ids, TRACK_ID_LEN)
    track_ok &= (n_points > 0) & (np.bincount(owner, weights=~xy_ok, minlength=n) == 0)
    bad |= is_track & ~track_ok

    # Re-sends: a repeated (device_id, seq) of a valid event of one object is dropped (the
    # first one stays); ``seen`` holds each object's first ones, at their index in the object.
    keep = ~bad
    seen: list[dict[tuple[str, int], int]] = [{} for _ in objects]
    seq_list = seq.tolist()
    for i in np.flatnonzero(keep).tolist():
        k = obj_list[i]
        resend = (id_list[i], seq_list[i])
        if resend in seen[k]:
            keep[i] = False
        else:
            seen[k][resend] = i - int(offsets[k])
    flagged = np.flatnonzero(bad)
    for k in np.unique(obj[flagged]).tolist():
        result = results[k]
        assert result is not None
        local = flagged[obj[flagged] == k] - offsets[k]
        if not _name_problems(objects[k], directory, local, seen[k], result):
            results[k] = None
    if any(r is None for r in results):  # their events are left out of the tables
        keep &= np.array([r is not None for r in results], bool)[obj]

    zones = [d.timezone for d in known]
    at = np.where(kind == 0, start, ts)
    day = (at + utc_offsets(at, np.where(keep & (kind != 2), device_of, -1), zones)) // DAY_US
    store_ids = pc.take(pa.array([d.store_id for d in known] + [None], pa.string()),
                        pa.array(np.where(keep, device_of, len(known))))  # fmt: skip
    empty = TableRows("", "").build()
    counts, beats, tracks = keep & (kind == 0), keep & (kind == 1), keep & (kind == 2)
    c, h = pa.array(counts), pa.array(beats)
    constants = (pa.array(tenants, pa.string()),
                 pa.array([o.event.object_id for o in objects], pa.string()))  # fmt: skip
    tables: dict[str, tuple[pa.Table, np.ndarray]] = {}
    point_keep = tracks[owner]
    kept_owner = owner[point_keep]
    taken = pa.array(kept_owner, pa.int64())
    kept_ts = point_ts[point_keep]
    point_day = (kept_ts + utc_offsets(kept_ts, device_of[kept_owner], zones)) // DAY_US
    tables[TRACKS] = _table(TRACKS, obj[kept_owner], constants, {
        "store_id": pc.take(store_ids, taken), "device_id": pc.take(device_ids, taken),
        "track_id": pc.take(track_ids, taken), "business_date": point_day, "ts": kept_ts,
        "x": xy[0][point_keep], "y": xy[1][point_keep],
        "zone": pc.filter(zones_col, pa.array(point_keep)), "seq": seq[kept_owner],
    })  # fmt: skip
    tables[COUNTS] = _table(COUNTS, obj[counts], constants, {
        "store_id": pc.filter(store_ids, c), "device_id": pc.filter(device_ids, c),
        "line": pc.filter(lines, c), "business_date": day[counts],
        "interval_start": start[counts], "interval_end": end[counts],
        "count_in": count_in[counts], "count_out": count_out[counts], "seq": seq[counts],
    })  # fmt: skip
    battery = pa.array(battery_raw, pa.float64())
    tables[HEARTBEATS] = _table(HEARTBEATS, obj[beats], constants, {
        "store_id": pc.filter(store_ids, h), "device_id": pc.filter(device_ids, h),
        "business_date": day[beats], "ts": ts[beats], "status": pc.filter(status, h),
        "firmware": pc.filter(firmware, h), "battery": pc.filter(battery, h),
        "seq": seq[beats], "received_at": received_us[beats],
    })  # fmt: skip
    # Each object's rows are one slice of each table (rows keep the events' order).
    for name in empty:
        table, of = tables[name]
        counts_of = np.bincount(of, minlength=len(objects))
        starts = np.cumsum(counts_of) - counts_of
        for k, result in enumerate(results):
            if result is not None:
                result.tables[name] = table.slice(int(starts[k]), int(counts_of[k]))
    return results


def _table(
    name: str, of: np.ndarray, constants: tuple[pa.Array, pa.Array], cols: dict[str, Any]
) -> tuple[pa.Table, np.ndarray]:
    """The rows of table ``name`` (with each row's object index ``of``)."""
    schema = SCHEMAS[name]
    which = pa.array(of, pa.int64())
    cols["tenant_id"] = pc.take(constants[0], which)
    cols["source_object_id"] = pc.take(constants[1], which)
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
    return pa.Table.from_arrays(arrays, schema=schema), of


def _name_problems(
    decoded: _Decoded,
    directory: Directory,
    flagged: np.ndarray,
    loaded: dict[tuple[str, int], int],
    result: ParseResult,
) -> bool:
    """Reject each flagged event with the event-by-event path's reason; False when that path
    would load (or drop as a re-send) one of them after all."""
    raws, topics, received = decoded.row_reading()  # that path's reading of the records
    ctx = Context(decoded.event, directory)
    scratch = TableRows(decoded.event.tenant_id, decoded.event.object_id)
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
