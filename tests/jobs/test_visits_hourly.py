"""store_visits, store_hourly and the PersonID KPIs of store_daily against hand computations.

The fixture (tenant t1, JST stores, business date DAY):

* store A: sale ¥1000 (3 items) 10:30, return −¥200 (−1) 10:45, void 11:10, sale ¥300 (1) 11:20;
  entrance counter 5 in at 10:00 and 0 at 11:00 (a zero-visitor hour with a sale); passby
  20+10 at 10:00 and 8+2 at 11:00; camera visits p1 600 s, p2 1800 s, p3 entry without exit,
  p5 2400 s; staff: t1-s0001 (enrolled, 9 h) and p4 (5 h: over the 4 h threshold).
* store B: no counter, no POS; camera visits p7 300 s, p8 500 s; p2 visited B the day before
  (so p2 is a repeat visitor at A, across two stores); p5 visited A 200 days before (outside
  the 180-day window: not a repeat).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from tenpo.core.errors import BadInput
from tenpo.jobs import VisitRules, store_daily, store_hourly, store_offsets, store_visits
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tenpo.warehouse.schemas import (
    MART_STORE_DAILY,
    MART_STORE_HOURLY,
    MART_STORE_VISITS,
    RAW_VISITOR_EVENTS,
)
from tests.jobs.factories import DAY, count_row, counts_table, pos_row, pos_table

JST = 9


def at(day: date, hhmm: str) -> datetime:
    """UTC instant of local (JST) time ``hhmm`` on ``day``."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=UTC) - timedelta(hours=JST)


def ev(
    store: str, person: str | None, event: str, hhmm: str, *, day: date = DAY, track: str = ""
) -> dict[str, Any]:
    """One raw_visitor_events row."""
    return {
        "tenant_id": "t1",
        "store_id": store,
        "camera_id": f"cam-{store}",
        "person_id": person,
        "event": event,
        "business_date": day,
        "ts": at(day, hhmm),
        "quality": 0.9,
        "track_id": track or f"{person}-{store}-{day}-{hhmm if event == 'entry' else ''}",
        "source_object_id": "obj-v",
    }


def visit(store: str, person: str, enter: str, leave: str | None, **kw: Any) -> list[dict]:
    """Entry and exit events of one visit sharing a track id."""
    track = f"{person}-{store}-{enter}-{kw.get('day', DAY)}"
    rows = [ev(store, person, "entry", enter, track=track, **kw)]
    if leave is not None:
        rows.append(ev(store, person, "exit", leave, track=track, **kw))
    return rows


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RAW_VISITOR_EVENTS)


def fixture_events() -> pa.Table:
    rows = [
        *visit("A", "p1", "10:00", "10:10"),
        *visit("A", "p2", "10:05", "10:35"),
        *visit("A", "p3", "11:00", None),
        *visit("A", "p5", "13:00", "13:40"),
        *visit("A", "t1-s0001", "09:00", "18:00"),
        *visit("A", "p4", "12:00", "17:00"),
        *visit("B", "p7", "10:00", "10:05"),
        *visit("B", "p8", "10:00", "10:08"),
        *visit("B", "p2", "15:00", "15:20", day=DAY - timedelta(days=1)),
        *visit("A", "p5", "15:00", "15:20", day=DAY - timedelta(days=200)),
        # No PersonID: cannot be paired per person, left out.
        ev("A", None, "entry", "10:01"),
    ]
    rows[14]["ts"] += timedelta(seconds=20)  # p8 leaves at 10:08:20: 500 s
    return events_table(rows)


def sale(store: str, tx: str, kind: str, excl: str, incl: str, items: int, hhmm: str) -> dict:
    row = pos_row(store, tx, kind, excl, incl, items)
    row["ts"] = at(DAY, hhmm)
    row["ts_local"] = row["ts"].replace(tzinfo=None) + timedelta(hours=JST)
    return row


def fixture_pos() -> pa.Table:
    return pos_table(
        [
            sale("A", "1", "sale", "1000.00", "1100", 3, "10:30"),
            sale("A", "2", "return", "-200.00", "-220", -1, "10:45"),
            sale("A", "3", "void", "500.00", "550", 2, "11:10"),
            sale("A", "4", "sale", "300.00", "330", 1, "11:20"),
        ]
    )


def fixture_counts() -> pa.Table:
    # count_row intervals start at 01:minute UTC = 10:minute JST; shift for 11:00.
    rows = [
        count_row("A", "entrance", 5, device="pc-a", minute=0),
        count_row("A", "entrance", 0, device="pc-a", minute=1),
        count_row("A", "passby", 20, count_out=10, device="pc-p", minute=0),
        count_row("A", "passby", 8, count_out=2, device="pc-p", minute=1),
    ]
    for row in (rows[1], rows[3]):
        row["interval_start"] += timedelta(minutes=59)
        row["interval_end"] += timedelta(minutes=59)
    return counts_table(rows)


STAFF = pa.table({"tenant_id": ["t1"], "person_id": ["t1-s0001"]})


def fractional_events() -> pa.Table:
    """Store C: p1 enters at 10:00:00.9 and leaves at 10:00:02.1 (whole seconds 0 and 2: 2 s,
    as Spark and BigQuery count it; rounding gave 1); p2 enters at 10:59:59.6 (hour 10, whole
    second 10:59:59) and leaves at 11:30 (1801 s)."""
    rows = [*visit("C", "p1", "10:00", "10:00"), *visit("C", "p2", "10:59", "11:30")]
    rows[0]["ts"] += timedelta(microseconds=900_000)
    rows[1]["ts"] += timedelta(seconds=2, microseconds=100_000)
    rows[2]["ts"] += timedelta(seconds=59, microseconds=600_000)
    return events_table(rows)


def fractional_pos() -> pa.Table:
    """Store C: a sale at 09:59:59.6 (hour 9) and one at 10:59:59.9 (hour 10)."""
    rows = [
        sale("C", "c1", "sale", "100.00", "110", 1, "09:59"),
        sale("C", "c2", "sale", "200.00", "220", 2, "10:59"),
    ]
    for row, us in zip(rows, (59_600_000, 59_900_000), strict=True):
        row["ts"] += timedelta(microseconds=us)
        row["ts_local"] += timedelta(microseconds=us)
    return pos_table(rows)


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    con = connect_duckdb()  # as the warehouse opens DuckDB
    yield con
    con.disconnect()


def visits_of(con: Any, events: pa.Table, **kw: Any) -> pa.Table:
    kw.setdefault("staff", ibis.memtable(STAFF))
    result: pa.Table = con.to_pyarrow(store_visits(ibis.memtable(events), **kw))
    return result


def keyed(table: pa.Table, *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in table.to_pylist()}


def test_visits_pair_entries_exclude_staff_and_keep_open_entries(con: Any) -> None:
    out = visits_of(con, fixture_events(), days=[DAY])
    assert out.schema.equals(MART_STORE_VISITS)
    rows = keyed(out, "store_id", "person_id")
    assert sorted(rows) == [
        ("A", "p1"),
        ("A", "p2"),
        ("A", "p3"),
        ("A", "p5"),
        ("B", "p7"),
        ("B", "p8"),
    ]
    assert [rows[("A", p)]["dwell_s"] for p in ("p1", "p2", "p5")] == [600, 1800, 2400]
    assert (rows[("B", "p7")]["dwell_s"], rows[("B", "p8")]["dwell_s"]) == (300, 500)
    open_visit = rows[("A", "p3")]
    assert open_visit["exit_ts"] is None and open_visit["dwell_s"] is None
    assert rows[("A", "p1")]["entry_hour"] == 10 and open_visit["entry_hour"] == 11
    assert rows[("A", "p1")]["exit_ts"] == at(DAY, "10:10")


def test_staff_rules_are_configurable(con: Any) -> None:
    # Without the enrolled list, the 9 h shift is still caught by the dwell threshold.
    out = visits_of(con, fixture_events(), days=[DAY], staff=None)
    assert "t1-s0001" not in out["person_id"].to_pylist()
    # With the threshold off and no list, staff count as customers.
    rules = VisitRules(staff_min_visit_s=None)
    persons = visits_of(con, fixture_events(), days=[DAY], staff=None, rules=rules)["person_id"]
    assert {"t1-s0001", "p4"} <= set(persons.to_pylist())
    # Seen on 3 of the last 3 days → staff on the third day, not before.
    days = [DAY - timedelta(days=i) for i in (2, 1, 0)]
    rows = [e for d in days for e in visit("A", "p9", "10:00", "10:05", day=d)]
    rules = VisitRules(staff_min_days=3, staff_days_window=3)
    out = visits_of(con, events_table(rows), rules=rules)
    assert sorted(out["business_date"].to_pylist()) == days[:2]


def test_overlapping_visits_of_one_person_merge_into_one(con: Any) -> None:
    rows = [
        # Two overlapping tracks of p1 (10:00-10:20 and 10:05-10:30): one visit 10:00-10:30.
        ev("A", "p1", "entry", "10:00", track="x"),
        ev("A", "p1", "entry", "10:05", track="y"),
        ev("A", "p1", "exit", "10:20", track="x"),
        ev("A", "p1", "exit", "10:30", track="y"),
        # p1 again after leaving: a second visit.
        *visit("A", "p1", "11:00", "11:05"),
        # Re-entering at the second of the exit touches the visit: merged.
        *visit("A", "p6", "14:00", "14:10"),
        *visit("A", "p6", "14:10", "14:15"),
        # An open entry inside another visit of the person is part of it.
        *visit("A", "p9", "15:00", "15:30"),
        ev("A", "p9", "entry", "15:10", track="lost"),
        # Track lost: an entry and a later exit on different tracks still pair by person.
        ev("A", "p2", "entry", "11:00", track="u"),
        ev("A", "p2", "exit", "11:10", track="v"),
        # An exit with no entry is ignored.
        ev("A", "p3", "exit", "12:00", track="w"),
        # The same person at another store at the same time is another visit.
        *visit("B", "p1", "10:00", "10:10"),
    ]
    out = visits_of(con, events_table(rows), staff=None)
    got = sorted((r["store_id"], r["person_id"], r["dwell_s"]) for r in out.to_pylist())
    assert got == [
        ("A", "p1", 300),
        ("A", "p1", 1800),
        ("A", "p2", 600),
        ("A", "p6", 900),
        ("A", "p9", 1800),
        ("B", "p1", 600),
    ]


def test_two_tracks_entering_at_the_same_second_are_one_visit(con: Any) -> None:
    # The case of issue 13: t2-p0035261, tracks 20261024-00218 and -00219, both entering at
    # 04:12:29 UTC; the mart's key (tenant, store, date, person, entry_ts) must stay unique.
    day = date(2026, 10, 24)
    entered = datetime(2026, 10, 24, 4, 12, 29, tzinfo=UTC)
    rows = []
    for track, camera, minutes in (("20261024-00218", "cam-1", 20), ("20261024-00219", "cam-0", 9)):
        for event, ts in (("entry", entered), ("exit", entered + timedelta(minutes=minutes))):
            row = ev("A", "t2-p0035261", event, "13:12", day=day, track=track)
            row.update(tenant_id="t2", camera_id=camera, ts=ts)
            rows.append(row)
    out = visits_of(con, events_table(rows), staff=None).to_pylist()
    assert len(out) == 1
    (merged,) = out
    assert (merged["entry_ts"], merged["exit_ts"]) == (entered, entered + timedelta(minutes=20))
    assert (merged["dwell_s"], merged["camera_id"]) == (1200, "cam-0")  # tie: smallest camera


def test_daily_person_kpis_repeat_across_stores_and_dwell(con: Any) -> None:
    visits = ibis.memtable(visits_of(con, fixture_events()))
    expr = store_daily(
        ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts()), visits, days=[DAY]
    )
    out = con.to_pyarrow(expr)
    assert out.schema.equals(MART_STORE_DAILY)
    rows = keyed(out, "store_id")
    a, b = rows[("A",)], rows[("B",)]
    assert (a["net_sales"], a["net_sales_incl_tax"]) == (Decimal("1100.00"), Decimal("1210.00"))
    assert (a["transactions"], a["units"]) == (1, 3)
    assert (a["visitors"], a["visitors_source"], a["passersby"]) == (5, "counter", 40)
    assert a["conversion_rate"] == pytest.approx(1 / 5)
    assert (a["unique_visitors"], a["repeat_visitors"]) == (4, 1)  # p2 seen at B yesterday
    assert a["repeat_rate"] == pytest.approx(0.25)
    assert a["dwell_time_median_s"] == pytest.approx(1800.0)  # of 600, 1800, 2400
    assert a["dwell_time_mean_s"] == pytest.approx(1600.0)
    assert (a["open_visits"], a["video_complete"]) == (1, False)
    # The counter reported the 10:00 and 11:00 minutes only: a gap between them.
    assert a["counter_complete"] is False
    assert (a["has_pos"], a["has_counter"], a["has_video"]) == (True, True, True)
    # B has no counter: visitors are the camera's customer entries; no POS: sales unknown.
    assert (b["visitors"], b["visitors_source"], b["unique_visitors"]) == (2, "video", 2)
    assert b["repeat_visitors"] == 0 and b["repeat_rate"] == pytest.approx(0.0)
    assert b["dwell_time_median_s"] == pytest.approx(400.0)  # even count: mean of the middle two
    assert b["net_sales"] is None and b["conversion_rate"] is None
    assert (b["has_pos"], b["has_counter"], b["video_complete"]) == (False, False, True)
    assert b["counter_complete"] is None
    assert sorted(rows) == [("A",), ("B",)]  # history dates are inputs, not outputs


def test_repeat_window_is_a_parameter(con: Any) -> None:
    visits = ibis.memtable(visits_of(con, fixture_events()))
    pos, counts = ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts())
    out = con.to_pyarrow(store_daily(pos, counts, visits, days=[DAY], repeat_window_days=365))
    assert keyed(out, "store_id")[("A",)]["repeat_visitors"] == 2  # p5's old visit now counts


def test_dwell_median_of_odd_even_and_all_open_days(con: Any) -> None:
    """Median of 1, 2 and 3 closed visits (duplicates included); a day of open visits only has
    no dwell (null, not an error), and an open visit never shifts the middle."""
    t0 = at(DAY, "10:00")
    dwells = {"A": [None, 300, None], "B": [None, None], "C": [200, 200, 500, None], "D": [700]}
    rows = [
        {
            "tenant_id": "t1",
            "store_id": store,
            "business_date": DAY,
            "person_id": f"{store}-p{i}",
            "entry_ts": t0,
            "exit_ts": None if d is None else t0 + timedelta(seconds=d),
            "dwell_s": d,
            "entry_hour": 10,
            "camera_id": f"cam-{store}",
        }
        for store, ds in dwells.items()
        for i, d in enumerate(ds)
    ]
    visits = ibis.memtable(pa.Table.from_pylist(rows, schema=MART_STORE_VISITS))
    out = keyed(
        con.to_pyarrow(
            store_daily(ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts()), visits)
        ),
        "store_id",
    )
    got = {s: (out[(s,)]["dwell_time_median_s"], out[(s,)]["open_visits"]) for s in dwells}
    assert got == {"A": (300.0, 2), "B": (None, 2), "C": (200.0, 1), "D": (700.0, 0)}
    assert out[("B",)]["dwell_time_mean_s"] is None and out[("B",)]["unique_visitors"] == 2


def test_counter_gap_is_flagged(con: Any) -> None:
    rows = [count_row("A", "entrance", 3, device="pc-a", minute=m) for m in (0, 1, 5)]
    out = con.to_pyarrow(
        store_daily(ibis.memtable(pos_table([])), ibis.memtable(counts_table(rows)))
    )
    assert out["counter_complete"].to_pylist() == [False]


def test_hourly_zero_visitor_hour_and_sums_to_daily(con: Any) -> None:
    visits = ibis.memtable(visits_of(con, fixture_events(), days=[DAY]))
    pos, counts = ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts())
    out = con.to_pyarrow(store_hourly(pos, counts, visits))
    assert out.schema.equals(MART_STORE_HOURLY)
    rows = keyed(out, "store_id", "hour")
    h10, h11 = rows[("A", 10)], rows[("A", 11)]
    assert (h10["net_sales"], h10["transactions"], h10["units"]) == (Decimal("800.00"), 0, 2)
    assert h10["atv"] is None  # a sale and a return: zero transactions
    assert (h10["visitors"], h10["passersby"]) == (5, 30)
    assert h10["conversion_rate"] == pytest.approx(0.0)
    assert (h11["net_sales"], h11["transactions"], h11["visitors"]) == (Decimal("300.00"), 1, 0)
    assert h11["conversion_rate"] is None and h11["sales_per_visitor"] is None
    assert h11["capture_rate"] == pytest.approx(0.0)
    # A counts with its counter every hour, even where the camera saw entries (13:00).
    assert rows[("A", 13)]["visitors"] == 0 and rows[("A", 13)]["visitors_source"] == "counter"
    # B has no counter: its hours count camera entries.
    assert (rows[("B", 10)]["visitors"], rows[("B", 10)]["visitors_source"]) == (2, "video")
    daily = keyed(con.to_pyarrow(store_daily(pos, counts, visits, days=[DAY])), "store_id")
    for store in ("A", "B"):
        hours = [r for (s, _), r in rows.items() if s == store]
        for kpi in ("transactions", "units", "visitors", "passersby"):
            total = sum(r[kpi] or 0 for r in hours)
            assert total == (daily[(store,)][kpi] or 0), (store, kpi)
    assert sum(r["net_sales"] or 0 for (s, _), r in rows.items() if s == "A") == Decimal("1100.00")


def test_hours_follow_each_store_timezone(con: Any) -> None:
    counts = fixture_counts()
    offsets = store_offsets([("t1", "A", "America/New_York")], [DAY])
    out = con.to_pyarrow(
        store_hourly(
            ibis.memtable(pos_table([])),
            ibis.memtable(counts),
            offsets=ibis.memtable(offsets),
        )
    )
    # 01:00 UTC on 2 Nov 2026 is 20:00 in New York (EST, UTC−5).
    assert sorted(out["hour"].to_pylist()) == [20, 21]
    assert set(out["utc_offset_s"].to_pylist()) == {-5 * 3600}
    # The table's window for DAY reaches back over the fall-back of 1 Nov: EDT, then EST.
    assert offsets["utc_offset_s"].to_pylist() == [-4 * 3600, -5 * 3600]


def test_bad_inputs_are_named() -> None:
    events = ibis.memtable(fixture_events().drop_columns(["person_id"]))
    with pytest.raises(BadInput, match="visitor_events lacks column.*person_id"):
        store_visits(events)
    with pytest.raises(BadInput, match="staff lacks column.*person_id"):
        store_visits(
            ibis.memtable(fixture_events()), staff=ibis.memtable(pa.table({"tenant_id": ["t1"]}))
        )
    with pytest.raises(BadInput, match="repeat_window_days"):
        VisitRules(repeat_window_days=0)
    with pytest.raises(BadInput, match="staff_min_days must be between"):
        VisitRules(staff_min_days=9, staff_days_window=7)
    with pytest.raises(BadInput, match="unknown timezone 'Mars/Base'"):
        store_offsets([("t1", "A", "Mars/Base")], [DAY])
    visits = ibis.memtable(pa.table({"tenant_id": ["t1"]}))
    with pytest.raises(BadInput, match="visits lacks column"):
        store_daily(ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts()), visits)


def test_counter_completeness_looks_at_entrance_counters_only(con: Any) -> None:
    rows = [
        # A: a complete entrance counter and a passby counter with a gap (not judged).
        *(count_row("A", "entrance", 2, device="pc-a", minute=m) for m in (0, 1, 2)),
        *(count_row("A", "passby", 5, count_out=1, device="pc-p", minute=m) for m in (0, 4)),
        # B: a passby counter only: completeness is unknown, visitors too.
        *(count_row("B", "passby", 7, device="pc-b", minute=m) for m in (0, 9)),
        # C: one device counting the entrance and a zone; the entrance minutes have a gap.
        *(count_row("C", "entrance", 1, device="pc-c", minute=m) for m in (0, 3)),
        count_row("C", "cosmetics", 4, device="pc-c", minute=1),
    ]
    out = con.to_pyarrow(
        store_daily(ibis.memtable(pos_table([])), ibis.memtable(counts_table(rows)))
    )
    got = {
        r["store_id"]: (r["counter_complete"], r["visitors"], r["passersby"], r["has_counter"])
        for r in out.to_pylist()
    }
    assert got == {
        "A": (True, 6, 12, True),
        "B": (None, None, 14, True),
        "C": (False, 2, None, True),
    }


def test_fractional_seconds_floor_into_hours_and_dwell_as_pandas(con: Any) -> None:
    """An instant belongs to the whole second at or before it (Spark, BigQuery, pandas)."""
    events, pos = fractional_events(), fractional_pos()
    visits = visits_of(con, events, staff=None)
    got_visits = sorted((r["person_id"], r["dwell_s"], r["entry_hour"]) for r in visits.to_pylist())
    hourly = con.to_pyarrow(
        store_hourly(ibis.memtable(pos), ibis.memtable(counts_table([])), ibis.memtable(visits))
    )
    got_hours = sorted((r["hour"], r["transactions"], r["visitors"]) for r in hourly.to_pylist())
    # pandas: the local hour of each instant; dwell between the whole seconds of entry and exit.
    e = events.to_pandas()
    local = e["ts"].dt.tz_convert("Asia/Tokyo")
    e["whole"] = e["ts"].dt.floor("s")
    pairs = e.pivot(index="person_id", columns="event", values="whole")
    dwell = (pairs["exit"] - pairs["entry"]).dt.total_seconds().astype(int)
    entry_hour = local[e["event"] == "entry"].dt.hour.set_axis(e.person_id[e["event"] == "entry"])
    assert got_visits == [(p, dwell[p], entry_hour[p]) for p in sorted(dwell.index)]
    assert got_visits == [("p1", 2, 10), ("p2", 1801, 10)]
    sales_hour = pd.Series(pos.column("ts").to_pandas()).dt.tz_convert("Asia/Tokyo").dt.hour
    entries = entry_hour.value_counts()
    want = sorted(
        (h, int((sales_hour == h).sum()), entries.get(h))  # no entries: unknown (video)
        for h in {*sales_hour, *entry_hour}
    )
    assert got_hours == want == [(9, 1, None), (10, 1, 2)]
