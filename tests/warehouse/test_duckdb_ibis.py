"""tenpo's DuckDB backend: epoch seconds of instants without the cast through the session zone."""

from __future__ import annotations

from datetime import UTC, datetime

import ibis
import pyarrow as pa

from tenpo.warehouse import duckdb_ibis

INSTANTS = [
    datetime(2026, 11, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 15, 400_000, tzinfo=UTC),  # a fraction rounds as before
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),  # before the epoch: negative
    None,
]


def test_instants_give_the_same_epoch_seconds_as_ibis_own_sql_in_a_utc_session() -> None:
    table = pa.table({"ts": pa.array(INSTANTS, pa.timestamp("us", tz="UTC"))})
    t = ibis.memtable(table)
    expr = t.select(s=t.ts.epoch_seconds().cast("int64"))
    ours = duckdb_ibis.connect()
    stock = ibis.duckdb.connect()
    stock.raw_sql("SET TimeZone = 'UTC'")
    sql = ours.compile(expr)
    assert "EPOCH(" in sql and "AS TIMESTAMP)" not in sql  # no per-row zone conversion
    assert "AS TIMESTAMP)" in stock.compile(expr)
    got, want = ours.to_pyarrow(expr).to_pylist(), stock.to_pyarrow(expr).to_pylist()
    assert got == want
    assert [r["s"] for r in got] == [1_793_577_600, 1_774_747_815, -1, None]


def test_the_session_zone_is_utc_and_naive_timestamps_keep_ibis_rule() -> None:
    con = duckdb_ibis.connect()
    assert con.raw_sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    t = ibis.memtable(pa.table({"ts": pa.array([datetime(2026, 1, 1)], pa.timestamp("us"))}))
    expr = t.select(s=t.ts.epoch_seconds())
    assert con.compile(expr) == ibis.duckdb.connect().compile(expr)
    assert con.to_pyarrow(expr)["s"].to_pylist() == [1_767_225_600]
