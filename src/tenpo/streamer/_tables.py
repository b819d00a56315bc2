"""Arrow helpers of the streamer: conform, dedupe, split into partitions, Parquet bytes, read."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tenpo.core.errors import BadInput
from tenpo.lake.base import Lake
from tenpo.lake.keys import table_prefix
from tenpo.warehouse.schemas import MART_TABLES, NATURAL_KEYS, RAW_TABLES

_INDEX = "__tenpo_row"


def conform(table_name: str, table: pa.Table, tenant_id: str) -> pa.Table:
    """``table`` in the exact schema of raw table ``table_name``, every row of ``tenant_id``.

    Raises :class:`BadInput` naming the problem: unknown table, missing column, a value that
    does not cast, a row without tenant or business date, or a row of another tenant.
    """
    schema = RAW_TABLES.get(table_name)
    if schema is None:
        raise BadInput(f"Pre-ETL produced unknown table {table_name!r}")
    present = set(table.column_names)
    missing = [name for name in schema.names if name not in present]
    if missing:
        raise BadInput(f"{table_name}: missing column(s) {', '.join(missing)}")
    out = table.select(schema.names)
    if not out.schema.equals(schema):
        try:
            out = out.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise BadInput(f"{table_name}: rows do not fit the table's schema: {exc}") from exc
    if out.num_rows == 0:
        return out
    for column in ("tenant_id", "business_date"):
        if out[column].null_count:
            raise BadInput(f"{table_name}: {out[column].null_count} row(s) without {column}")
    tenants = set(pc.unique(out["tenant_id"]).to_pylist())
    if tenants != {tenant_id}:
        others = sorted(t for t in tenants if t != tenant_id)
        raise BadInput(f"{table_name}: rows of tenant(s) {others} in an object of {tenant_id!r}")
    return out


def dedupe_first(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """``table`` without rows whose ``keys`` repeat an earlier row's (the first one is kept)."""
    if table.num_rows < 2 or not keys:
        return table
    indexed = table.select(list(keys)).append_column(
        _INDEX, pa.array(range(table.num_rows), pa.int64())
    )
    first = indexed.group_by(list(keys), use_threads=False).aggregate([(_INDEX, "min")])
    if first.num_rows == table.num_rows:
        return table
    keep = first[f"{_INDEX}_min"]
    return table.take(keep.take(pc.sort_indices(keep)))


VERSIONED_TABLES = ("raw_pos_transactions", "raw_pos_lines")
"""Tables whose repeated keys are versions (a corrected re-send), resolved when read."""


def dedupe_table(table_name: str, table: pa.Table) -> pa.Table:
    """Rows of raw table ``table_name`` deduplicated by its natural key, first kept.

    POS tables are kept as they are: two objects of one batch may hold two versions of a
    transaction, and the warehouse reads the one received last (docs/vendors.md).
    """
    if table_name in VERSIONED_TABLES:
        return table
    return dedupe_first(table, NATURAL_KEYS.get(table_name, ()))


def split_partitions(table: pa.Table) -> Iterator[tuple[str, date, pa.Table]]:
    """``(tenant_id, business_date, rows)`` for each partition present in ``table``, sorted by
    tenant and date; rows keep their relative order inside a partition.
    """
    if table.num_rows == 0:
        return
    names = pc.unique(table["tenant_id"])
    tenant = np.asarray(pc.index_in(table["tenant_id"], value_set=names).to_numpy(), np.int64)
    day = np.asarray(table["business_date"].cast(pa.int32()).to_numpy(), np.int64)
    change = np.flatnonzero((tenant[1:] != tenant[:-1]) | (day[1:] != day[:-1])) + 1
    if len(change) > _MAX_RUNS:
        yield from _sorted_partitions(table)
        return
    # A batch is a few objects, each of one tenant and mostly one date: its partitions are
    # runs of rows, put together by zero-copy slices instead of a sort and a copy of it all.
    starts = np.concatenate(([0], change)).tolist()
    ends = [*starts[1:], table.num_rows]
    runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for start, end in zip(starts, ends, strict=True):
        runs.setdefault((int(tenant[start]), int(day[start])), []).append((start, end - start))
    tenant_names = names.to_pylist()
    for t, d in sorted(runs, key=lambda k: (tenant_names[k[0]], k[1])):
        rows = pa.concat_tables([table.slice(start, n) for start, n in runs[t, d]])
        yield tenant_names[t], _EPOCH + timedelta(days=d), rows


_MAX_RUNS = 256
"""Above this many runs of rows of one partition, one sort and take beats the slices."""
_EPOCH = date(1970, 1, 1)


def _sorted_partitions(table: pa.Table) -> Iterator[tuple[str, date, pa.Table]]:
    order = pc.sort_indices(
        table, sort_keys=[("tenant_id", "ascending"), ("business_date", "ascending")]
    )
    ordered = table.take(order)
    # Groups of sorted rows, in order (single-threaded grouping keeps first-seen order): the
    # partition boundaries without a Python pass over every row.
    groups = (
        ordered.select(["tenant_id", "business_date"])
        .group_by(["tenant_id", "business_date"], use_threads=False)
        .aggregate([([], "count_all")])
    )
    start = 0
    for tenant, day, n in zip(
        groups["tenant_id"].to_pylist(),
        groups["business_date"].to_pylist(),
        groups["count_all"].to_pylist(),
        strict=True,
    ):
        yield tenant, day, ordered.slice(start, n)
        start += n


_REPEATING = frozenset(
    ("tenant_id", "store_id", "register_id", "business_date", "kind", "vendor", "line_no",
     "sku", "name", "tax_rate", "device_id", "line", "zone", "camera_id", "event", "status",
     "source_object_id", "received_at",
     # Few distinct values per part too: counter intervals (minutes of the day) and counts,
     # receipt amounts (prices) and item counts.
     "interval_start", "interval_end", "count_in", "count_out", "item_count",
     "total_excl_tax", "total_tax", "total_incl_tax")
)  # fmt: skip
"""Raw-table columns whose values repeat within a part: dictionary-encoded. The others
(ids, instants of single events) are mostly distinct, where building a dictionary only to
drop it costs time (the demo's parts encode ~10 % faster and ~5 % smaller). Dictionaries also
make reads cheaper: the daily KPI job on a bench day (1,000 stores, parts of 100k rows) spends
~20 % less CPU when the intervals, counts and amounts are dictionary-encoded, and those parts
encode no slower and are 15-30 % smaller."""


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as one Parquet file (zstd; dictionaries for the :data:`_REPEATING` columns)."""
    sink = io.BytesIO()
    dictionary = [name for name in table.column_names if name in _REPEATING]
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary)
    return sink.getvalue()


def read_table(lake: Lake, table: str, tenant: str | None = None) -> pa.Table:
    """Every row of ``table`` in ``lake`` (of one ``tenant`` when given).

    The result has the table's schema, also when no partition exists yet; an unknown table
    with no data raises :class:`BadInput`.
    """
    import pyarrow.dataset as ds  # slow to import; only readers need it

    schema = RAW_TABLES.get(table) or MART_TABLES.get(table)
    fs = lake.filesystem
    prefix = table_prefix(table) if tenant is None else table_prefix(table, tenant)
    path = fs._strip_protocol(lake.path(prefix)).rstrip("/")
    files: list[str] = []
    if fs.exists(path):
        # Hidden names (a writer's .tmp- files) are skipped below the table folder only: a
        # lake under a hidden folder (the default data dir .tenpo, absolute) holds tables too.
        files = [
            f for f in fs.find(path) if f.endswith(".parquet") and "/." not in f.removeprefix(path)
        ]
    if not files:
        if schema is None:
            raise BadInput(f"unknown table {table!r}")
        return schema.empty_table()
    # Hive partitioning parsed relative to the table folder; the files already carry
    # tenant_id and business_date, so the partition fields only serve the filter.
    partitioning = ds.partitioning(
        pa.schema([("tenant", pa.string()), ("date", pa.string())]), flavor="hive"
    )
    base = fs._strip_protocol(lake.path(table_prefix(table))).rstrip("/")
    dataset = ds.dataset(
        files, filesystem=fs, format="parquet", partitioning=partitioning, partition_base_dir=base
    )
    columns = schema.names if schema is not None else dataset.schema.names
    columns = [c for c in columns if c not in ("tenant", "date")]
    out = dataset.to_table(columns=columns)
    return out.cast(schema) if schema is not None else out
