"""Every KPI job compiles to BigQuery (and DuckDB) SQL from unbound tables of the contract.

Spark runs the same jobs in test_spark.py (the Spark compiler needs a live session).
"""

from __future__ import annotations

import ibis
import pytest

from tenpo.jobs import store_daily, store_hourly, store_visits
from tenpo.jobs.timezones import OFFSETS_SCHEMA
from tenpo.warehouse.schemas import (
    MART_STORE_VISITS,
    RAW_IOT_COUNTS,
    RAW_POS_TRANSACTIONS,
    RAW_VISITOR_EVENTS,
)


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
