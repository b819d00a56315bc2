"""Writes into the datamart: mart partitions (replaced whole) and the store list."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.datamart._engine import get_engine
from tenpo.datamart.schema import MART_SCHEMAS, dm_stores, ensure_schema

logger = logging.getLogger(__name__)

_STORE_FIELDS = ("code", "name", "industry", "region", "timezone", "floor_area_m2")


def _engine(db: Engine | Settings) -> Engine:
    """``db`` itself, or the process's engine of ``db.datamart_db_url``."""
    return db if isinstance(db, Engine) else get_engine(db.datamart_db_url)


def export_partition(
    db: Engine | Settings,
    table: str,
    business_date: date,
    rows: pa.Table,
    *,
    tenant_id: str | None = None,
) -> int:
    """Replace ``table``'s rows of ``business_date`` with ``rows`` in one transaction.

    ``db`` is the datamart's engine (opened once per process by the caller, e.g.
    ``TenpoResource.datamart_engine()``), or settings naming it. With ``tenant_id`` only
    that tenant's rows of the date are replaced. Returns the rows
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
    engine = _engine(db)
    ensure_schema(engine)
    try:
        with engine.begin() as conn:
            delete = target.delete().where(target.c.business_date == business_date)
            if tenant_id is not None:
                delete = delete.where(target.c.tenant_id == tenant_id)
            removed = conn.execute(delete).rowcount
            if records.num_rows:
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
        records.num_rows,
    )
    return records.num_rows


def sync_stores(
    db: Engine | Settings,
    stores: Iterable[Mapping[str, Any] | object],
    *,
    tenants: Iterable[str] | None = None,
    exclusive: bool = False,
    default_timezone: str | None = None,
) -> int:
    """Replace, for every tenant present in ``stores`` (and in ``tenants``), its ``dm_stores`` rows.

    Each store is a mapping or an object with tenant_id, store_id (or id), code, name,
    industry, region, timezone and floor_area_m2. A tenant named in ``tenants`` without any
    store ends up with none; with ``exclusive`` the rows of every other tenant are removed too
    (the control plane is the whole truth). ``db`` as for :func:`export_partition`; a store
    without a timezone gets ``default_timezone`` (default: the settings', else Asia/Tokyo).
    Returns the stores written.
    """
    zone = default_timezone or (db.default_timezone if isinstance(db, Settings) else "Asia/Tokyo")
    records = [_store_record(s, zone) for s in stores]
    keys = [(r["tenant_id"], r["store_id"]) for r in records]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise BadInput(f"store {dup[1]!r} of tenant {dup[0]!r} is listed twice")
    listed = sorted({r["tenant_id"] for r in records} | set(tenants or ()))
    engine = _engine(db)
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
) -> pa.Table:
    """The partition's rows in the mart's schema, after checking they belong to it.

    Checked column-wise (Arrow compute), so a partition of a million rows costs milliseconds;
    the first offending row is named.
    """
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
    if rows.num_rows == 0:
        return rows
    days = rows["business_date"]
    outside = pc.fill_null(pc.not_equal(days, pa.scalar(business_date, days.type)), True)
    if (i := _first(outside)) is not None:
        raise BadInput(
            f"{table} row {i} has business_date {days[i].as_py()}, "
            f"outside the partition {business_date}",
            table=table,
        )
    if tenant_id is not None:
        other = pc.fill_null(pc.not_equal(rows["tenant_id"], tenant_id), True)
        if (i := _first(other)) is not None:
            raise BadInput(
                f"{table} row {i} belongs to tenant {rows['tenant_id'][i].as_py()!r}, "
                f"not {tenant_id!r}",
                table=table,
            )
    for name in key_names:
        if (i := _first(pc.is_null(rows[name]))) is not None:
            raise BadInput(f"{table} row {i} has a null key column ({key_names})", table=table)
    counted = (
        rows.select(key_names).group_by(key_names, use_threads=False).aggregate([([], "count_all")])
    )
    repeated = counted.filter(pc.greater(counted["count_all"], 1))
    if repeated.num_rows:
        key = {k: repeated[k][0].as_py() for k in key_names}
        raise BadInput(f"{table} row repeats the key {key}", table=table)
    for f in schema:
        if pa.types.is_floating(f.type):
            column = rows[f.name]
            bad = pc.and_kleene(pc.is_valid(column), pc.invert(pc.is_finite(column)))
            if (i := _first(bad)) is not None:
                # The KPI contract: a ratio with a zero denominator is null, never NaN or inf.
                raise BadInput(
                    f"{table} row {i} has non-finite {f.name} ({column[i].as_py()})",
                    table=table,
                )
    return rows


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    return int(hits[0].as_py()) if len(hits) else None


def _insert(conn: Connection, target: sa.Table, schema: pa.Schema, rows: pa.Table) -> None:
    names = schema.names
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        # psycopg adapts Decimal, date and datetime itself.
        columns = [rows[n].to_pylist() for n in names]
        _copy_postgres(conn, target, names, zip(*columns, strict=True))
        return
    # Column by column through each type's own bind processor, then one driver executemany:
    # the same stored values as ``conn.execute(target.insert(), dicts)`` at a fraction of
    # SQLAlchemy's per-row cost.
    dialect = conn.dialect
    columns = []
    for name in names:
        column = rows[name]
        if dialect.name == "sqlite" and _sqlite_text(column.type):
            # SQLAlchemy's SQLite storage format, written by Arrow (checked equal in tests).
            columns.append(_sqlite_text_values(column).to_pylist())
            continue
        values = column.to_pylist()
        process = target.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns.append([process(v) for v in values] if process else values)
    quote = dialect.identifier_preparer.quote
    marks = ", ".join(["?"] * len(names)) if dialect.paramstyle == "qmark" else None
    if marks is None:
        conn.execute(target.insert(), rows.to_pylist())
        return
    statement = (
        f"INSERT INTO {quote(target.name)} ({', '.join(quote(n) for n in names)}) VALUES ({marks})"
    )
    conn.exec_driver_sql(statement, list(zip(*columns, strict=True)))


def _sqlite_text_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates as ``YYYY-MM-DD``, microsecond timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` (the
    wall time of their zone), as SQLAlchemy's SQLite types store them.

    A cast to string prints exactly that for dates and for naive or UTC timestamps (the UTC
    wall time once the zone is dropped), about 30 times faster than ``strftime``; other zones
    go through ``strftime``, which prints their local wall time.
    """
    kind = column.type
    if pa.types.is_date(kind):
        return column.cast(pa.string())
    if isinstance(kind, pa.TimestampType) and kind.tz in (None, "UTC", "+00:00", "Z"):
        return column.cast(pa.timestamp(kind.unit)).cast(pa.string())
    return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")


def _sqlite_text(arrow_type: pa.DataType) -> bool:
    """Dates, and microsecond timestamps (whose ``%S`` Arrow prints as ``SS.ffffff``)."""
    if pa.types.is_date32(arrow_type):
        return True
    return pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us"


def _copy_postgres(
    conn: Connection, target: sa.Table, names: list[str], records: Iterable[tuple[Any, ...]]
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
            copy.write_row(record)


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
