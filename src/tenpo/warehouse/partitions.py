"""Whole-partition writes: a (table, tenant, date) partition is replaced, never appended to.

ARCHITECTURE principle 3: derived data is overwritten per partition, so re-running or
back-filling any date range is safe. :func:`write_partition` writes the new part first (an
atomic put whose name is the content hash, so an identical rerun lands on the same key) and
only then deletes the partition's other parts: a reader sees the old rows, the new ones or —
for the instant between the two steps — both, never none. A rerun repairs that state.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tenpo.core.errors import BadInput, NotFound
from tenpo.lake.base import Lake
from tenpo.lake.keys import parse_partition, table_key, table_prefix
from tenpo.warehouse.catalog import TABLES

__all__ = ["list_partitions", "write_dates", "write_partition"]

log = logging.getLogger(__name__)


def _conform(table: str, rows: pa.Table) -> pa.Table:
    """``rows`` with exactly the table's schema (column order and types); ``BadInput`` if not."""
    try:
        schema = TABLES[table]
    except KeyError:
        raise NotFound(f"no warehouse table {table!r}") from None
    missing = [n for n in schema.names if n not in rows.column_names]
    extra = [n for n in rows.column_names if n not in schema.names]
    if missing or extra:
        raise BadInput(
            f"rows for {table} do not match its schema: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    try:
        return rows.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadInput(f"rows for {table} cannot be cast to its schema: {exc}") from exc


def _check_partition(table: str, rows: pa.Table, tenant: str, day: date) -> None:
    if rows.num_rows == 0:
        return
    tenants = pc.unique(rows["tenant_id"]).to_pylist()
    if tenants != [tenant]:
        raise BadInput(f"rows for {table} partition tenant={tenant} carry tenant_id {tenants}")
    days = pc.unique(rows["business_date"]).to_pylist()
    if days != [day]:
        raise BadInput(
            f"rows for {table} partition date={day.isoformat()} carry business_date "
            f"{[d.isoformat() if d else d for d in days]}"
        )


def write_partition(lake: Lake, table: str, tenant: str, day: date, rows: pa.Table) -> str | None:
    """Replace partition ``(table, tenant, day)`` by ``rows``; the new part's key (None if empty).

    An empty ``rows`` removes the partition. ``BadInput`` when the rows do not fit the table's
    schema or belong to another tenant or date.
    """
    conformed = _conform(table, rows)
    _check_partition(table, conformed, tenant, day)
    prefix = table_prefix(table, tenant, day)
    old = [k for k in lake.list(prefix) if k.endswith(".parquet")]
    new_key: str | None = None
    if conformed.num_rows:
        buf = io.BytesIO()
        pq.write_table(conformed, buf, compression="zstd")
        data = buf.getvalue()
        part = "part-" + hashlib.sha256(data).hexdigest()[:24]
        new_key = table_key(table, tenant, day, part)
        lake.put(new_key, data)
    for key in old:
        if key != new_key:
            lake.delete(key)
    log.info(
        "wrote %s tenant=%s date=%s: %d rows (replaced %d part(s))",
        table,
        tenant,
        day,
        conformed.num_rows,
        len([k for k in old if k != new_key]),
    )
    return new_key


def list_partitions(
    lake: Lake, table: str, days: Iterable[date] | None = None
) -> set[tuple[str, date]]:
    """The (tenant, date) partitions of ``table`` that hold a part (only ``days``, if given)."""
    wanted = None if days is None else set(days)
    found: set[tuple[str, date]] = set()
    for key in lake.list(table_prefix(table)):
        if not key.endswith(".parquet"):
            continue
        tenant, day = parse_partition(key)
        if wanted is None or day in wanted:
            found.add((tenant, day))
    return found


def write_dates(
    lake: Lake, table: str, days: Iterable[date], rows: pa.Table
) -> dict[tuple[str, date], int]:
    """Replace every partition of ``table`` on ``days`` by ``rows`` (all tenants at once).

    Each (tenant, date) present in ``rows`` is rewritten; a partition of those days whose
    tenant has no row any more is removed. Returns the rows written per (tenant, date).
    ``BadInput`` when a row's business_date is not one of ``days``.
    """
    wanted = set(days)
    conformed = _conform(table, rows)
    tenants = conformed["tenant_id"]
    dates = conformed["business_date"]
    groups: dict[tuple[str, date], list[int]] = {}
    for i, (tenant, day) in enumerate(zip(tenants.to_pylist(), dates.to_pylist(), strict=True)):
        if day not in wanted:
            raise BadInput(f"a {table} row has business_date {day}, outside the dates written")
        if tenant is None:
            raise BadInput(f"a {table} row has no tenant_id")
        groups.setdefault((tenant, day), []).append(i)
    written: dict[tuple[str, date], int] = {}
    for (tenant, day), idx in sorted(groups.items()):
        write_partition(lake, table, tenant, day, conformed.take(idx))
        written[(tenant, day)] = len(idx)
    for tenant, day in sorted(list_partitions(lake, table, wanted) - groups.keys()):
        write_partition(lake, table, tenant, day, conformed.slice(0, 0))
        written[(tenant, day)] = 0
    return written
