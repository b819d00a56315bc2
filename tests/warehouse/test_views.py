"""`tenpo warehouse views|sql`: a DuckDB file of views over every table, ad-hoc SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.errors import ConfigError
from tenpo.core.settings import Settings
from tenpo.lake import open_lake
from tenpo.warehouse import TABLES, Warehouse, write_partition
from tenpo.warehouse.views import write_views
from tests.jobs.factories import DAY, fixture_pos, on_day, pos_row, pos_table

runner = CliRunner()


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    lake = open_lake(settings.lake_root)
    pos = fixture_pos()
    write_partition(lake, "raw_pos_transactions", "t1", DAY, on_day(pos, DAY))
    # The same receipt re-sent in another object: the views deduplicate as the jobs do.
    dup = pos_table([pos_row("S1", "1", "sale", "1000.00", "1100", 3, source="obj-2")])
    lake.put(
        f"tables/raw_pos_transactions/tenant=t1/date={DAY.isoformat()}/dup.parquet",
        _parquet(dup),
    )
    return settings


def _parquet(table: object) -> bytes:
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_views_file_exposes_every_table_deduplicated(loaded: Settings, tmp_path: Path) -> None:
    out = tmp_path / "analyst.duckdb"
    result = runner.invoke(app, ["warehouse", "views", "--out", str(out)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out), read_only=True)
    try:
        names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert set(TABLES) <= names
        count, sales = con.execute(
            "SELECT count(*), sum(total_excl_tax) FROM raw_pos_transactions WHERE kind = 'sale'"
        ).fetchone()
        assert count == 4  # 4 distinct sale receipts; the re-sent one counts once
        assert con.execute("SELECT count(*) FROM mart_store_daily").fetchone() == (0,)
    finally:
        con.close()
    # New data shows up without rebuilding the file (views read the files at query time).
    lake = open_lake(loaded.lake_root)
    extra = pos_table([pos_row("S7", "9", "sale", "1.00", "1", 1)])
    lake.put(
        f"tables/raw_pos_transactions/tenant=t1/date={DAY.isoformat()}/x.parquet", _parquet(extra)
    )
    con = duckdb.connect(str(out), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw_pos_transactions").fetchone() == (
            7,
        )  # 6 receipts + the new one
    finally:
        con.close()


def test_sql_command_prints_rows_and_names_bad_queries(loaded: Settings) -> None:
    result = runner.invoke(
        app,
        [
            "warehouse",
            "sql",
            "SELECT store_id, count(*) AS n FROM raw_pos_transactions GROUP BY 1 ORDER BY 1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "S1" in result.output and "2 row(s)" in result.output
    bad = runner.invoke(app, ["warehouse", "sql", "SELECT * FROM nope"])
    assert bad.exit_code == 2
    assert "warehouse query failed" in bad.output and "nope" in bad.output


def test_remote_lake_is_refused(tmp_path: Path) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    assert MemoryFileSystem.protocol
    wh = Warehouse(open_lake("memory://tenpo-views-test"))
    with pytest.raises(ConfigError, match="need a local lake"):
        write_views(wh, tmp_path / "x.duckdb")
    wh.close()
