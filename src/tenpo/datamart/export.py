"""Writes into the datamart: mart partitions (replaced whole) and the store list."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.datamart._engine import get_engine
from tenpo.datamart.schema import MART_SCHEMAS, dm_stores, ensure_schema

logger = logging.getLogger(__name__)

_STORE_FIELDS = ("code", "name", "industry", "region", "timezone", "floor_area_m2")


def export_partition(
    settings: Settings,
    table: str,
    business_date: date,
    rows: pa.Table,
    *,
    tenant_id: str | None = None,
) -> int:
    """Replace ``table``'s rows of ``business_date`` with ``rows`` in one transaction.

    With ``tenant_id`` only that tenant's rows of the date are replaced. Returns the rows
    written; exporting the same partition again leaves the same rows. Raises
    :class:`BadInput` when ``rows`` do not fit the mart's schema or partition.
    """
    if table not in MART_SCHEMAS:
        raise BadInput(
            f"unknown datamart table {table!r}; expected one of {', '.join(sorted(MART_SCHEMAS))}",
            table=table,
        )
    target, schema = MART_SCHEMAS[table]
    records = _records(target, schema, rows, business_date, tenant_id)
    engine = get_engine(settings.datamart_db_url)
    ensure_schema(engine)
    try:
        with engine.begin() as conn:
            delete = target.delete().where(target.c.business_date == business_date)
            if tenant_id is not None:
                delete = delete.where(target.c.tenant_id == tenant_id)
            removed = conn.execute(delete).rowcount
            if records:
                _insert(conn, target, schema, records)
    except sa.exc.IntegrityError as exc:
        raise BadInput(
            f"{table} partition {business_date} has duplicate keys: {exc.orig}", table=table
        ) from exc
    logger.info(
        "datamart %s %s%s: replaced %d rows with %d",
        table,
        business_date,
        f" tenant={tenant_id}" if tenant_id else "",
        removed,
        len(records),
    )
    return len(records)


def sync_stores(
    settings: Settings,
    stores: Iterable[Mapping[str, Any] | object],
    *,
    tenants: Iterable[str] | None = None,
    exclusive: bool = False,
) -> int:
    """Replace, for every tenant present in ``stores`` (and in ``tenants``), its ``dm_stores`` rows.

    Each store is a mapping or an object with tenant_id, store_id (or id), code, name,
    industry, region, timezone and floor_area_m2. A tenant named in ``tenants`` without any
    store ends up with none; with ``exclusive`` the rows of every other tenant are removed too
    (the control plane is the whole truth). Returns the stores written.
    """
    records = [_store_record(s, settings.default_timezone) for s in stores]
    keys = [(r["tenant_id"], r["store_id"]) for r in records]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise BadInput(f"store {dup[1]!r} of tenant {dup[0]!r} is listed twice")
    listed = sorted({r["tenant_id"] for r in records} | set(tenants or ()))
    engine = get_engine(settings.datamart_db_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        if exclusive:
            removed = conn.execute(dm_stores.delete()).rowcount
        elif listed:
            removed = conn.execute(
                dm_stores.delete().where(dm_stores.c.tenant_id.in_(listed))
            ).rowcount
        else:
            removed = 0
        if records:
            conn.execute(dm_stores.insert(), records)
    logger.info(
        "datamart stores synced: %d stores of %d tenants (replaced %d rows)",
        len(records),
        len(listed),
        removed,
    )
    return len(records)


def _records(
    target: sa.Table,
    schema: pa.Schema,
    rows: pa.Table,
    business_date: date,
    tenant_id: str | None,
) -> list[dict[str, Any]]:
    """The partition's rows as dicts in the mart's schema, after checking they belong to it."""
    table = target.name
    key_names = [c.name for c in target.primary_key]
    if not isinstance(rows, pa.Table):
        raise BadInput(f"{table} rows must be a pyarrow.Table, got {type(rows).__name__}")
    expected, present = set(schema.names), set(rows.column_names)
    if expected != present:
        missing, extra = sorted(expected - present), sorted(present - expected)
        raise BadInput(
            f"{table} rows do not match its schema: "
            f"missing columns {missing or 'none'}, unexpected columns {extra or 'none'}",
            table=table,
        )
    try:
        rows = rows.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadInput(f"{table} rows cannot be cast to its schema: {exc}", table=table) from exc
    records = rows.to_pylist()
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    keys: set[tuple[Any, ...]] = set()
    for i, record in enumerate(records):
        if record["business_date"] != business_date:
            raise BadInput(
                f"{table} row {i} has business_date {record['business_date']}, "
                f"outside the partition {business_date}",
                table=table,
            )
        if tenant_id is not None and record["tenant_id"] != tenant_id:
            raise BadInput(
                f"{table} row {i} belongs to tenant {record['tenant_id']!r}, not {tenant_id!r}",
                table=table,
            )
        key = tuple(record[n] for n in key_names)
        if None in key:
            raise BadInput(f"{table} row {i} has a null key column ({key_names})", table=table)
        if key in keys:
            raise BadInput(
                f"{table} row {i} repeats the key {dict(zip(key_names, key, strict=True))}",
                table=table,
            )
        keys.add(key)
        for name in floats:
            value = record[name]
            if value is not None and not math.isfinite(value):
                # The KPI contract: a ratio with a zero denominator is null, never NaN or inf.
                raise BadInput(f"{table} row {i} has non-finite {name} ({value})", table=table)
    return records


def _insert(
    conn: Connection, target: sa.Table, schema: pa.Schema, records: list[dict[str, Any]]
) -> None:
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_postgres(conn, target, schema.names, records)
    else:
        conn.execute(target.insert(), records)


def _copy_postgres(
    conn: Connection, target: sa.Table, names: list[str], records: list[dict[str, Any]]
) -> None:
    """Bulk load with COPY on the transaction's own connection (several times faster)."""
    import psycopg
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(target.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for record in records:
            copy.write_row([record[n] for n in names])


def _store_record(store: Mapping[str, Any] | object, default_timezone: str) -> dict[str, Any]:
    def get(name: str) -> Any:
        if isinstance(store, Mapping):
            return store.get(name)
        return getattr(store, name, None)

    store_id = get("store_id") or get("id")
    record: dict[str, Any] = {"tenant_id": get("tenant_id"), "store_id": store_id}
    record.update({name: get(name) for name in _STORE_FIELDS})
    for required in ("tenant_id", "store_id", "code", "name"):
        if not record[required]:
            raise BadInput(f"store {store_id or store!r} has no {required}")
    record["timezone"] = record["timezone"] or default_timezone
    area = record["floor_area_m2"]
    record["floor_area_m2"] = None if area is None else float(area)
    return {k: str(v) if k in ("tenant_id", "store_id", "code") else v for k, v in record.items()}
