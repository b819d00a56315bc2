"""Every KPI job compiles to BigQuery (and DuckDB) SQL from unbound tables of the contract, and
the BigQuery SQL gives the DuckDB rows when run (through sqlglot) on the jobs' fixture data.

Spark runs the same jobs in test_spark.py (the Spark compiler needs a live session).
"""

from __future__ import annotations

import math
from decimal import Decimal

import duckdb
import ibis
import pyarrow as pa
import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from tenpo.jobs import store_daily, store_hourly, store_offsets, store_visits
from tenpo.jobs.timezones import OFFSETS_SCHEMA
from tenpo.warehouse.schemas import (
    MART_STORE_VISITS,
    RAW_IOT_COUNTS,
    RAW_POS_TRANSACTIONS,
    RAW_VISITOR_EVENTS,
)
from tests.jobs.test_visits_hourly import DAY, STAFF, fixture_counts, fixture_events, fixture_pos


def unbound() -> dict[str, ibis.Table]:
    return {
        "pos": ibis.table(ibis.schema(RAW_POS_TRANSACTIONS), name="raw_pos_transactions"),
        "counts": ibis.table(ibis.schema(RAW_IOT_COUNTS), name="raw_iot_counts"),
        "events": ibis.table(ibis.schema(RAW_VISITOR_EVENTS), name="raw_visitor_events"),
        "visits": ibis.table(ibis.schema(MART_STORE_VISITS), name="mart_store_visits"),
        "offsets": ibis.table(ibis.schema(OFFSETS_SCHEMA), name="store_offsets"),
        "staff": ibis.table({"tenant_id": "string", "person_id": "string"}, name="staff"),
    }


def jobs() -> dict[str, ibis.Table]:
    t = unbound()
    return {
        "store_visits": store_visits(t["events"], staff=t["staff"], offsets=t["offsets"]),
        "store_daily": store_daily(t["pos"], t["counts"], t["visits"]),
        "store_hourly": store_hourly(t["pos"], t["counts"], t["visits"], offsets=t["offsets"]),
    }


@pytest.mark.parametrize("dialect", ["bigquery", "duckdb"])
def test_every_job_compiles(dialect: str) -> None:
    for name, expr in jobs().items():
        sql = ibis.to_sql(expr, dialect=dialect)
        assert "SELECT" in sql.upper(), name
        if dialect == "bigquery":
            # BigQuery spelling, not DuckDB's: backquoted identifiers, no DuckDB-only functions.
            assert "`tenant_id`" in sql and "epoch_us" not in sql.lower(), name


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    """Rows with engine-neutral values: BigQuery has one integer type (INT64) and other decimal
    scales, so numbers compare as floats; NaN as None."""

    def norm(value: object) -> object:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float | Decimal):
            number = float(value)
            return None if math.isnan(number) else round(number, 9)
        return value

    return sorted((tuple(norm(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def test_bigquery_sql_gives_the_duckdb_rows() -> None:
    """The BigQuery SQL is not only well-formed: read back by sqlglot's BigQuery parser and run
    (transpiled to DuckDB) on the jobs' fixture data, it gives the rows the DuckDB SQL gives.

    This is the nearest check to a BigQuery run on a machine without BigQuery: it catches SQL
    that compiles but means something else (types, NULL and division rules, window frames) as
    far as sqlglot translates BigQuery's semantics; what it cannot catch is a difference only the
    real service has. ``IEEE_DIVIDE`` (BigQuery's float division) has no DuckDB name, so it is
    defined as a macro with BigQuery's meaning (x / 0 is ±inf or NaN, never an error).
    """
    data = {
        "raw_visitor_events": fixture_events(),
        "raw_pos_transactions": fixture_pos(),
        "raw_iot_counts": fixture_counts(),
        "staff": STAFF,
        "store_offsets": store_offsets(
            [("t1", "A", "Asia/Tokyo"), ("t1", "B", "Asia/Tokyo")], [DAY]
        ),
    }
    t = {name: ibis.table(ibis.schema(table.schema), name=name) for name, table in data.items()}
    visits = store_visits(t["raw_visitor_events"], staff=t["staff"], offsets=t["store_offsets"])
    visit_table = ibis.table(visits.schema(), name="mart_store_visits")
    exprs = {
        "mart_store_visits": visits,
        "store_daily": store_daily(t["raw_pos_transactions"], t["raw_iot_counts"], visit_table),
        "store_hourly": store_hourly(
            t["raw_pos_transactions"],
            t["raw_iot_counts"],
            visit_table,
            offsets=t["store_offsets"],
        ),
    }
    con = duckdb.connect()
    con.execute("CREATE MACRO ieee_divide(a, b) AS CAST(a AS DOUBLE) / CAST(b AS DOUBLE)")
    for name, table in data.items():
        con.register(name, table)
    for name, expr in exprs.items():
        bigquery_sql = ibis.to_sql(expr, dialect="bigquery")
        sqlglot.parse_one(bigquery_sql, read="bigquery", error_level=ErrorLevel.RAISE)
        native = con.sql(ibis.to_sql(expr, dialect="duckdb")).to_arrow_table()
        via_bigquery = con.sql(
            sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")[0]
        ).to_arrow_table()
        assert native.num_rows > 0, name
        assert via_bigquery.column_names == native.column_names, name
        assert _rows(via_bigquery) == _rows(native), name
        if name == "mart_store_visits":
            con.register(name, native)
