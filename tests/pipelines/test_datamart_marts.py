"""The hourly and visit marts in the datamart: SQLite and PostgreSQL, replaced per date."""

from __future__ import annotations

from collections.abc import Iterator

import ibis
import pytest
import sqlalchemy as sa

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines, export_partition, get_engine
from tenpo.datamart import mart_store_hourly as hourly_table
from tenpo.datamart import mart_store_visits as visits_table
from tenpo.jobs import store_hourly, store_visits
from tenpo.warehouse.duckdb_ibis import connect as connect_duckdb
from tests.jobs.test_visits_hourly import (
    DAY,
    STAFF,
    fixture_counts,
    fixture_events,
    fixture_pos,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def datamart(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        settings = settings.model_copy(update={"datamart_url": url})
    yield settings
    dispose_engines()


def marts() -> tuple[object, object]:
    con = connect_duckdb()  # as the warehouse opens DuckDB
    visits = con.to_pyarrow(
        store_visits(ibis.memtable(fixture_events()), staff=ibis.memtable(STAFF), days=[DAY])
    )
    hourly = con.to_pyarrow(
        store_hourly(
            ibis.memtable(fixture_pos()), ibis.memtable(fixture_counts()), ibis.memtable(visits)
        )
    )
    con.disconnect()
    return visits, hourly


def test_visits_and_hours_round_trip_and_replace_per_date(datamart: Settings) -> None:
    visits, hourly = marts()
    assert export_partition(datamart, "mart_store_visits", DAY, visits) == 6
    assert export_partition(datamart, "mart_store_hourly", DAY, hourly) == hourly.num_rows
    # Re-export: the date's rows are replaced, not duplicated.
    assert export_partition(datamart, "mart_store_visits", DAY, visits) == 6
    engine = get_engine(datamart.datamart_db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(visits_table.c.person_id, visits_table.c.dwell_s, visits_table.c.entry_hour)
            .where(visits_table.c.store_id == "A")
            .order_by(visits_table.c.person_id)
        ).all()
        hours = conn.execute(
            sa.select(hourly_table.c.hour, hourly_table.c.visitors, hourly_table.c.conversion_rate)
            .where(hourly_table.c.store_id == "A")
            .order_by(hourly_table.c.hour)
        ).all()
    assert [tuple(r) for r in rows] == [("p1", 600, 10), ("p2", 1800, 10), ("p3", None, 11),
                                        ("p5", 2400, 13)]  # fmt: skip
    assert [tuple(r)[:2] for r in hours] == [(10, 5), (11, 0), (13, 0)]
    assert hours[1][2] is None  # zero visitors: null conversion, stored as NULL


def test_a_visit_of_another_date_is_refused(datamart: Settings) -> None:
    visits, _ = marts()
    with pytest.raises(BadInput, match="outside the partition"):
        export_partition(datamart, "mart_store_visits", DAY.replace(day=1), visits)
