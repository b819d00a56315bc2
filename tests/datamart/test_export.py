"""export_partition and sync_stores against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.datamart import (
    dm_stores,
    ensure_schema,
    export_partition,
    get_engine,
    list_stores,
    mart_store_daily,
    store_kpis,
    sync_stores,
)
from tenpo.warehouse.schemas import MART_STORE_DAILY
from tests.datamart.factory import BACKENDS, daily_row, datamart_settings, mart_table

D1, D2 = date(2026, 10, 5), date(2026, 10, 6)


@pytest.fixture(params=BACKENDS)
def dm(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    yield from datamart_settings(request, settings)


def read_all(s: Settings) -> list[dict[str, object]]:
    t = mart_store_daily
    query = sa.select(t).order_by(t.c.tenant_id, t.c.store_id, t.c.business_date)
    with get_engine(s.datamart_db_url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def test_mart_table_has_exactly_the_arrow_columns() -> None:
    assert [c.name for c in mart_store_daily.columns] == MART_STORE_DAILY.names
    assert [c.name for c in mart_store_daily.primary_key] == [
        "tenant_id",
        "store_id",
        "business_date",
    ]


def test_export_reads_back_exact_values(dm: Settings) -> None:
    rows = [
        daily_row("t1", "s1", D1, net_sales="123456789012.34"),
        daily_row("t1", "s2", D1, visitors=None, passersby=None, has_counter=False),
    ]
    assert export_partition(dm, "mart_store_daily", D1, mart_table(rows)) == 2

    got = read_all(dm)
    assert len(got) == 2
    first, second = got
    assert first["net_sales"] == Decimal("123456789012.34")
    assert isinstance(first["net_sales"], Decimal)
    assert first["net_sales_incl_tax"] == Decimal("135802467913.57")
    assert first["business_date"] == D1
    assert first["transactions"] == 10
    assert first["atv"] == pytest.approx(12345678901.234)
    assert first["has_pos"] is True
    assert second["visitors"] is None
    assert second["conversion_rate"] is None
    assert second["has_counter"] is False
    assert second["net_sales"] == Decimal("10000.00")


def test_reexport_replaces_partition_and_is_idempotent(dm: Settings) -> None:
    day1 = mart_table([daily_row("t1", "s1", D1), daily_row("t1", "s2", D1)])
    day2 = mart_table([daily_row("t1", "s1", D2, net_sales="1.00")])
    export_partition(dm, "mart_store_daily", D1, day1)
    export_partition(dm, "mart_store_daily", D2, day2)
    before = read_all(dm)

    assert export_partition(dm, "mart_store_daily", D1, day1) == 2
    assert read_all(dm) == before

    # A rerun with fewer rows removes the stale one and leaves the other date alone.
    fixed = mart_table([daily_row("t1", "s1", D1, net_sales="5.50")])
    assert export_partition(dm, "mart_store_daily", D1, fixed) == 1
    after = read_all(dm)
    assert [(r["store_id"], r["business_date"], r["net_sales"]) for r in after] == [
        ("s1", D1, Decimal("5.50")),
        ("s1", D2, Decimal("1.00")),
    ]


def test_empty_partition_clears_the_date(dm: Settings) -> None:
    export_partition(dm, "mart_store_daily", D1, mart_table([daily_row("t1", "s1", D1)]))
    assert export_partition(dm, "mart_store_daily", D1, mart_table([])) == 0
    assert read_all(dm) == []


def test_tenant_scoped_export_keeps_other_tenants(dm: Settings) -> None:
    both = mart_table([daily_row("t1", "s1", D1), daily_row("t2", "s9", D1)])
    export_partition(dm, "mart_store_daily", D1, both)
    only_t1 = mart_table([daily_row("t1", "s1", D1, net_sales="7.00")])
    export_partition(dm, "mart_store_daily", D1, only_t1, tenant_id="t1")
    got = {(r["tenant_id"], r["store_id"]): r["net_sales"] for r in read_all(dm)}
    assert got == {("t1", "s1"): Decimal("7.00"), ("t2", "s9"): Decimal("10000.00")}


def test_failed_export_leaves_previous_rows(dm: Settings) -> None:
    export_partition(dm, "mart_store_daily", D1, mart_table([daily_row("t1", "s1", D1)]))
    before = read_all(dm)
    dup = mart_table([daily_row("t1", "s1", D1), daily_row("t1", "s1", D1)])
    with pytest.raises(BadInput, match="repeats the key"):
        export_partition(dm, "mart_store_daily", D1, dup)
    assert read_all(dm) == before


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([daily_row("t1", "s1", D2)], {}, "business_date 2026-10-06, outside the partition"),
        ([daily_row("t2", "s1", D1)], {"tenant_id": "t1"}, "belongs to tenant 't2', not 't1'"),
        ([daily_row("t1", "s1", D1) | {"atv": float("inf")}], {}, "non-finite atv"),
        ([daily_row("t1", None, D1)], {}, "null key column"),  # type: ignore[arg-type]
    ],
)
def test_rejects_rows_outside_the_partition(
    settings: Settings, rows: list[dict[str, object]], kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        export_partition(settings, "mart_store_daily", D1, mart_table(rows), **kwargs)


def test_rejects_unknown_table_and_wrong_columns(settings: Settings) -> None:
    table = mart_table([daily_row("t1", "s1", D1)])
    with pytest.raises(BadInput, match="unknown datamart table 'mart_nope'"):
        export_partition(settings, "mart_nope", D1, table)
    with pytest.raises(BadInput, match=r"missing columns \['units'\], unexpected columns \['x'\]"):
        export_partition(
            settings,
            "mart_store_daily",
            D1,
            table.drop_columns(["units"]).append_column("x", pa.array([1])),
        )
    wrong_type = table.set_column(
        table.schema.get_field_index("net_sales"), "net_sales", pa.array(["abc"])
    )
    with pytest.raises(BadInput, match="cannot be cast"):
        export_partition(settings, "mart_store_daily", D1, wrong_type)


def test_columns_in_another_order_are_accepted(settings: Settings) -> None:
    table = mart_table([daily_row("t1", "s1", D1)])
    reordered = table.select(list(reversed(table.column_names)))
    assert export_partition(settings, "mart_store_daily", D1, reordered) == 1


def test_sync_stores_replaces_each_listed_tenant(dm: Settings) -> None:
    class StoreInfo:  # an object, like the control plane returns
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    first = [
        {"tenant_id": "t1", "store_id": "s1", "code": "001", "name": "Shibuya",
         "industry": "apparel", "region": "kanto", "timezone": "Asia/Tokyo",
         "floor_area_m2": Decimal("120.5")},
        {"tenant_id": "t1", "store_id": "s2", "code": "002", "name": "Umeda",
         "industry": "apparel", "region": "kansai", "timezone": None, "floor_area_m2": None},
        StoreInfo(tenant_id="t2", id="s9", code="A", name="Other", industry=None, region=None,
                  timezone="Asia/Tokyo", floor_area_m2=80),
    ]  # fmt: skip
    assert sync_stores(dm, first) == 3
    engine = get_engine(dm.datamart_db_url)
    stores, total = list_stores(engine, "t1")
    assert total == 2
    assert stores[0].floor_area_m2 == 120.5
    assert stores[1].timezone == dm.default_timezone

    # t1 now has only s2: s1 disappears, t2 (not listed) is untouched.
    sync_stores(dm, [first[1]])
    assert [s.store_id for s in list_stores(engine, "t1")[0]] == ["s2"]
    assert [s.store_id for s in list_stores(engine, "t2")[0]] == ["s9"]


def test_sync_stores_rejects_incomplete_and_duplicate_stores(settings: Settings) -> None:
    with pytest.raises(BadInput, match="has no name"):
        sync_stores(settings, [{"tenant_id": "t1", "store_id": "s1", "code": "1"}])
    store = {"tenant_id": "t1", "store_id": "s1", "code": "1", "name": "n"}
    with pytest.raises(BadInput, match="listed twice"):
        sync_stores(settings, [store, store])


def test_ensure_schema_is_idempotent(settings: Settings) -> None:
    engine = get_engine(settings.datamart_db_url)
    ensure_schema(engine)
    ensure_schema(engine)
    assert get_engine(settings.datamart_db_url) is engine
    assert set(sa.inspect(engine).get_table_names()) >= {"mart_store_daily", dm_stores.name}


def test_sqlite_fast_path_stores_what_sqlalchemy_stores() -> None:
    # export._insert formats dates and timestamps with Arrow on SQLite; the text must be the
    # one SQLAlchemy's own bind processors produce, or reads and deletes by date would miss.
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    import pyarrow as pa
    from sqlalchemy.dialects import sqlite

    from tenpo.datamart.export import _sqlite_text_values

    dialect = sqlite.dialect()
    stamps = [
        datetime(2026, 10, 24, 4, 12, 29, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        None,
    ]
    process = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    want = [process(v) for v in stamps]
    assert want[1] == "2026-01-02 03:04:05.123456"
    for tz in ("UTC", None):
        values = [v.replace(tzinfo=None) if v and tz is None else v for v in stamps]
        ts = pa.chunked_array([pa.array(values, pa.timestamp("us", tz=tz))])
        assert _sqlite_text_values(ts).to_pylist() == want
    # Another zone: its wall time, as the datetime's own strftime prints it.
    tokyo = ZoneInfo("Asia/Tokyo")
    local = [v.astimezone(tokyo) for v in stamps[:3] if v]
    ts = pa.chunked_array([pa.array(local, pa.timestamp("us", tz="Asia/Tokyo"))])
    assert _sqlite_text_values(ts).to_pylist() == [process(v) for v in local]
    assert _sqlite_text_values(ts).to_pylist()[0] == "2026-10-24 13:12:29.000000"
    days = [D1, date(1, 1, 1), date(1969, 12, 31), None]
    process = sa.Date().dialect_impl(dialect).bind_processor(dialect)
    got = _sqlite_text_values(pa.chunked_array([pa.array(days, pa.date32())])).to_pylist()
    assert got == [process(v) for v in days]


def test_export_into_an_injected_engine(settings: Settings) -> None:
    engine = sa.create_engine(f"sqlite:///{settings.data_dir / 'injected.db'}")
    rows = [daily_row("t1", "s1", D1), daily_row("t1", "s2", D1)]
    assert export_partition(engine, "mart_store_daily", D1, mart_table(rows)) == 2
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mart_store_daily)).scalar() == 2
    assert sync_stores(engine, [], tenants=["t1"]) == 0  # the same engine, no settings
    engine.dispose()


def test_video_kpis_are_exported_and_read_back_per_day(dm: Settings) -> None:
    """The daily mart's PersonID KPIs and quality columns go into the datamart and come back
    from the read side as they were; a week of those days has them null (not a sum)."""
    video = {
        "unique_visitors": 7,
        "repeat_visitors": 2,
        "repeat_rate": 2 / 7,
        "dwell_time_median_s": 612.5,
        "dwell_time_mean_s": 700.25,
        "open_visits": 1,
        "visitors_source": "counter",
        "has_video": True,
        "counter_complete": True,
        "video_complete": False,
    }
    no_video = dict.fromkeys(video) | {"has_video": False, "visitors_source": "counter"}
    export_partition(dm, "mart_store_daily", D1, mart_table([daily_row("t1", "s1", D1) | video]))
    export_partition(dm, "mart_store_daily", D2, mart_table([daily_row("t1", "s1", D2) | no_video]))
    engine = get_engine(dm.datamart_db_url)
    first, second = store_kpis(engine, "t1", "s1", D1, D2)
    assert {k: getattr(first, k) for k in video} == video
    assert {k: getattr(second, k) for k in video} == no_video
    (week,) = store_kpis(engine, "t1", "s1", D1, D2, "week")
    assert (week.unique_visitors, week.dwell_time_median_s, week.open_visits) == (None, None, 1)
    assert (week.has_video, week.video_complete, week.counter_complete) == (False, False, True)
    assert store_kpis(engine, "t2", "s1", D1, D2) == []  # another tenant sees nothing
