"""The same KPI job code on PySpark (local mode) gives the same rows as on DuckDB.

Runs with ``TENPO_TEST_SPARK=1`` and the ``spark`` extra installed (``uv sync --extra spark``;
Java 17), which ``make test`` (and so CI) sets up; a bare ``pytest`` skips it, because starting
the JVM and running the jobs takes ~1 min on a 2-core machine. ``make test-spark`` runs it alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tenpo.jobs import store_daily, store_hourly, store_offsets, store_visits
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tests.jobs.test_visits_hourly import (
    DAY,
    STAFF,
    fixture_counts,
    fixture_events,
    fixture_pos,
    fractional_events,
    fractional_pos,
)

if os.environ.get("TENPO_TEST_SPARK") != "1":
    pytest.skip(
        "Spark test is opt-in: TENPO_TEST_SPARK=1 (make test-spark)", allow_module_level=True
    )
pytest.importorskip("pyspark")

pytestmark = [
    pytest.mark.slow,
    # PySpark 4.3 warns about pandas 3 on import and conversion; not actionable here.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("tenpo-jobs-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .getOrCreate()
    )
    yield session
    session.stop()


def inputs(tmp: Path) -> dict[str, pa.Table]:
    return {
        # With store C's instants between whole seconds (09:59:59.6, a 10:00:00.9-10:00:02.1
        # dwell): Spark truncates them to the second, and so must tenpo's DuckDB.
        "events": pa.concat_tables([fixture_events(), fractional_events()]),
        "pos": pa.concat_tables([fixture_pos(), fractional_pos()]),
        "counts": fixture_counts(),
        "staff": STAFF,
        "offsets": store_offsets([("t1", s, "Asia/Tokyo") for s in "ABC"], [DAY]),
    }


def run_jobs(con: Any, tables: dict[str, ibis.Table]) -> dict[str, pa.Table]:
    visits = store_visits(tables["events"], staff=tables["staff"], offsets=tables["offsets"])
    visit_rows = con.to_pyarrow(visits)
    v = tables["visits_from"](visit_rows)
    return {
        "visits": visit_rows,
        "daily": con.to_pyarrow(store_daily(tables["pos"], tables["counts"], v, days=[DAY])),
        "hourly": con.to_pyarrow(
            store_hourly(tables["pos"], tables["counts"], v, offsets=tables["offsets"])
        ),
    }


def normalised(table: pa.Table) -> list[tuple[Any, ...]]:
    def norm(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 9)
        if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
            return value.replace(tzinfo=None)
        return value

    return sorted((tuple(norm(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def test_jobs_on_spark_equal_duckdb(spark: Any, tmp_path: Path) -> None:
    data = inputs(tmp_path)
    duck = connect_duckdb()  # as the warehouse opens DuckDB
    duck_tables: dict[str, Any] = {k: ibis.memtable(v) for k, v in data.items()}
    duck_tables["visits_from"] = ibis.memtable
    expected = run_jobs(duck, duck_tables)
    duck.disconnect()

    con = ibis.pyspark.connect(spark)
    spark_tables: dict[str, Any] = {}
    for name, table in data.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        spark_tables[name] = con.read_parquet(str(path), table_name=f"in_{name}")

    def visits_from(rows: pa.Table) -> ibis.Table:
        path = tmp_path / "visits.parquet"
        pq.write_table(rows, path)
        return con.read_parquet(str(path), table_name="in_visits")

    spark_tables["visits_from"] = visits_from
    got = run_jobs(con, spark_tables)
    for name in ("visits", "daily", "hourly"):
        assert got[name].column_names == expected[name].column_names, name
        assert normalised(got[name]) == normalised(expected[name]), name
    assert expected["daily"].num_rows == 3 and expected["visits"].num_rows == 10
    c_visits = {
        r["person_id"]: r["dwell_s"] for r in expected["visits"].to_pylist() if r["store_id"] == "C"
    }
    assert c_visits == {"p1": 2, "p2": 1801}
    c_hours = [r["hour"] for r in expected["hourly"].to_pylist() if r["store_id"] == "C"]
    assert sorted(c_hours) == [9, 10]
