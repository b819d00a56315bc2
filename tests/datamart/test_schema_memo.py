"""The per-engine memory of ``ensure_*_schema``: a datamart dropped under a running process
is rebuilt once the re-check is due, without a restart (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenpo.datamart import alerts as dm_alerts
from tenpo.datamart import dispose_engines, get_engine
from tenpo.datamart import forecast as dm_forecast
from tenpo.datamart import schema as dm_schema
from tests.datamart.factory import BACKENDS, temporary_database


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    with temporary_database(request.param, tmp_path, pg) as url:
        yield get_engine(url)
        dispose_engines()


@pytest.mark.parametrize(
    ("module", "ensure", "table"),
    [
        (dm_alerts, dm_alerts.ensure_alert_schema, "dm_alerts"),
        (dm_forecast, dm_forecast.ensure_forecast_schema, "mart_store_forecast"),
        (dm_schema, dm_schema.ensure_schema, "mart_store_daily"),
    ],
)
def test_dropped_tables_come_back_at_the_recheck(
    engine: sa.Engine, module: object, ensure: object, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = module._schema  # type: ignore[attr-defined]
    assert callable(ensure)
    ensure(engine)
    assert sa.inspect(engine).has_table(table)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    ensure(engine)  # remembered: not checked again before recheck_s
    assert not sa.inspect(engine).has_table(table)
    monkeypatch.setattr(memo, "recheck_s", 0.0)
    ensure(engine)  # due: found missing, created again
    assert sa.inspect(engine).has_table(table)
    ensure(engine)  # present: nothing to do
    assert sa.inspect(engine).has_table(table)
