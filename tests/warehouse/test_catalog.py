"""Warehouse over real Parquet partitions in a tmp lake (DuckDB)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tenpo.core.errors import BadInput, ConfigError, LakeError, NotFound
from tenpo.lake import Lake, open_lake
from tenpo.warehouse import TABLES, Warehouse, write_partition
from tenpo.warehouse.schemas import RAW_POS_TRANSACTIONS
from tests.jobs.factories import DAY, NEXT_DAY, pos_row, pos_table


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return open_lake(str(tmp_path / "lake"))


@pytest.fixture
def wh(lake: Lake) -> Iterator[Warehouse]:
    with Warehouse(lake) as warehouse:
        yield warehouse


def put_part(lake: Lake, table: str, tenant: str, day: date, name: str, rows: pa.Table) -> None:
    """A part written the way the streamer does: one more file in the partition."""
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    lake.put(
        f"tables/{table}/tenant={tenant}/date={day.isoformat()}/{name}.parquet", buf.getvalue()
    )


def test_empty_lake_exposes_every_table_empty_with_its_schema(wh: Warehouse) -> None:
    for name, schema in TABLES.items():
        got = wh.table(name).to_pyarrow()
        assert got.num_rows == 0, name
        assert got.schema.equals(schema), name


def test_reads_written_partitions_with_contract_types(lake: Lake, wh: Warehouse) -> None:
    put_part(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        "a",
        pos_table([pos_row("S1", "1", "sale", "10.50", "11", 1)]),
    )
    put_part(
        lake,
        "raw_pos_transactions",
        "0042",  # numeric-looking tenant must stay a string
        NEXT_DAY,
        "a",
        pos_table([pos_row("S2", "1", "sale", "20.00", "22", 2, tenant="0042", day=NEXT_DAY)]),
    )
    got = wh.table("raw_pos_transactions").order_by("store_id").to_pyarrow()
    assert got.schema.equals(RAW_POS_TRANSACTIONS)
    rows = got.to_pylist()
    assert [(r["tenant_id"], r["business_date"]) for r in rows] == [("t1", DAY), ("0042", NEXT_DAY)]
    assert rows[0]["total_excl_tax"] == Decimal("10.50")
    assert rows[0]["ts"].utcoffset().total_seconds() == 0


def test_files_appearing_after_first_read_are_seen(lake: Lake, wh: Warehouse) -> None:
    assert wh.table("raw_pos_transactions").count().execute() == 0
    put_part(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        "a",
        pos_table([pos_row("S1", "1", "sale", "1", "1", 1)]),
    )
    assert wh.table("raw_pos_transactions").count().execute() == 1
    put_part(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        "b",
        pos_table([pos_row("S1", "2", "sale", "1", "1", 1)]),
    )
    assert wh.table("raw_pos_transactions").count().execute() == 2


def test_duplicates_across_parts_are_read_once_deterministically(lake: Lake, wh: Warehouse) -> None:
    first = pos_row("S1", "1", "sale", "100.00", "110", 1, source="obj-b")
    resent = pos_row("S1", "1", "sale", "100.00", "110", 1, source="obj-a")
    other = pos_row("S1", "2", "sale", "5.00", "5", 1, source="obj-b")
    put_part(lake, "raw_pos_transactions", "t1", DAY, "load-1", pos_table([first, other]))
    put_part(lake, "raw_pos_transactions", "t1", DAY, "load-2", pos_table([resent, resent]))
    got = wh.table("raw_pos_transactions").order_by("transaction_id").to_pyarrow().to_pylist()
    assert [r["transaction_id"] for r in got] == ["1", "2"]
    # The smallest source_object_id wins, whatever the file order.
    assert got[0]["source_object_id"] == "obj-a"
    assert wh.sql("SELECT count(*) AS n FROM raw_pos_transactions")["n"].to_pylist() == [2]


def test_marts_are_not_deduplicated_but_read_as_written(lake: Lake, wh: Warehouse) -> None:
    assert "mart_store_daily" in TABLES
    assert wh.table("mart_store_daily").count().execute() == 0


def test_dates_restrict_the_read_to_those_partitions(lake: Lake, wh: Warehouse) -> None:
    put_part(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        "a",
        pos_table([pos_row("S1", "1", "sale", "1", "1", 1)]),
    )
    put_part(
        lake,
        "raw_pos_transactions",
        "t2",
        NEXT_DAY,
        "a",
        pos_table([pos_row("S1", "1", "sale", "1", "1", 1, tenant="t2", day=NEXT_DAY)]),
    )
    only = wh.table("raw_pos_transactions", dates=[NEXT_DAY]).to_pyarrow()
    assert only["tenant_id"].to_pylist() == ["t2"]
    assert wh.table("raw_pos_transactions", dates=[]).count().execute() == 0
    assert wh.table("raw_pos_transactions", dates=[date(2020, 1, 1)]).count().execute() == 0


def test_column_missing_from_older_files_reads_as_null(lake: Lake, wh: Warehouse) -> None:
    old = pos_table([pos_row("S1", "1", "sale", "1", "1", 1)]).drop_columns(["vendor"])
    put_part(lake, "raw_pos_transactions", "t1", DAY, "old", old)
    got = wh.table("raw_pos_transactions").to_pyarrow()
    assert got["vendor"].to_pylist() == [None]
    assert got.schema.equals(RAW_POS_TRANSACTIONS)


def test_write_partition_output_reads_back(lake: Lake, wh: Warehouse) -> None:
    rows = pos_table(
        [pos_row("S1", "1", "sale", "1", "1", 1), pos_row("S1", "2", "return", "-1", "-1", -1)]
    )
    write_partition(lake, "raw_pos_transactions", "t1", DAY, rows)
    assert wh.table("raw_pos_transactions").count().execute() == 2


def test_sql_runs_queries_and_names_bad_ones(lake: Lake, wh: Warehouse) -> None:
    put_part(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        "a",
        pos_table([pos_row("S1", "1", "sale", "7.25", "8", 1)]),
    )
    got = wh.sql("SELECT sum(total_excl_tax) AS s FROM raw_pos_transactions")
    assert got["s"].to_pylist() == [Decimal("7.25")]
    with pytest.raises(BadInput, match="warehouse query failed"):
        wh.sql("SELECT * FROM no_such_table")


def test_unknown_table_and_backend_are_named(lake: Lake, wh: Warehouse) -> None:
    with pytest.raises(NotFound, match="no warehouse table 'raw_nope'"):
        wh.table("raw_nope")
    with pytest.raises(ConfigError, match="backend 'spark' is not supported"):
        Warehouse(lake, backend="spark")


def test_unreadable_part_raises_lake_error_naming_the_file(lake: Lake, wh: Warehouse) -> None:
    lake.put(f"tables/raw_iot_counts/tenant=t1/date={DAY.isoformat()}/broken.parquet", b"nope")
    with pytest.raises(LakeError, match="raw_iot_counts.*broken.parquet"):
        wh.table("raw_iot_counts")


def test_a_correction_moving_a_receipt_to_another_date_wins_in_a_read_of_some_dates(
    lake: Lake, wh: Warehouse
) -> None:
    from datetime import UTC, datetime

    old = pos_row("S1", "1", "sale", "100.00", "110", 1, source="obj-a")
    old["received_at"] = datetime(2026, 10, 1, tzinfo=UTC)
    new = pos_row("S1", "1", "sale", "90.00", "99", 1, day=NEXT_DAY, source="obj-b")
    new["received_at"] = datetime(2026, 10, 2, tzinfo=UTC)
    kept = pos_row("S1", "2", "sale", "5.00", "5", 1, source="obj-a")
    kept["received_at"] = old["received_at"]
    put_part(lake, "raw_pos_transactions", "t1", DAY, "a", pos_table([old, kept]))
    put_part(lake, "raw_pos_transactions", "t1", NEXT_DAY, "b", pos_table([new]))
    # Ranked only over the transactions of the dates read, but over every date of those.
    day = wh.table("raw_pos_transactions", dates=[DAY]).to_pyarrow()
    assert day["transaction_id"].to_pylist() == ["2"]
    nxt = wh.table("raw_pos_transactions", dates=[NEXT_DAY]).to_pyarrow()
    assert nxt["total_excl_tax"].to_pylist() == [Decimal("90.00")]
    both = wh.table("raw_pos_transactions").order_by("transaction_id").to_pyarrow()
    assert both["transaction_id"].to_pylist() == ["1", "2"]


def test_a_cached_table_collected_after_close_raises_nothing(lake: Lake) -> None:
    import gc
    import warnings

    wh = Warehouse(lake)
    cached = wh.materialized(wh.table("raw_pos_transactions"))
    assert wh.to_arrow(cached).num_rows == 0
    wh.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del cached
        gc.collect()


def test_duckdb_memory_limit_from_settings_spills_under_the_data_dir(
    lake: Lake, tmp_path: Path
) -> None:
    from pydantic import ValidationError

    from tenpo.core.settings import Settings
    from tenpo.warehouse import open_warehouse

    write_partition(
        lake,
        "raw_pos_transactions",
        "t1",
        DAY,
        pos_table([pos_row("S1", "T1", "sale", "1", "1", 1)]),
    )

    def setting(wh: object, name: str) -> str:
        rows = wh.sql(f"SELECT current_setting('{name}') AS v")  # type: ignore[attr-defined]
        return str(rows["v"][0].as_py())

    cfg = Settings(data_dir=tmp_path, lake_url=str(lake.path("")), duckdb_memory_limit="256MB")
    with open_warehouse(cfg) as wh:
        assert setting(wh, "memory_limit") == "244.1 MiB"  # 256 MB in DuckDB's units
        assert setting(wh, "temp_directory") == str(tmp_path / "duckdb_tmp")
        got = wh.to_arrow(wh.table("raw_pos_transactions"))
        assert got["transaction_id"].to_pylist() == ["T1"]
    with open_warehouse(cfg.model_copy(update={"duckdb_memory_limit": None})) as wh:
        assert setting(wh, "memory_limit") != "244.1 MiB"  # DuckDB's own default
    with pytest.raises(ValidationError, match="duckdb_memory_limit"):
        Settings(data_dir=tmp_path, duckdb_memory_limit="lots")


def test_a_temp_directory_or_memory_limit_with_a_quote_is_a_literal_not_sql(
    lake: Lake, tmp_path: Path
) -> None:
    """A data dir with a quote in its name must neither break the warehouse nor inject SQL."""
    spill = tmp_path / "it's'; SET threads = 1; --" / "duckdb_tmp"
    wh = Warehouse(lake, temp_directory=spill)
    try:
        rows = wh.sql("SELECT current_setting('temp_directory') AS v")
        assert rows["v"][0].as_py() == str(spill)
    finally:
        wh.close()
    with pytest.raises(duckdb.Error, match="memory"):  # one bad value, not a second statement
        Warehouse(lake, memory_limit="1GB'; SET threads = 1; --")


def test_pos_versions_ranked_only_where_contested_give_the_base_class_rows(
    lake: Lake, wh: Warehouse
) -> None:
    """The DuckDB read ranks only transactions with several versions; its rows equal the base
    class's ranking of every version: re-sends in one date and across dates, undated versions,
    ties broken by source then file, the same object in two parts, a null store id."""
    from datetime import UTC, datetime

    from tenpo.warehouse.catalog import BaseWarehouse

    def at(hour: int | None) -> datetime | None:
        return None if hour is None else datetime(2026, 10, 1, hour, tzinfo=UTC)

    def row(tx: str, excl: str, hour: int | None, source: str, day: date = DAY) -> dict:
        r = pos_row("S1", tx, "sale", excl, excl, 1, day=day, source=source)
        r["received_at"] = at(hour)
        return r

    null_store = row("9", "9.00", 1, "obj-a")
    null_store["store_id"] = None
    null_store_later = row("9", "9.50", 2, "obj-b")
    null_store_later["store_id"] = None
    put_part(lake, "raw_pos_transactions", "t1", DAY, "a", pos_table([
        row("1", "1.00", 1, "obj-a"),  # corrected later the same day (part b)
        row("2", "2.00", None, "obj-a"),  # undated: loses to the dated re-send
        row("3", "3.00", 5, "obj-c"),  # tie on received_at: obj-b wins
        row("4", "4.00", 1, "obj-a"),  # moved to the next day by a later correction
        row("5", "5.00", 1, "obj-a"),  # only version
        row("6", "6.00", 3, "obj-d"),  # the same object in two parts: the first file wins
        null_store,
    ]))  # fmt: skip
    put_part(lake, "raw_pos_transactions", "t1", DAY, "b", pos_table([
        row("1", "1.10", 2, "obj-b"),
        row("2", "2.10", 1, "obj-b"),
        row("3", "3.10", 5, "obj-b"),
        null_store_later,
    ]))  # fmt: skip
    put_part(lake, "raw_pos_transactions", "t1", DAY, "c", pos_table([
        row("6", "6.10", 3, "obj-d"),
    ]))  # fmt: skip
    put_part(lake, "raw_pos_transactions", "t1", NEXT_DAY, "d", pos_table([
        row("4", "4.10", 2, "obj-e", day=NEXT_DAY),
        row("7", "7.00", 1, "obj-e", day=NEXT_DAY),
    ]))  # fmt: skip
    schema = TABLES["raw_pos_transactions"]
    for dates in ([DAY], [NEXT_DAY], None):
        got = wh.table("raw_pos_transactions", dates=dates).to_pyarrow()
        scan = wh._scan_dates("raw_pos_transactions", schema, dates)
        base = BaseWarehouse._latest_pos_version(wh, "raw_pos_transactions", scan, dates)
        want = base.select(*schema.names).to_pyarrow()
        if dates is not None:
            # The base's read of some dates dropped a transaction with a null key part (its
            # semi join on the keys never matches null) that its read of every date keeps;
            # this read keeps it in both.
            got = got.filter(pc.is_valid(got["store_id"]))
        order = [("transaction_id", "ascending"), ("total_excl_tax", "ascending")]
        assert got.sort_by(order).equals(want.sort_by(order)), dates
    day = wh.table("raw_pos_transactions", dates=[DAY]).order_by("transaction_id").to_pyarrow()
    assert day["total_excl_tax"].to_pylist() == [
        Decimal(v) for v in ("1.10", "2.10", "3.10", "5.00", "6.00", "9.50")
    ]


def test_counts_read_of_some_dates_applies_both_rules_as_a_read_of_every_date(
    lake: Lake, wh: Warehouse
) -> None:
    """A read of some dates computes a table's repeated keys once (a temp table) and, when
    there are none, is the scan itself; it keeps the rows a read of every date keeps."""
    from tests.jobs.factories import count_row, counts_table

    put_part(lake, "raw_iot_counts", "t1", DAY, "a", counts_table([
        count_row("S1", "entrance", 1, minute=0, source="obj-b"),
        count_row("S1", "entrance", 2, minute=1, source="obj-b"),
    ]))  # fmt: skip
    clean = wh.table("raw_iot_counts", dates=[DAY]).order_by("seq").to_pyarrow()
    assert clean["count_in"].to_pylist() == [1, 2]
    put_part(lake, "raw_iot_counts", "t1", DAY, "b", counts_table([
        # the same interval re-sent by an earlier object: its row wins (natural key)
        count_row("S1", "entrance", 10, minute=0, source="obj-a"),
        # seq 1 sent again by a later object with other content: the first object's counts
        {**count_row("S1", "entrance", 20, minute=2, source="obj-c"), "seq": 1},
    ]))  # fmt: skip
    for dates in ([DAY], None):
        got = wh.table("raw_iot_counts", dates=dates).order_by("seq").to_pyarrow()
        assert got["count_in"].to_pylist() == [10, 2], dates
        assert got["source_object_id"].to_pylist() == ["obj-a", "obj-b"], dates


def test_materialized_read_without_repeats_is_the_scan_and_with_them_a_temp_table(
    lake: Lake, wh: Warehouse
) -> None:
    from tests.jobs.factories import count_row, counts_table

    put_part(lake, "raw_pos_transactions", "t1", DAY, "a", pos_table([
        pos_row("S1", "1", "sale", "1.00", "1", 1), pos_row("S1", "2", "sale", "2.00", "2", 1),
    ]))  # fmt: skip
    put_part(lake, "raw_iot_counts", "t1", DAY, "a", counts_table([count_row("S1", "entrance", 3)]))
    pos = wh.table("raw_pos_transactions", dates=[DAY]).select("transaction_id", "total_excl_tax")
    counts = wh.table("raw_iot_counts", dates=[DAY]).select("count_in")
    assert wh.materialized(pos) is pos and wh.materialized(counts) is counts
    assert sorted(pos.to_pyarrow()["transaction_id"].to_pylist()) == ["1", "2"]
    # Receipt 1 sent again by another object: the read ranks it, into a temp table.
    fixed = pos_row("S1", "1", "sale", "1.50", "1", 1, source="obj-2")
    put_part(lake, "raw_pos_transactions", "t1", DAY, "b", pos_table([fixed]))
    again = wh.table("raw_pos_transactions", dates=[DAY]).select("transaction_id", "total_excl_tax")
    cached = wh.materialized(again)
    assert cached is not again
    got = cached.order_by("transaction_id").to_pyarrow()["total_excl_tax"].to_pylist()
    assert got == [Decimal("1.00"), Decimal("2.00")]  # both undated: the smaller source wins
