"""Device health: hand-computed intervals, skew, battery, status and flags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from tenpo.iot.health import HealthRules, RegisteredDevice, device_health
from tenpo.warehouse.schemas import MART_DEVICE_HEALTH, RAW_DEVICE_HEARTBEATS, RAW_IOT_COUNTS

DAY = date(2026, 11, 2)
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 10:00 JST


def count(device: str, line: str, k: int, step_min: int = 15) -> dict[str, Any]:
    start = T0 + timedelta(minutes=k * step_min)
    return {
        "tenant_id": "t1", "store_id": "s1", "device_id": device, "line": line,
        "business_date": DAY, "interval_start": start,
        "interval_end": start + timedelta(minutes=step_min), "count_in": 1, "count_out": 1,
        "seq": k, "source_object_id": "o1",
    }  # fmt: skip


def beat(device: str, minute: int, *, delay_s: float = 5, battery: float | None = 0.9,
         status: str = "ok") -> dict[str, Any]:  # fmt: skip
    ts = T0 + timedelta(minutes=minute)
    return {
        "tenant_id": "t1", "store_id": "s1", "device_id": device, "business_date": DAY,
        "ts": ts, "status": status, "firmware": "1", "battery": battery, "seq": minute,
        "source_object_id": "o1", "received_at": ts + timedelta(seconds=delay_s),
    }  # fmt: skip


def test_health_per_device_and_day() -> None:
    counts = [count("pc-1", "entrance", k) for k in range(8) if k not in (2, 3)]
    counts += [count("pc-1", "passby", k) for k in range(8)]
    counts.append(count("pc-1", "entrance", 0) | {"business_date": date(2026, 11, 3)})  # ignored
    beats = [
        beat("pc-1", 0, battery=0.5),
        beat("pc-1", 15, delay_s=-200),  # its clock runs 200 s ahead (at least)
        beat("pc-1", 90, battery=0.15, status="degraded"),  # 75 min after the previous one
        beat("pc-3", 0, delay_s=7200),
        beat("pc-3", 15, delay_s=7300),
    ]
    hours = {"mon": ["10:00", "12:00"]}  # DAY is a Monday
    devices = [
        RegisteredDevice("t1", "s1", "pc-1", opening_hours=hours),
        RegisteredDevice("t1", "s1", "pc-2", opening_hours=hours, interval_s=900, registered=DAY),
        RegisteredDevice("t1", "s1", "pc-3", opening_hours=hours),
    ]
    out = device_health(
        pa.Table.from_pylist(counts, schema=RAW_IOT_COUNTS),
        pa.Table.from_pylist(beats, schema=RAW_DEVICE_HEARTBEATS),
        [DAY],
        devices=devices,
    )
    assert out.schema == MART_DEVICE_HEALTH
    pc1, pc2, pc3 = out.to_pylist()
    assert (pc1["device_id"], pc1["interval_s"]) == ("pc-1", 900)
    # entrance: 8 expected (10:00-12:00), 6 received; passby: 8 of 8.
    assert (pc1["intervals_expected"], pc1["intervals_received"], pc1["intervals_missing"]) == (
        16, 14, 2,
    )  # fmt: skip
    assert pc1["incomplete_hours"] == "10:00+09:00"  # 10:30 and 10:45 are missing
    assert pc1["last_seen"] == T0 + timedelta(hours=2)  # end of the last interval
    assert (pc1["heartbeats"], pc1["battery_min"], pc1["last_status"]) == (3, 0.15, "degraded")
    assert pc1["clock_skew_s"] == 200.0
    assert pc1["flags"] == "clock_ahead,heartbeat_gap,low_battery,missing_intervals,status_not_ok"
    assert pc2["flags"] == "missing_intervals,no_data,no_heartbeat" and pc2["last_seen"] is None
    assert (pc2["intervals_expected"], pc2["intervals_missing"]) == (8, 8)
    assert pc2["incomplete_hours"] == "10:00+09:00,11:00+09:00"
    # Heartbeats only and no configured interval: the slots are unknown, not missing.
    assert (pc3["intervals_expected"], pc3["intervals_missing"]) == (None, 0)
    assert pc3["clock_skew_s"] == -7200.0 and pc3["flags"] == "delivered_late"
    assert pc3["last_seen"] == T0 + timedelta(minutes=15)


def test_healthy_device_has_no_flags_and_rules_apply() -> None:
    counts = [count("pc-1", "entrance", k, step_min=1) for k in range(60)]
    beats = [beat("pc-1", m) for m in (0, 15, 30, 45)]
    args = (
        pa.Table.from_pylist(counts, schema=RAW_IOT_COUNTS),
        pa.Table.from_pylist(beats, schema=RAW_DEVICE_HEARTBEATS),
        [DAY],
    )
    (row,) = device_health(*args).to_pylist()
    assert (row["interval_s"], row["intervals_expected"], row["intervals_missing"]) == (60, 60, 0)
    assert row["flags"] == "" and row["clock_skew_s"] == -5.0
    (strict,) = device_health(*args, rules=HealthRules(battery_low=0.95)).to_pylist()
    assert strict["flags"] == "low_battery"
    empty = device_health(RAW_IOT_COUNTS.empty_table(), RAW_DEVICE_HEARTBEATS.empty_table(), [DAY])
    assert empty.num_rows == 0 and empty.schema == MART_DEVICE_HEALTH


# Gap cases against the expected schedule. Store hours are Tokyo wall clock unless stated;
# each count below is one line ("entrance") of a registered 15-minute counter.


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def quarter_hours(device: str, day: date, start: datetime, n: int) -> list[dict[str, Any]]:
    """``n`` consecutive 15-minute entrance intervals from ``start`` (UTC), dated ``day``."""
    rows = []
    for k in range(n):
        t = start + timedelta(minutes=15 * k)
        rows.append(
            {
                "tenant_id": "t1", "store_id": "s1", "device_id": device, "line": "entrance",
                "business_date": day, "interval_start": t,
                "interval_end": t + timedelta(minutes=15), "count_in": 1, "count_out": 0,
                "seq": k, "source_object_id": "o1",
            }
        )  # fmt: skip
    return rows


def counter(**kw: Any) -> RegisteredDevice:
    base: dict[str, Any] = {"interval_s": 900, "lines": ("entrance",)}
    return RegisteredDevice("t1", "s1", "pc-1", **(base | kw))


NO_BEATS = RAW_DEVICE_HEARTBEATS.empty_table()
MON_10_21 = dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), ["10:00", "21:00"])


def test_a_counter_silent_from_noon_is_flagged() -> None:
    # Open 10:00-21:00 (44 quarter-hours); it reported 10:00-12:00 only (8).
    counts = table(quarter_hours("pc-1", DAY, T0, 8), RAW_IOT_COUNTS)
    (row,) = device_health(
        counts, NO_BEATS, [DAY], devices=[counter(opening_hours=MON_10_21)]
    ).to_pylist()
    assert (row["intervals_expected"], row["intervals_received"], row["intervals_missing"]) == (
        44, 8, 36,
    )  # fmt: skip
    assert row["incomplete_hours"] == ",".join(f"{h:02d}:00+09:00" for h in range(12, 21))
    assert row["flags"] == "missing_intervals,no_heartbeat"
    # The old rule (first to last report) saw nothing wrong: an unregistered device still does.
    (unknown,) = device_health(counts, NO_BEATS, [DAY]).to_pylist()
    assert (unknown["intervals_expected"], unknown["intervals_missing"]) == (8, 0)


def test_a_counter_silent_until_six_is_flagged_around_the_clock() -> None:
    # No opening hours: 00:00-24:00 local, 96 quarter-hours; it reported from 06:00 JST (72).
    six = datetime(2026, 11, 1, 21, 0, tzinfo=UTC)  # 06:00 JST on 2 Nov
    counts = table(quarter_hours("pc-1", DAY, six, 72), RAW_IOT_COUNTS)
    (row,) = device_health(counts, NO_BEATS, [DAY], devices=[counter()]).to_pylist()
    assert (row["intervals_expected"], row["intervals_received"], row["intervals_missing"]) == (
        96, 72, 24,
    )  # fmt: skip
    assert row["incomplete_hours"] == ",".join(f"{h:02d}:00+09:00" for h in range(6))


def test_whole_silent_days_from_the_first_report_also_for_history_loaded_later() -> None:
    days = [DAY - timedelta(days=i) for i in (3, 2, 1, 0)]
    d2 = days[1]
    counts = table(quarter_hours("pc-1", d2, T0 - timedelta(days=2), 44), RAW_IOT_COUNTS)
    # Registered today (long after), first report on d2: silent d1 and DAY are no_data.
    dev = counter(opening_hours=MON_10_21, registered=date(2026, 12, 1))
    rows = device_health(counts, NO_BEATS, days, devices=[dev]).to_pylist()
    got = [(r["business_date"], r["intervals_missing"], r["flags"]) for r in rows]
    assert got == [
        (d2, 0, "no_heartbeat"),
        (days[2], 44, "missing_intervals,no_data,no_heartbeat"),
        (DAY, 44, "missing_intervals,no_data,no_heartbeat"),
    ]  # nothing before the first report (days[0])
    # The first report may lie outside the dates asked for: the caller passes it.
    later = device_health(
        RAW_IOT_COUNTS.empty_table(),
        NO_BEATS,
        [DAY],
        devices=[dev],
        first_seen={("t1", "pc-1"): d2},
    ).to_pylist()
    assert [(r["business_date"], r["flags"]) for r in later] == [
        (DAY, "missing_intervals,no_data,no_heartbeat")
    ]


def test_a_configured_start_date_wins_and_closed_days_have_no_row() -> None:
    hours = dict(MON_10_21, sun=None)  # closed on Sundays
    dev = counter(opening_hours=hours, since=DAY - timedelta(days=2), registered=DAY)
    days = [DAY - timedelta(days=i) for i in (3, 2, 1, 0)]  # Fri (before start), Sat, Sun, Mon
    empty = RAW_IOT_COUNTS.empty_table()
    rows = device_health(empty, NO_BEATS, days, devices=[dev]).to_pylist()
    assert [(r["business_date"].weekday(), r["intervals_expected"]) for r in rows] == [
        (5, 44),
        (0, 44),
    ]
    # A report on a closed day is shown, with nothing expected.
    sunday = days[2]
    counts = table(quarter_hours("pc-1", sunday, T0 - timedelta(days=1), 2), RAW_IOT_COUNTS)
    (sun,) = device_health(counts, NO_BEATS, [sunday], devices=[dev]).to_pylist()
    assert (sun["intervals_expected"], sun["intervals_missing"], sun["flags"]) == (
        0, 0, "no_heartbeat",
    )  # fmt: skip


def test_opening_hours_off_the_grid_and_past_midnight() -> None:
    # Open 09:30-01:00 (25:00): hourly slots on the clock grid, 09:00 … 00:00, are 16.
    hours = dict.fromkeys(MON_10_21, ["09:30", "25:00"])
    dev = counter(opening_hours=hours, interval_s=3600)
    (row,) = device_health(
        table(quarter_hours("pc-1", DAY, T0, 1), RAW_IOT_COUNTS), NO_BEATS, [DAY], devices=[dev]
    ).to_pylist()
    assert (row["intervals_expected"], row["intervals_received"]) == (16, 1)  # 10:00 reported
    assert row["incomplete_hours"].split(",")[0] == "09:00+09:00"
    assert row["incomplete_hours"].split(",")[-1] == "00:00+09:00"


def test_today_is_judged_up_to_now() -> None:
    counts = table(quarter_hours("pc-1", DAY, T0, 8), RAW_IOT_COUNTS)  # 10:00-12:00 JST
    dev = counter(opening_hours=MON_10_21)
    noon = T0 + timedelta(hours=2, minutes=5)
    (row,) = device_health(counts, NO_BEATS, [DAY], devices=[dev], now=noon).to_pylist()
    assert (row["intervals_expected"], row["intervals_missing"]) == (8, 0)
    (late,) = device_health(
        counts, NO_BEATS, [DAY], devices=[dev], now=noon + timedelta(hours=1)
    ).to_pylist()
    assert (late["intervals_expected"], late["intervals_missing"]) == (12, 4)


@pytest.mark.parametrize(
    ("zone", "day", "expected", "repeated"),
    [
        ("Europe/London", date(2026, 10, 25), 100, ["01:00+01:00", "01:00+00:00"]),
        ("Europe/London", date(2026, 3, 29), 92, []),
        ("America/New_York", date(2026, 11, 1), 100, ["01:00-04:00", "01:00-05:00"]),
        ("Pacific/Auckland", date(2026, 4, 5), 100, ["02:00+13:00", "02:00+12:00"]),
        ("Asia/Tokyo", date(2026, 10, 25), 96, []),
    ],
)
def test_a_silent_day_around_the_clock_has_the_local_days_length(
    zone: str, day: date, expected: int, repeated: list[str]
) -> None:
    dev = counter(timezone=zone, since=day)
    (row,) = device_health(RAW_IOT_COUNTS.empty_table(), NO_BEATS, [day], devices=[dev]).to_pylist()
    assert (row["intervals_expected"], row["intervals_missing"]) == (expected, expected)
    hours = row["incomplete_hours"].split(",")
    assert len(hours) == expected // 4  # 23, 24 or 25 local hours
    assert len(set(hours)) == len(hours)
    for key in repeated:
        assert key in hours
