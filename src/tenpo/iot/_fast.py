"""Column-wise fast path of the IoT Pre-ETL for JSON bodies of counts and heartbeats.

The body is decoded once by orjson and each field checked as a column (:mod:`tenpo.core.columns`:
exact JSON types, the models' bounds, canonical instants by one Arrow cast); devices are looked
up once per id, lines once per (device, line), local dates once per zone and UTC hour. Only the
events a column check flags go through the event-by-event path (``_Context.load``), which names
their problem; when that path would load one of them after all, or the body holds anything else
(track events, a body orjson refuses), the whole object goes to it. Both paths give identical
rows and rejects (tests compare them).
"""

from __future__ import annotations

import json
import math
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
    COUNTS,
    DEFAULT_LINES,
    FUTURE_TOLERANCE,
    HEARTBEATS,
    TRACKS,
    _Context,
    _Rows,
    split_events,
)
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos._arrow import micros

__all__ = ["parse_fast"]

MIN_EVENTS = 1000
"""Bodies with fewer events go to the event path directly (the columns' fixed cost is higher)."""
_KINDS = pa.array(["count", "heartbeat"])
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
    n = len(raws)
    if n < MIN_EVENTS or any(type(r) is not dict for r in raws):
        return None
    kind_text = strings([r.get("type") for r in raws])
    if valid(pc.equal(kind_text, "track")).any():
        return None
    kinds = pc.index_in(kind_text, value_set=_KINDS)
    bad = ~valid(pc.is_valid(kinds))
    kind = np.asarray(pc.fill_null(kinds, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    is_count, is_beat = (kind == 0) & ~bad, (kind == 1) & ~bad
    _, ok_v = ints([r.get("v") for r in raws], SCHEMA_VERSION, SCHEMA_VERSION)
    device_ids = strings([r.get("device_id") for r in raws])
    seq, ok_seq = ints([r.get("seq") for r in raws], *_bound(_SEQ))
    bad |= ~ok_v | ~ok_seq | ~_length_ok(device_ids, _DEVICE_LEN)

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
    latest = micros(event.registered_at + FUTURE_TOLERANCE)

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
    if bad.any() and not _name_problems(event, data, directory, np.flatnonzero(bad), seen, result):
        return None

    zones = [d.timezone for d in known]
    at = np.where(kind == 0, start, ts)
    day = (at + utc_offsets(at, np.where(keep, device_of, -1), zones)) // DAY_US
    store_ids = pc.take(pa.array([d.store_id for d in known] + [None], pa.string()),
                        pa.array(np.where(keep, device_of, len(known))))  # fmt: skip
    rows = _Rows(event.tenant_id, event.object_id)
    empty = rows.build()
    counts, beats = keep & (kind == 0), keep & (kind == 1)
    c, h = pa.array(counts), pa.array(beats)
    tables = {TRACKS: empty[TRACKS]}
    n_c, n_h = int(counts.sum()), int(beats.sum())
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
        "seq": seq[beats], "received_at": np.full(n_h, micros(event.registered_at)),
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
    data: bytes,
    directory: Directory,
    flagged: np.ndarray,
    loaded: dict[tuple[str, int], int],
    result: ParseResult,
) -> bool:
    """Reject each flagged event with the event-by-event path's reason; False when that path
    would load (or drop as a re-send) one of them after all."""
    raws = split_events(json.loads(data.decode("utf-8")))  # that path's reading of the records
    ctx = _Context(event, directory)
    scratch = _Rows(event.tenant_id, event.object_id)
    for i in flagged.tolist():
        seen = {key for key, at in loaded.items() if at < i}
        outcome = ctx.load(i, raws[i], scratch, seen)
        if isinstance(outcome, bool):
            return False
        result.rejects.append(outcome)
    return True
