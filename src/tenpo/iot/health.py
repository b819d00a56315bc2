"""Device health per device and business date: a pure function of the raw IoT tables.

For every device and date with data (and every registered device without any, when the
device list is given) :func:`device_health` computes, in the ``mart_device_health`` schema:

* ``last_seen`` — the latest heartbeat ``ts`` or count ``interval_end``;
* ``interval_s``, ``intervals_expected/received/missing`` — per count line, the device's
  interval length (median of its intervals) and the intervals between its first start and
  last end of the day; a gap in between is missing (a device silent all morning is not
  detected here, but its heartbeats' gap is);
* ``heartbeats``, ``battery_min``, ``last_status``;
* ``clock_skew_s`` — ``max(ts − received_at)`` over the heartbeats: delivery only adds delay,
  so the least-delayed heartbeat bounds the device clock's offset from tenpo's;
* ``flags`` — data-quality flags (sorted, comma-separated):
  ``no_data``, ``missing_intervals``, ``no_heartbeat``, ``heartbeat_gap``, ``clock_ahead``
  (skew above ``clock_tolerance_s``), ``delivered_late`` (every heartbeat of the day arrived
  more than ``late_after_s`` after its ``ts``: buffered, or the clock is far behind),
  ``low_battery``, ``status_not_ok``.

KPI rows use these flags to say whether a store-date's counter data is complete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tenpo.warehouse.schemas import MART_DEVICE_HEALTH

__all__ = ["FLAGS", "HealthRules", "RegisteredDevice", "device_health"]

FLAGS = (
    "no_data",
    "missing_intervals",
    "no_heartbeat",
    "heartbeat_gap",
    "clock_ahead",
    "delivered_late",
    "low_battery",
    "status_not_ok",
)
"""Every data-quality flag :func:`device_health` may set."""

_GROUP = ["tenant_id", "store_id", "device_id", "business_date"]


@dataclass(frozen=True)
class HealthRules:
    """Thresholds of the flags."""

    clock_tolerance_s: float = 120.0
    late_after_s: float = 3600.0
    heartbeat_every_s: float = 900.0  # a gap over twice this is a heartbeat_gap
    battery_low: float = 0.2
    ok_statuses: tuple[str, ...] = ("ok",)


@dataclass(frozen=True)
class RegisteredDevice:
    """A device expected to report (``no_data`` when it sent nothing on a date)."""

    tenant_id: str
    store_id: str
    device_id: str
    since: date | None = None  # registered on this date: no ``no_data`` row before it


@dataclass
class _Day:
    last_seen: datetime | None = None
    interval_s: int | None = None
    expected: int = 0
    received: int = 0
    heartbeats: int = 0
    skew: float | None = None
    battery: float | None = None
    status: str | None = None
    max_gap_s: float = 0.0

    def seen(self, ts: datetime | None) -> None:
        if ts is not None and (self.last_seen is None or ts > self.last_seen):
            self.last_seen = ts


def device_health(
    counts: pa.Table,
    heartbeats: pa.Table,
    dates: Iterable[date],
    *,
    devices: Iterable[RegisteredDevice] = (),
    rules: HealthRules | None = None,
) -> pa.Table:
    """One ``mart_device_health`` row per (device, date) of ``dates`` (see the module doc).

    ``counts`` and ``heartbeats`` are ``raw_iot_counts`` / ``raw_device_heartbeats`` rows
    (already deduplicated, as the warehouse reads them); rows of other dates are ignored.
    """
    rules = rules or HealthRules()
    wanted = sorted(set(dates))
    days: dict[tuple[str, str, str, date], _Day] = defaultdict(_Day)
    _add_counts(days, _only(counts, wanted))
    _add_heartbeats(days, _only(heartbeats, wanted))
    for dev in devices:
        for day in wanted:
            if dev.since is None or day >= dev.since:
                days.setdefault((dev.tenant_id, dev.store_id, dev.device_id, day), _Day())
    rows: dict[str, list[Any]] = {name: [] for name in MART_DEVICE_HEALTH.names}
    for (tenant, store, device, day), d in sorted(days.items()):
        missing = max(0, d.expected - d.received)
        values = {
            "tenant_id": tenant, "store_id": store, "device_id": device, "business_date": day,
            "last_seen": d.last_seen, "interval_s": d.interval_s,
            "intervals_expected": d.expected, "intervals_received": d.received,
            "intervals_missing": missing, "heartbeats": d.heartbeats,
            "clock_skew_s": d.skew, "battery_min": d.battery, "last_status": d.status,
            "flags": ",".join(_flags(d, missing, rules)),
        }  # fmt: skip
        for name, value in values.items():
            rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=MART_DEVICE_HEALTH)


def _only(table: pa.Table, wanted: list[date]) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.filter(pc.is_in(table["business_date"], pa.array(wanted, pa.date32())))


def _add_counts(days: dict[tuple[str, str, str, date], _Day], counts: pa.Table) -> None:
    if counts.num_rows == 0:
        return
    start = counts["interval_start"].cast(pa.int64())
    end = counts["interval_end"].cast(pa.int64())
    t = pa.table(
        {
            **{k: counts[k] for k in (*_GROUP, "line")},
            "start_us": start,
            "end_us": end,
            "dur_s": pc.divide(pc.subtract(end, start), 1_000_000),
        }
    )
    grouped = t.group_by([*_GROUP, "line"]).aggregate(
        [
            ("start_us", "min"),
            ("end_us", "max"),
            ("start_us", "count_distinct"),
            ("dur_s", "approximate_median"),
        ]
    )
    for r in grouped.to_pylist():
        d = days[(r["tenant_id"], r["store_id"], r["device_id"], r["business_date"])]
        step = max(1, round(r["dur_s_approximate_median"]))
        span_s = (r["end_us_max"] - r["start_us_min"]) / 1_000_000
        d.expected += max(1, round(span_s / step))
        d.received += r["start_us_count_distinct"]
        d.interval_s = max(d.interval_s or 0, step)
        d.seen(_ts(r["end_us_max"]))


def _add_heartbeats(days: dict[tuple[str, str, str, date], _Day], beats: pa.Table) -> None:
    if beats.num_rows == 0:
        return
    beats = beats.sort_by([(k, "ascending") for k in (*_GROUP, "ts")])
    cols = {k: beats[k].to_pylist() for k in (*_GROUP, "ts", "status", "battery")}
    received = (
        beats["received_at"].to_pylist()
        if "received_at" in beats.column_names
        else [None] * beats.num_rows
    )
    previous: dict[tuple[str, str, str, date], datetime] = {}
    for i in range(beats.num_rows):
        key = (
            cols["tenant_id"][i], cols["store_id"][i], cols["device_id"][i],
            cols["business_date"][i],
        )  # fmt: skip
        d = days[key]
        ts = cols["ts"][i]
        d.heartbeats += 1
        d.seen(ts)
        d.status = cols["status"][i]  # sorted by ts: the last one wins
        battery = cols["battery"][i]
        if battery is not None:
            d.battery = battery if d.battery is None else min(d.battery, battery)
        if received[i] is not None:
            skew = (ts - received[i]).total_seconds()
            d.skew = skew if d.skew is None else max(d.skew, skew)
        if key in previous:
            d.max_gap_s = max(d.max_gap_s, (ts - previous[key]).total_seconds())
        previous[key] = ts


def _flags(d: _Day, missing: int, rules: HealthRules) -> list[str]:
    flags: set[str] = set()
    if d.last_seen is None:
        flags.add("no_data")
    if missing:
        flags.add("missing_intervals")
    if d.heartbeats == 0:
        flags.add("no_heartbeat")
    elif d.max_gap_s > 2 * rules.heartbeat_every_s:
        flags.add("heartbeat_gap")
    if d.skew is not None:
        if d.skew > rules.clock_tolerance_s:
            flags.add("clock_ahead")
        elif d.skew < -rules.late_after_s:
            flags.add("delivered_late")
    if d.battery is not None and d.battery < rules.battery_low:
        flags.add("low_battery")
    if d.status is not None and d.status not in rules.ok_statuses:
        flags.add("status_not_ok")
    return sorted(flags)


def _ts(micros: int) -> datetime:
    value: datetime = pa.scalar(micros, pa.timestamp("us", tz="UTC")).as_py()
    return value
