"""store_daily against hand-computed KPIs, run on DuckDB through ibis.memtable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ibis
import pyarrow as pa
import pytest

from tenpo.core.errors import BadInput
from tenpo.jobs import store_daily
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tenpo.warehouse.schemas import MART_STORE_DAILY
from tests.jobs.factories import (
    DAY,
    NEXT_DAY,
    counts_table,
    fixture_counts,
    fixture_pos,
    pos_row,
    pos_table,
)


def run(pos: pa.Table, counts: pa.Table) -> tuple[pa.Table, dict[tuple[str, Any], dict[str, Any]]]:
    con = connect_duckdb()  # as the warehouse opens DuckDB
    try:
        out = con.to_pyarrow(store_daily(ibis.memtable(pos), ibis.memtable(counts)))
    finally:
        con.disconnect()
    rows = {(r["store_id"], r["business_date"]): r for r in out.to_pylist()}
    return out, rows


def test_output_has_the_mart_schema_exactly() -> None:
    out, _ = run(fixture_pos(), fixture_counts())
    assert out.schema.equals(MART_STORE_DAILY)


def test_one_row_per_store_date_from_either_source() -> None:
    _, rows = run(fixture_pos(), fixture_counts())
    assert sorted(rows) == [("S1", DAY), ("S1", NEXT_DAY), ("S2", DAY), ("S3", DAY)]


def test_store_with_returns_void_counter_and_passby() -> None:
    _, rows = run(fixture_pos(), fixture_counts())
    s1 = rows[("S1", DAY)]
    # sales 1000.00 + 500.50, return -200.00; the void (999.00) counts nowhere.
    assert s1["net_sales"] == Decimal("1300.50")
    assert s1["net_sales_incl_tax"] == Decimal("1430.00")
    assert s1["transactions"] == 1  # 2 sales - 1 return
    assert s1["units"] == 4  # 3 + 2 - 1
    assert s1["atv"] == pytest.approx(1300.50)
    assert s1["upt"] == pytest.approx(4.0)
    assert s1["visitors"] == 16  # entrance count_in 10 + 6; count_out and zone lines ignored
    # passby: both walking directions are people passing by: (120 + 95) + (80 + 70)
    assert s1["passersby"] == 365
    assert s1["capture_rate"] == pytest.approx(16 / 365)
    assert s1["conversion_rate"] == pytest.approx(1 / 16)
    assert s1["sales_per_visitor"] == pytest.approx(1300.50 / 16)
    assert (s1["has_pos"], s1["has_counter"]) == (True, True)


def test_store_with_pos_but_no_counter_has_null_traffic_kpis() -> None:
    _, rows = run(fixture_pos(), fixture_counts())
    s2 = rows[("S2", DAY)]
    assert s2["net_sales"] == Decimal("750.00")
    assert s2["net_sales_incl_tax"] == Decimal("810.00")
    assert (s2["transactions"], s2["units"]) == (2, 5)
    assert s2["atv"] == pytest.approx(375.0)
    assert s2["upt"] == pytest.approx(2.5)
    for kpi in ("visitors", "passersby", "capture_rate", "conversion_rate", "sales_per_visitor"):
        assert s2[kpi] is None, kpi
    assert (s2["has_pos"], s2["has_counter"]) == (True, False)


def test_zero_visitor_day_gives_null_ratios_not_zero_or_infinity() -> None:
    _, rows = run(fixture_pos(), fixture_counts())
    s3 = rows[("S3", DAY)]
    assert s3["visitors"] == 0
    assert s3["passersby"] == 40
    assert s3["capture_rate"] == pytest.approx(0.0)
    assert s3["conversion_rate"] is None
    assert s3["sales_per_visitor"] is None
    # No POS rows at all: sales are unknown, not zero.
    assert s3["net_sales"] is None and s3["transactions"] is None
    assert (s3["has_pos"], s3["has_counter"]) == (False, True)


def test_dates_are_separate_groups() -> None:
    _, rows = run(fixture_pos(), fixture_counts())
    nxt = rows[("S1", NEXT_DAY)]
    assert (nxt["net_sales"], nxt["transactions"], nxt["visitors"]) == (Decimal("80.00"), 1, None)


def test_void_only_day_is_present_with_zero_sales_and_null_atv() -> None:
    pos = pos_table([pos_row("S9", "1", "void", "100.00", "110", 2)])
    _, rows = run(pos, counts_table([]))
    s9 = rows[("S9", DAY)]
    assert (s9["net_sales"], s9["net_sales_incl_tax"]) == (Decimal("0.00"), Decimal("0.00"))
    assert (s9["transactions"], s9["units"]) == (0, 0)
    assert s9["atv"] is None and s9["upt"] is None
    assert s9["has_pos"] is True


def test_more_returns_than_sales_gives_negative_transactions() -> None:
    pos = pos_table(
        [
            pos_row("S1", "1", "return", "-100.00", "-110", -1),
            pos_row("S1", "2", "return", "-50.00", "-55", -2),
        ]
    )
    _, rows = run(pos, counts_table([]))
    s1 = rows[("S1", DAY)]
    assert (s1["net_sales"], s1["transactions"], s1["units"]) == (Decimal("-150.00"), -2, -3)
    assert s1["atv"] == pytest.approx(75.0)


def test_tenants_with_the_same_store_id_stay_apart() -> None:
    pos = pos_table(
        [
            pos_row("S1", "1", "sale", "100.00", "110", 1, tenant="t1"),
            pos_row("S1", "1", "sale", "300.00", "330", 1, tenant="t2"),
        ]
    )
    con = connect_duckdb()  # as the warehouse opens DuckDB
    out = con.to_pyarrow(store_daily(ibis.memtable(pos), ibis.memtable(counts_table([]))))
    by_tenant = {r["tenant_id"]: r["net_sales"] for r in out.to_pylist()}
    assert by_tenant == {"t1": Decimal("100.00"), "t2": Decimal("300.00")}


def test_empty_inputs_give_an_empty_mart() -> None:
    out, _ = run(pos_table([]), counts_table([]))
    assert out.num_rows == 0
    assert out.schema.equals(MART_STORE_DAILY)


def test_missing_input_column_is_named() -> None:
    pos = ibis.memtable(fixture_pos().drop_columns(["total_incl_tax"]))
    with pytest.raises(BadInput, match="pos_transactions lacks column.*total_incl_tax"):
        store_daily(pos, ibis.memtable(fixture_counts()))
    counts = ibis.memtable(fixture_counts().drop_columns(["line"]))
    with pytest.raises(BadInput, match="iot_counts lacks column.*line"):
        store_daily(ibis.memtable(fixture_pos()), counts)
