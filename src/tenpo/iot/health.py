"""Device health per device and business date: a pure function of the raw IoT tables.

For every device and date with data, and every registered device's silent dates, the function
:func:`device_health` computes, in the ``mart_device_health`` schema:

* ``last_seen`` — the latest heartbeat ``ts`` or count ``interval_end``;
* ``interval_s``, ``intervals_expected/received/missing``, ``incomplete_hours`` — against the
  device's **expected schedule** (below): the slots it should have reported per count line
  (its registered lines and zones, else the lines it sent that day), those it did report,
  those missing, and the local hours holding a missing slot of any line;
* ``heartbeats``, ``battery_min``, ``last_status``;
* ``clock_skew_s`` — ``max(ts − received_at)`` over the heartbeats: delivery only adds delay,
  so the least-delayed heartbeat bounds the device clock's offset from tenpo's;
* ``flags`` — data-quality flags (sorted, comma-separated):
  ``no_data``, ``missing_intervals``, ``no_heartbeat``, ``heartbeat_gap``, ``clock_ahead``
  (skew above ``clock_tolerance_s``), ``delivered_late`` (every heartbeat of the day arrived
  more than ``late_after_s`` after its ``ts``: buffered, or the clock is far behind),
  ``low_battery``, ``status_not_ok``.

The expected schedule of a registered device on a date is its store's opening hours that
weekday in the store's zone (around the clock, local midnight to local midnight, when the
store has none; nothing on a closed weekday), cut into slots of the device's configured
``interval_s`` on the local clock grid (e.g. :00, :15, :30, :45), or of the median length of
its reported intervals when none is configured. A slot counts as received when the device
reported an interval of that line starting inside it. So a counter silent from noon, or until
06:00, has missing slots, and on daylight-saving dates the schedule has the local day's real length
(23 or 25 hours around the clock). Slots that have not ended by ``now`` are not expected yet.

Silent dates: a registered device gets a ``no_data`` row for each wanted date without any
row, from its configured start date, else the first date it ever reported (``first_seen``:
the caller reads it from all history, so history loaded later is judged too), else its
registration date — never before. Closed weekdays get no row unless the device sent data.

A device that reports but is not registered has no known schedule: its slots run from its
first to its last report of the day, so only gaps between reports are found.

``incomplete_hours`` lists local hours as ``HH:00±hh:mm`` (the offset tells the repeated
hour of a fall-back night apart), comma-separated in time order. The API uses it to say
which hourly KPI rows are incomplete; KPI rows carry the flags of their date.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tenpo.core.errors import BadInput
from tenpo.warehouse.schemas import MART_DEVICE_HEALTH

__all__ = [
    "FLAGS",
    "HealthRules",
    "RegisteredDevice",
    "device_health",
    "expected_slots",
    "hour_key",
]

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
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_US = 1_000_000


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
    """A device expected to report, with what its schedule needs (see the module doc).

    ``opening_hours`` is the store's weekday → ``[open, close]`` (``"HH:MM"``, close may pass
    midnight as ``"25:00"``; a missing or null weekday is closed); None means around the clock.
    ``interval_s`` is the configured count interval; ``since`` the configured start date;
    ``registered`` the registration date (the start only for a device that never reported).
    """

    tenant_id: str
    store_id: str
    device_id: str
    since: date | None = None
    timezone: str = "Asia/Tokyo"
    opening_hours: Mapping[str, Any] | None = None
    interval_s: int | None = None
    registered: date | None = None
    lines: tuple[str, ...] = ()  # count lines (and ToF zones) it reports; () = those it sent

    def __post_init__(self) -> None:
        if self.interval_s is not None and self.interval_s <= 0:
            raise BadInput(f"device {self.device_id!r}: interval_s must be > 0")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadInput(
                f"device {self.device_id!r}: unknown timezone {self.timezone!r}"
            ) from exc


@dataclass
class _Day:
    last_seen: datetime | None = None
    interval_s: int | None = None
    starts_us: dict[str, list[int]] = field(default_factory=dict)  # per line: interval starts
    median_s: float | None = None
    span_us: tuple[int, int] | None = None  # first start, last end of the day's counts
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
    first_seen: Mapping[tuple[str, str], date] | None = None,
    now: datetime | None = None,
    rules: HealthRules | None = None,
) -> pa.Table:
    """One ``mart_device_health`` row per (device, date) of ``dates`` (see the module doc).

    ``counts`` and ``heartbeats`` are ``raw_iot_counts`` / ``raw_device_heartbeats`` rows
    (already deduplicated, as the warehouse reads them); rows of other dates are ignored.
    ``first_seen`` maps (tenant_id, device_id) to the first business date the device ever
    reported; ``now`` (UTC) stops the schedule of the current date at the present.
    """
    rules = rules or HealthRules()
    wanted = sorted(set(dates))
    registered = {(d.tenant_id, d.device_id): d for d in devices}
    days: dict[tuple[str, str, str, date], _Day] = defaultdict(_Day)
    _add_counts(days, _only(counts, wanted))
    _add_heartbeats(days, _only(heartbeats, wanted))
    first = dict(first_seen or {})
    for tenant, _, device, day in days:
        first[(tenant, device)] = min(first.get((tenant, device), day), day)
    for reg in registered.values():
        start = reg.since or first.get((reg.tenant_id, reg.device_id)) or reg.registered
        if start is None:
            continue
        for day in wanted:
            slot = (reg.tenant_id, reg.store_id, reg.device_id, day)
            if day >= start and slot not in days and _hours_on(reg, day) != "closed":
                days[slot] = _Day()
    rows: dict[str, list[Any]] = {name: [] for name in MART_DEVICE_HEALTH.names}
    for (tenant, store, device, day), d in sorted(days.items()):
        dev = registered.get((tenant, device))
        step = (dev.interval_s if dev else None) or _median_step(d)
        expected, received, incomplete = _coverage(dev, day, d, step, now)
        missing = expected - received if expected is not None else 0
        values = {
            "tenant_id": tenant, "store_id": store, "device_id": device, "business_date": day,
            "last_seen": d.last_seen, "interval_s": step,
            "intervals_expected": expected, "intervals_received": received,
            "intervals_missing": missing, "incomplete_hours": ",".join(incomplete),
            "heartbeats": d.heartbeats, "clock_skew_s": d.skew, "battery_min": d.battery,
            "last_status": d.status, "flags": ",".join(_flags(d, missing, rules)),
        }  # fmt: skip
        for name, value in values.items():
            rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=MART_DEVICE_HEALTH)


def hour_key(instant: datetime, tz: ZoneInfo) -> str:
    """The local hour of ``instant`` as ``HH:00±hh:mm`` (the offset in force then)."""
    local = instant.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{local.hour:02d}:00{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def expected_slots(device: RegisteredDevice, day: date, step_s: int) -> tuple[int, int] | None:
    """First slot start (epoch µs) and slot count of ``device``'s schedule on ``day``.

    None when the store is closed that weekday. Slots lie on the local clock grid of
    ``step_s`` and cover the opening hours (or local midnight to midnight).
    """
    window = _window(device, day)
    if window is None:
        return None
    open_at, close_at = window
    tz = ZoneInfo(device.timezone)
    offset = int((open_at.astimezone(tz).utcoffset() or timedelta(0)).total_seconds())
    open_s, close_s = int(open_at.timestamp()), int(close_at.timestamp())
    first = open_s - (open_s + offset) % step_s  # on the local grid, at or before opening
    n = -(-(close_s - first) // step_s)
    return first * _US, max(0, n)


def _hours_on(device: RegisteredDevice, day: date) -> tuple[int, int] | str | None:
    """(open, close) minutes of the local day, "closed", or None (around the clock)."""
    hours = device.opening_hours
    if hours is None:
        return None
    span = hours.get(_WEEKDAYS[day.weekday()])
    if not span:
        return "closed"
    minutes = []
    for value in span:
        hh, mm = str(value).split(":")
        minutes.append(int(hh) * 60 + int(mm))
    return minutes[0], minutes[1]


def _local(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``minute`` after midnight of ``day`` (may pass 24:00)."""
    d = day + timedelta(days=minute // 1440)
    m = minute % 1440
    return datetime.combine(d, time(m // 60, m % 60), tzinfo=tz).astimezone(UTC)


def _window(device: RegisteredDevice, day: date) -> tuple[datetime, datetime] | None:
    tz = ZoneInfo(device.timezone)
    hours = _hours_on(device, day)
    if isinstance(hours, str):
        return None  # closed
    open_m, close_m = (0, 1440) if hours is None else hours
    return _local(day, open_m, tz), _local(day, close_m, tz)


def _coverage(
    device: RegisteredDevice | None, day: date, d: _Day, step: int | None, now: datetime | None
) -> tuple[int | None, int, list[str]]:
    """(expected, received, incomplete local hours) of one device-day."""
    if step is None:
        return None, 0, []  # nothing reported and no configured interval: unknown
    tz = ZoneInfo(device.timezone if device else "UTC")
    if device is None:
        if d.span_us is None:
            return None, 0, []
        first_us, end_us = d.span_us
        n = max(1, round((end_us - first_us) / (step * _US)))
    else:
        slots = expected_slots(device, day, step)
        if slots is None:
            return 0, 0, []
        first_us, n = slots
    if now is not None:
        done = (int(now.timestamp() * _US) - first_us) // (step * _US)
        n = int(max(0, min(n, done)))
    lines = (device.lines if device else ()) or tuple(sorted(d.starts_us)) or ("",)
    got = np.zeros((len(lines), n), dtype=bool)
    for i, line in enumerate(lines):
        index = (np.asarray(d.starts_us.get(line, []), dtype=np.int64) - first_us) // (step * _US)
        got[i, index[(index >= 0) & (index < n)]] = True
    expected, received = n * len(lines), int(got.sum())
    if device is None:
        return expected, received, []  # no zone known: no local hours to name
    hours: list[str] = []
    for k in np.flatnonzero(~got.all(axis=0)).tolist():
        slot_start = first_us + k * step * _US
        t = slot_start
        while t < slot_start + step * _US:  # every local hour the missing slot touches
            key = hour_key(datetime.fromtimestamp(t / _US, UTC), tz)
            if not hours or hours[-1] != key:
                hours.append(key)
            t += min(step, 3600) * _US
    return expected, received, hours


def _median_step(d: _Day) -> int | None:
    return None if d.median_s is None else max(1, round(d.median_s))


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
            **{k: counts[k] for k in _GROUP},
            "start_us": start,
            "end_us": end,
            "dur_s": pc.divide(pc.subtract(end, start), _US),
        }
    )
    per_day = t.group_by(_GROUP).aggregate(
        [("start_us", "min"), ("end_us", "max"), ("dur_s", "approximate_median")]
    )
    for r in per_day.to_pylist():
        d = days[(r["tenant_id"], r["store_id"], r["device_id"], r["business_date"])]
        d.median_s = r["dur_s_approximate_median"]
        d.span_us = (r["start_us_min"], r["end_us_max"])
        d.seen(_ts(r["end_us_max"]))
    t = t.append_column("line", counts["line"])
    for r in t.group_by([*_GROUP, "line"]).aggregate([("start_us", "distinct")]).to_pylist():
        d = days[(r["tenant_id"], r["store_id"], r["device_id"], r["business_date"])]
        d.starts_us[r["line"]] = r["start_us_distinct"]


def _add_heartbeats(days: dict[tuple[str, str, str, date], _Day], beats: pa.Table) -> None:
    """Per device-day: heartbeat count, last seen, last status (latest ``ts``), lowest battery,
    largest clock skew and largest gap between consecutive heartbeats, in column passes (one
    Python step per device-day, not per heartbeat)."""
    if beats.num_rows == 0:
        return
    beats = beats.sort_by([(k, "ascending") for k in (*_GROUP, "ts")])  # stable
    ts = beats["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    # The previous heartbeat of the same device-day: the row before, unless a key changes.
    same = np.ones(beats.num_rows, dtype=bool)
    same[0] = False
    for k in _GROUP:
        col = beats[k].combine_chunks()
        same[1:] &= pc.equal(col.slice(1), col.slice(0, len(col) - 1)).to_numpy(
            zero_copy_only=False
        )
    gap = np.zeros(beats.num_rows, dtype=np.float64)
    gap[1:] = (ts[1:] - ts[:-1]) / _US
    gap[~same] = 0.0
    if "received_at" in beats.column_names:
        received = beats["received_at"].cast(pa.int64())
        skew = pc.divide(pc.subtract(pa.array(ts), received), float(_US))
    else:
        skew = pa.nulls(beats.num_rows, pa.float64())
    t = pa.table(
        {
            **{k: beats[k] for k in _GROUP},
            "ts": beats["ts"],
            "status": beats["status"],
            "battery": beats["battery"],
            "skew": skew,
            "gap": pa.array(gap),
        }
    )
    per_day = t.group_by(_GROUP, use_threads=False).aggregate(
        [
            ("ts", "count", pc.CountOptions(mode="all")),
            ("ts", "max"),
            ("status", "last", pc.ScalarAggregateOptions(skip_nulls=False)),
            ("battery", "min"),
            ("skew", "max"),
            ("gap", "max"),
        ]
    )
    for r in per_day.to_pylist():
        d = days[(r["tenant_id"], r["store_id"], r["device_id"], r["business_date"])]
        d.heartbeats += r["ts_count"]
        d.seen(r["ts_max"])
        d.status = r["status_last"]  # sorted by ts: the last one wins
        if r["battery_min"] is not None:
            d.battery = r["battery_min"] if d.battery is None else min(d.battery, r["battery_min"])
        if r["skew_max"] is not None:
            d.skew = r["skew_max"] if d.skew is None else max(d.skew, r["skew_max"])
        d.max_gap_s = max(d.max_gap_s, r["gap_max"])


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
