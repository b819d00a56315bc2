"""Column-wise checks of decoded JSON records, shared by the Pre-ETLs' fast paths.

A fast path gathers one field of every record into a list and asks here for an Arrow/numpy
column with a validity mask: exact JSON types only (Arrow's type inference refuses mixtures;
booleans are never integers), canonical RFC 3339 instants read by one Arrow cast, UTC offsets
in a zone looked up once per zone and UTC hour. Whatever a column refuses is left to the
record-by-record path, which names the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ARROW_ERRORS",
    "CANONICAL_TS",
    "inferred",
    "instants",
    "ints",
    "strings",
    "utc_offsets",
    "valid",
]

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)
CANONICAL_TS = (
    r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""Instants Arrow's cast and ``datetime.fromisoformat`` read alike (Arrow refuses 02-30)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
HOUR_US = 3600 * 10**6
DAY_US = 24 * HOUR_US


def strings(values: list[Any]) -> pa.Array:
    """A string column; null where the value is not a JSON string."""
    try:
        return pa.array(values, pa.string())
    except ARROW_ERRORS:
        return pa.array([v if type(v) is str else None for v in values], pa.string())


def valid(mask: pa.Array) -> Bools:
    """A boolean Arrow column as numpy, null taken as False."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def inferred(values: list[Any]) -> pa.Array | None:
    """The column Arrow infers, or None for a mixture of JSON types."""
    try:
        return pa.array(values)
    except ARROW_ERRORS:
        return None


def ints(values: list[Any], low: int, high: int) -> tuple[Ints, Bools]:
    """JSON integers (not booleans) within [low, high]; (values, valid)."""
    arr = inferred(values)
    if arr is None or not pa.types.is_integer(arr.type):
        if arr is not None and pa.types.is_null(arr.type):
            return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
        arr = pa.array([v if type(v) is int and low <= v <= high else None for v in values],
                       pa.int64())  # fmt: skip
    out = np.asarray(pc.fill_null(arr, low - 1).to_numpy(zero_copy_only=False), dtype=np.int64)
    ok = (out >= low) & (out <= high)
    return np.where(ok, out, 0), ok


def instants(
    values: list[Any], fallback: Callable[[Any], datetime | None] | None = None
) -> tuple[Ints, Bools]:
    """Epoch µs of canonical aware instants; (µs, valid).

    With ``fallback`` (a per-value reader returning an aware datetime or None), a column that
    is not all canonical is read value by value instead; without it such values are invalid.
    """
    text = strings(values)
    canonical = valid(pc.match_substring_regex(text, CANONICAL_TS))
    if canonical.all() or fallback is None:
        try:
            ts = pc.cast(pc.if_else(pa.array(canonical), text, "1970-01-01T00:00:00Z"),
                         pa.timestamp("us", "UTC"))  # fmt: skip
        except pa.ArrowInvalid:  # 2026-02-30 and the like: read one by one
            ts = None
        if ts is not None:
            return np.asarray(ts.cast(pa.int64()).to_numpy(), dtype=np.int64), canonical
    if fallback is None:
        times = [_fromisoformat(v) if c else None for v, c in zip(values, canonical, strict=True)]
    else:
        times = [fallback(v) for v in values]
    ok = np.array([t is not None for t in times], dtype=bool)
    return np.array([(t - _EPOCH) // _ONE_US if t else 0 for t in times], dtype=np.int64), ok


def _fromisoformat(value: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return ts if ts.utcoffset() is not None else None


def utc_offsets(ts_us: Ints, zone_of: Ints, zones: list[str]) -> Ints:
    """UTC offset (µs) of each instant in zone ``zones[zone_of[i]]`` (rows with -1: 0).

    One look-up per zone and UTC hour; an hour whose two ends differ (a transition inside it)
    is resolved row by row, so the result is always Python's ``astimezone``.
    """
    out = np.zeros(len(ts_us), np.int64)
    by_zone: dict[str, list[int]] = {}
    for i, name in enumerate(zones):
        by_zone.setdefault(name, []).append(i)
    for name, members in by_zone.items():
        rows = np.flatnonzero(np.isin(zone_of, members))
        if not len(rows):
            continue
        zone = _zone(name)
        hours, inverse = np.unique(ts_us[rows] // HOUR_US, return_inverse=True)
        first = np.array([_offset(zone, h * HOUR_US) for h in hours.tolist()], np.int64)
        last = np.array([_offset(zone, h * HOUR_US + HOUR_US - 1) for h in hours.tolist()],
                        np.int64)  # fmt: skip
        offsets = first[inverse]
        for k in np.flatnonzero((first != last)[inverse]).tolist():
            offsets[k] = _offset(zone, int(ts_us[rows[k]]))
        out[rows] = offsets
    return out


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _offset(zone: ZoneInfo, us: int) -> int:
    offset = (_EPOCH + timedelta(microseconds=us)).astimezone(zone).utcoffset()
    return 0 if offset is None else offset // _ONE_US
