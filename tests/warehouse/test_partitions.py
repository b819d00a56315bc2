"""write_partition / write_dates: whole-partition replacement in a tmp lake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tenpo.core.errors import BadInput, NotFound
from tenpo.lake import Lake, open_lake
from tenpo.warehouse import list_partitions, write_dates, write_partition
from tests.jobs.factories import DAY, NEXT_DAY, pos_row, pos_table

TABLE = "raw_pos_transactions"
PREFIX = f"tables/{TABLE}/tenant=t1/date={DAY.isoformat()}/"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return open_lake(str(tmp_path / "lake"))


def read(lake: Lake, key: str) -> pa.Table:
    return pq.read_table(lake.path(key))


def test_replaces_every_old_part_of_the_partition(lake: Lake) -> None:
    lake.put(PREFIX + "streamer-part.parquet", b"old bytes")
    key = write_partition(
        lake, TABLE, "t1", DAY, pos_table([pos_row("S1", "1", "sale", "1", "1", 1)])
    )
    assert key is not None and key.startswith(PREFIX) and key.endswith(".parquet")
    assert lake.list(PREFIX) == [key]
    assert read(lake, key)["transaction_id"].to_pylist() == ["1"]
    key2 = write_partition(
        lake, TABLE, "t1", DAY, pos_table([pos_row("S1", "2", "sale", "1", "1", 1)])
    )
    assert lake.list(PREFIX) == [key2]
    assert read(lake, key2)["transaction_id"].to_pylist() == ["2"]


def test_identical_rewrite_lands_on_the_same_key(lake: Lake) -> None:
    rows = pos_table([pos_row("S1", "1", "sale", "1", "1", 1)])
    first = write_partition(lake, TABLE, "t1", DAY, rows)
    data = lake.get(first or "")
    assert write_partition(lake, TABLE, "t1", DAY, rows) == first
    assert lake.get(first or "") == data
    assert lake.list(PREFIX) == [first]


def test_other_partitions_are_untouched(lake: Lake) -> None:
    write_partition(lake, TABLE, "t1", DAY, pos_table([pos_row("S1", "1", "sale", "1", "1", 1)]))
    write_partition(
        lake,
        TABLE,
        "t1",
        NEXT_DAY,
        pos_table([pos_row("S1", "1", "sale", "1", "1", 1, day=NEXT_DAY)]),
    )
    write_partition(lake, TABLE, "t1", DAY, pos_table([pos_row("S1", "2", "sale", "1", "1", 1)]))
    assert list_partitions(lake, TABLE) == {("t1", DAY), ("t1", NEXT_DAY)}


def test_empty_rows_remove_the_partition(lake: Lake) -> None:
    write_partition(lake, TABLE, "t1", DAY, pos_table([pos_row("S1", "1", "sale", "1", "1", 1)]))
    assert write_partition(lake, TABLE, "t1", DAY, pos_table([])) is None
    assert lake.list(PREFIX) == []


def test_rows_of_another_tenant_or_date_are_refused(lake: Lake) -> None:
    with pytest.raises(BadInput, match=r"tenant=t1 carry tenant_id \['t2'\]"):
        write_partition(
            lake,
            TABLE,
            "t1",
            DAY,
            pos_table([pos_row("S1", "1", "sale", "1", "1", 1, tenant="t2")]),
        )
    with pytest.raises(BadInput, match="date=2026-11-02 carry business_date"):
        write_partition(
            lake,
            TABLE,
            "t1",
            DAY,
            pos_table([pos_row("S1", "1", "sale", "1", "1", 1, day=NEXT_DAY)]),
        )
    assert lake.list("tables/") == []


def test_rows_not_fitting_the_schema_are_refused(lake: Lake) -> None:
    rows = pos_table([pos_row("S1", "1", "sale", "1", "1", 1)])
    with pytest.raises(BadInput, match=r"missing \['vendor'\]"):
        write_partition(lake, TABLE, "t1", DAY, rows.drop_columns(["vendor"]))
    with pytest.raises(BadInput, match=r"unexpected \['extra'\]"):
        write_partition(lake, TABLE, "t1", DAY, rows.append_column("extra", pa.array([1])))
    bad_type = rows.set_column(
        rows.schema.get_field_index("item_count"), "item_count", pa.array(["many"])
    )
    with pytest.raises(BadInput, match="cannot be cast"):
        write_partition(lake, TABLE, "t1", DAY, bad_type)
    with pytest.raises(NotFound, match="no warehouse table 'nope'"):
        write_partition(lake, "nope", "t1", DAY, rows)


def test_write_dates_splits_by_tenant_and_removes_stale_tenants(lake: Lake) -> None:
    write_partition(
        lake, TABLE, "t3", DAY, pos_table([pos_row("S1", "1", "sale", "1", "1", 1, tenant="t3")])
    )
    write_partition(
        lake,
        TABLE,
        "t3",
        date(2026, 1, 1),
        pos_table([pos_row("S1", "1", "sale", "1", "1", 1, tenant="t3", day=date(2026, 1, 1))]),
    )
    rows = pos_table(
        [
            pos_row("S1", "1", "sale", "1", "1", 1, tenant="t1"),
            pos_row("S2", "1", "sale", "1", "1", 1, tenant="t1"),
            pos_row("S1", "1", "sale", "1", "1", 1, tenant="t2", day=NEXT_DAY),
        ]
    )
    written = write_dates(lake, TABLE, [DAY, NEXT_DAY], rows)
    assert written == {("t1", DAY): 2, ("t2", NEXT_DAY): 1, ("t3", DAY): 0}
    # t3's partition of a date outside the range is kept.
    assert list_partitions(lake, TABLE) == {("t1", DAY), ("t2", NEXT_DAY), ("t3", date(2026, 1, 1))}
    with pytest.raises(BadInput, match="outside the dates written"):
        write_dates(lake, TABLE, [DAY], rows)
