"""tenpo's DuckDB backend: epoch seconds of instants floored, without the cast through the zone.

Spark (``UNIX_TIMESTAMP``), BigQuery (``UNIX_SECONDS``) and pandas (integer nanoseconds ``//``)
all give the whole second at or before the instant; ``CAST(EPOCH(ts) AS BIGINT)`` rounds to the
nearest one instead, so 09:59:59.6 landed in hour 10 and a dwell could be off by a second.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from tenpo.warehouse import duckdb_ibis

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTANTS = [
    datetime(2026, 11, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 15, 400_000, tzinfo=UTC),
    datetime(2026, 11, 2, 0, 59, 59, 600_000, tzinfo=UTC),  # 09:59:59.6 JST: still second 59
    datetime(2026, 11, 2, 1, 0, 0, 999_999, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),  # before the epoch: negative
    datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # -0.5 s: second -1, not 0
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # -1 µs: second -1
    datetime(1901, 5, 6, 7, 8, 9, 100_000, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # far out: exact, not via a double
    None,
]


def floor_seconds(ts: datetime | None) -> int | None:
    """Whole seconds at or before ``ts`` since the epoch, in exact integer arithmetic."""
    return None if ts is None else (ts - EPOCH) // timedelta(seconds=1)


@pytest.mark.parametrize("tz", ["UTC", None])
def test_epoch_seconds_floor_like_spark_bigquery_and_pandas(tz: str | None) -> None:
    values = INSTANTS if tz else [None if v is None else v.replace(tzinfo=None) for v in INSTANTS]
    table = pa.table({"ts": pa.array(values, pa.timestamp("us", tz=tz))})
    t = ibis.memtable(table)
    expr = t.select(s=t.ts.epoch_seconds().cast("int64"))
    con = duckdb_ibis.connect()
    sql = con.compile(expr)
    assert "AS TIMESTAMP)" not in sql  # no per-row conversion through the session zone
    got = con.to_pyarrow(expr)["s"].to_pylist()
    assert got == [floor_seconds(v) for v in INSTANTS]
    assert got[2:7] == [1_793_581_199, 1_793_581_200, -1, -1, -1]
    # pandas (nanoseconds floor-divided) agrees where it can represent the instant.
    ns = pd.Series(values[:-2], dtype=f"datetime64[us, {tz}]" if tz else "datetime64[us]")
    assert got[:-2] == (ns.astype("int64") // 1_000_000).tolist()


def test_nanosecond_timestamps_floor_too() -> None:
    values = [-1, -1_500, 1_999_999_999, None]  # ns since the epoch
    table = pa.table({"ts": pa.array(values, pa.timestamp("ns"))})
    t = ibis.memtable(table)
    got = duckdb_ibis.connect().to_pyarrow(t.select(s=t.ts.epoch_seconds().cast("int64")))
    assert got["s"].to_pylist() == [-1, -1, 1, None]


def test_the_session_zone_is_utc() -> None:
    con = duckdb_ibis.connect()
    assert con.raw_sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
