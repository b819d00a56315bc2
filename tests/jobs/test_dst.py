"""Local hours on daylight-saving days: every instant converted with its own UTC offset.

Four stores: Asia/Tokyo (no DST, the control), Pacific/Auckland, Europe/London and
America/New_York, each on its 2026 spring-forward and fall-back dates. Each store's people
counter reports a 15-minute entrance interval (1 visitor) around the clock, from local
midnight to the next local midnight in elapsed time, so a local date has 92, 96 or 100
intervals. The expected hours are written out by hand from the published transitions:

* London: 29 Mar 01:00 GMT → 02:00 BST (hour 1 skipped); 25 Oct 02:00 BST → 01:00 GMT
  (hour 1 twice: +01:00, then +00:00).
* New York: 8 Mar 02:00 EST → 03:00 EDT (hour 2 skipped); 1 Nov 02:00 EDT → 01:00 EST
  (hour 1 twice: −04:00, then −05:00).
* Auckland: 5 Apr 03:00 NZDT → 02:00 NZST (hour 2 twice: +13:00, then +12:00); 27 Sep 02:00
  NZST → 03:00 NZDT (hour 2 skipped).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa
import pytest

from tenpo.jobs import store_daily, store_hourly, store_offsets, store_visits
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tenpo.warehouse.schemas import RAW_IOT_COUNTS, RAW_VISITOR_EVENTS
from tests.jobs.factories import pos_table

H = 3600
STORES = {
    "tokyo": "Asia/Tokyo",
    "auckland": "Pacific/Auckland",
    "london": "Europe/London",
    "new_york": "America/New_York",
}
# (store, date) → the (hour, utc_offset_s) rows of that local date, in order, by hand.
ALL_DAY = list(range(24))


def _hours(offset_of: dict[int, list[int]], default: int) -> list[tuple[int, int]]:
    """Hours 0-23 with ``default`` offset; ``offset_of[h]`` lists the offsets an hour has."""
    return [(h, o) for h in ALL_DAY for o in offset_of.get(h, [default])]


CASES: dict[tuple[str, date], list[tuple[int, int]]] = {
    ("tokyo", date(2026, 3, 29)): _hours({}, 9 * H),
    ("london", date(2026, 3, 29)): (
        [(0, 0)] + [(h, H) for h in range(2, 24)]  # 01:00 does not exist
    ),
    ("london", date(2026, 10, 25)): [(0, H), (1, H), (1, 0)] + [(h, 0) for h in range(2, 24)],
    ("new_york", date(2026, 3, 8)): (
        [(0, -5 * H), (1, -5 * H)] + [(h, -4 * H) for h in range(3, 24)]  # 02:00 skipped
    ),
    ("new_york", date(2026, 11, 1)): (
        [(0, -4 * H), (1, -4 * H), (1, -5 * H)] + [(h, -5 * H) for h in range(2, 24)]
    ),
    ("auckland", date(2026, 4, 5)): (
        [(0, 13 * H), (1, 13 * H), (2, 13 * H), (2, 12 * H)] + [(h, 12 * H) for h in range(3, 24)]
    ),
    ("auckland", date(2026, 9, 27)): (
        [(0, 12 * H), (1, 12 * H)] + [(h, 13 * H) for h in range(3, 24)]  # 02:00 skipped
    ),
}


def local_day(store: str, day: date) -> tuple[datetime, datetime]:
    """UTC instants of local midnight of ``day`` and of the next day in the store's zone."""
    tz = ZoneInfo(STORES[store])
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    nxt = day + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)


def counts_of(store: str, day: date) -> list[dict[str, Any]]:
    """15-minute entrance intervals (1 in, 0 out) from local midnight to local midnight."""
    start, end = local_day(store, day)
    rows, t, seq = [], start, 0
    while t < end:
        rows.append(
            {
                "tenant_id": "t1", "store_id": store, "device_id": f"pc-{store}",
                "line": "entrance", "business_date": day, "interval_start": t,
                "interval_end": t + timedelta(minutes=15), "count_in": 1, "count_out": 0,
                "seq": seq, "source_object_id": "obj",
            }
        )  # fmt: skip
        t += timedelta(minutes=15)
        seq += 1
    return rows


@pytest.fixture(scope="module")
def con() -> Any:
    connection = connect_duckdb()  # as the warehouse opens DuckDB
    yield connection
    connection.disconnect()


@pytest.fixture(scope="module")
def offsets() -> ibis.Table:
    days = sorted({day for _, day in CASES})
    return ibis.memtable(store_offsets([("t1", s, z) for s, z in STORES.items()], days))


@pytest.fixture(scope="module")
def marts(con: Any, offsets: ibis.Table) -> tuple[pa.Table, pa.Table]:
    rows = [r for store, day in CASES for r in counts_of(store, day)]
    counts = ibis.memtable(pa.Table.from_pylist(rows, schema=RAW_IOT_COUNTS))
    pos = ibis.memtable(pos_table([]))
    hourly = con.to_pyarrow(store_hourly(pos, counts, offsets=offsets, default_utc_offset_s=0))
    daily = con.to_pyarrow(store_daily(pos, counts))
    return hourly, daily


@pytest.mark.parametrize(("store", "day"), list(CASES), ids=[f"{s}-{d}" for s, d in CASES])
def test_each_interval_lands_in_its_own_local_hour(
    marts: tuple[pa.Table, pa.Table], store: str, day: date
) -> None:
    hourly, daily = marts
    rows = sorted(
        (r for r in hourly.to_pylist() if r["store_id"] == store and r["business_date"] == day),
        key=lambda r: (r["hour"], -r["utc_offset_s"]),  # the earlier (larger) offset first
    )
    assert [(r["hour"], r["utc_offset_s"]) for r in rows] == CASES[(store, day)]
    # Four quarter-hours per local hour, the repeated one counted once per offset.
    assert [r["visitors"] for r in rows] == [4] * len(rows)
    intervals = {23: 92, 24: 96, 25: 100}[len(CASES[(store, day)])]
    (day_row,) = [
        r for r in daily.to_pylist() if (r["store_id"], r["business_date"]) == (store, day)
    ]
    assert day_row["visitors"] == intervals
    assert sum(r["visitors"] for r in rows) == day_row["visitors"]  # Σ hourly = daily


def test_midnight_of_the_fall_back_night_is_hour_zero(marts: tuple[pa.Table, pa.Table]) -> None:
    """The old rule (one offset per date, at noon) put New York's 00:00 EDT in 23:00."""
    hourly, _ = marts
    ny = [r for r in hourly.to_pylist() if r["business_date"] == date(2026, 11, 1)]
    first = min(ny, key=lambda r: (r["hour"], -r["utc_offset_s"]))
    assert (first["hour"], first["utc_offset_s"], first["visitors"]) == (0, -4 * H, 4)
    assert Counter(r["hour"] for r in ny)[23] == 1


def test_receipts_and_visits_in_the_repeated_hour_keep_their_offset(
    con: Any, offsets: ibis.Table
) -> None:
    """London, 25 Oct: a sale and a visit at 01:30 BST and again at 01:30 GMT, an hour later."""
    day = date(2026, 10, 25)
    bst = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    gmt = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 01:30 GMT
    sales = []
    for i, ts in enumerate((bst, gmt, gmt)):
        sales.append(
            {
                "tenant_id": "t1", "store_id": "london", "register_id": "R1",
                "transaction_id": f"tx{i}", "business_date": day, "ts": ts,
                "ts_local": ts.replace(tzinfo=None) + timedelta(hours=1 if ts == bst else 0),
                "kind": "sale", "total_excl_tax": Decimal("100.00"), "total_tax": Decimal("10.00"),
                "total_incl_tax": Decimal("110.00"), "item_count": 1, "vendor": "vendor_b",
                "source_object_id": "obj",
            }
        )  # fmt: skip
    events = []
    for person, ts in (("p1", bst), ("p2", gmt)):
        for kind, at in (("entry", ts), ("exit", ts + timedelta(minutes=10))):
            events.append(
                {
                    "tenant_id": "t1", "store_id": "london", "camera_id": "cam",
                    "person_id": person, "event": kind, "business_date": day, "ts": at,
                    "quality": 0.9, "track_id": person, "source_object_id": "obj",
                }
            )  # fmt: skip
    visits = store_visits(
        ibis.memtable(pa.Table.from_pylist(events, schema=RAW_VISITOR_EVENTS)), offsets=offsets
    )
    visit_rows = con.to_pyarrow(visits)
    assert sorted(visit_rows["entry_hour"].to_pylist()) == [1, 1]
    no_counts = ibis.memtable(pa.Table.from_pylist([], schema=RAW_IOT_COUNTS))
    hourly = con.to_pyarrow(
        store_hourly(
            ibis.memtable(pos_table(sales)),
            no_counts,
            ibis.memtable(visit_rows),
            offsets=offsets,
        )
    )
    got = sorted(
        (r["hour"], r["utc_offset_s"], r["transactions"], r["visitors"], r["visitors_source"])
        for r in hourly.to_pylist()
    )
    assert got == [(1, 0, 2, 1, "video"), (1, H, 1, 1, "video")]


def test_a_store_missing_from_the_offsets_gets_the_default(con: Any, offsets: ibis.Table) -> None:
    rows = counts_of("london", date(2026, 3, 29))[:4]
    for r in rows:
        r["store_id"] = "unknown"
    counts = ibis.memtable(pa.Table.from_pylist(rows, schema=RAW_IOT_COUNTS))
    out = con.to_pyarrow(
        store_hourly(
            ibis.memtable(pos_table([])), counts, offsets=offsets, default_utc_offset_s=9 * H
        )
    )
    # Local midnight in London is 00:00 UTC that night: 09:00 at the default +09:00.
    assert [(r["hour"], r["utc_offset_s"], r["visitors"]) for r in out.to_pylist()] == [
        (9, 9 * H, 4)
    ]
