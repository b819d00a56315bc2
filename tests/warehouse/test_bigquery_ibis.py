"""The exact-median rule tenpo adds to Ibis' BigQuery compiler (tenpo.warehouse.bigquery_ibis)."""

from __future__ import annotations

import duckdb
import ibis
import pyarrow as pa
import sqlglot

import tenpo.warehouse.bigquery_ibis  # noqa: F401  (registers the rule)


def test_bigquery_median_is_exact_for_odd_even_empty_and_filtered_groups() -> None:
    data = pa.table(
        {
            "g": ["odd"] * 3 + ["even"] * 4 + ["none"] * 2 + ["one"],
            "x": pa.array([3, 1, 2, 40, 10, 30, 20, None, None, 7], pa.int64()),
        }
    )
    t = ibis.table(ibis.schema(data.schema), name="t")
    expr = t.group_by("g").aggregate(m=t.x.median(), big=t.x.median(where=t.x > 15))
    sql = ibis.to_sql(expr, dialect="bigquery")
    assert "ARRAY_AGG" in sql and "PERCENTILE" not in sql.upper()
    con = duckdb.connect()
    con.register("t", data)
    rows = con.sql(sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]).fetchall()
    got = {g: (m, big) for g, m, big in rows}
    assert got == {
        "odd": (2.0, None),
        "even": (25.0, 30.0),  # mean of the middle two; of 20, 30, 40 the middle one
        "none": (None, None),
        "one": (7.0, None),
    }
