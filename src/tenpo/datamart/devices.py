"""Device health in the datamart: ``mart_device_health``, replaced one business date at a time.

The table mirrors the lake mart of the same name (``tenpo.iot.health``); ``flags`` stays a
comma-separated string, as does ``incomplete_hours``. Reads are scoped to one tenant (and,
for store managers, their stores). :func:`store_day_health` gives the KPI reads the health of
each store-date: the union of its devices' flags and their incomplete local hours.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import BadInput
from tenpo.datamart._memo import SchemaMemo
from tenpo.datamart.schema import metadata
from tenpo.warehouse.schemas import MART_DEVICE_HEALTH

__all__ = [
    "DeviceHealthRecord",
    "device_health",
    "ensure_device_health",
    "export_device_health",
    "latest_health_date",
    "mart_device_health",
    "store_day_health",
]

logger = logging.getLogger(__name__)

mart_device_health = sa.Table(
    "mart_device_health",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("business_date", sa.Date(), primary_key=True),
    sa.Column("store_id", sa.String(64), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True)),
    sa.Column("interval_s", sa.BigInteger()),
    sa.Column("intervals_expected", sa.BigInteger()),
    sa.Column("intervals_received", sa.BigInteger()),
    sa.Column("intervals_missing", sa.BigInteger()),
    sa.Column("incomplete_hours", sa.Text()),
    sa.Column("heartbeats", sa.BigInteger()),
    sa.Column("clock_skew_s", sa.Float()),
    sa.Column("battery_min", sa.Float()),
    sa.Column("last_status", sa.Text()),
    sa.Column("flags", sa.Text(), nullable=False),
)
sa.Index(None, mart_device_health.c.business_date)
# Reads are per store and date range (the KPI read's device health): without this, a
# store-month read scanned every device row of those dates (a 1,000-store x 2-device year:
# 62,000 rows, 51 ms, for 62 answers).
sa.Index(
    None,
    mart_device_health.c.tenant_id,
    mart_device_health.c.store_id,
    mart_device_health.c.business_date,
)


@dataclass(frozen=True)
class DeviceHealthRecord:
    """One device's health on one business date."""

    device_id: str
    store_id: str
    business_date: date
    last_seen: datetime | None
    interval_s: int | None
    intervals_expected: int
    intervals_received: int
    intervals_missing: int
    incomplete_hours: tuple[str, ...]
    heartbeats: int
    clock_skew_s: float | None
    battery_min: float | None
    last_status: str | None
    flags: tuple[str, ...]


def _create_device_health(engine: Engine) -> None:
    mart_device_health.create(engine, checkfirst=True)
    have = {c["name"] for c in sa.inspect(engine).get_columns(mart_device_health.name)}
    with engine.begin() as conn:
        for column in mart_device_health.columns:
            if column.name not in have:  # a datamart created before the column existed
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {mart_device_health.name} ADD COLUMN {column.name} {kind}"
                    )
                )
    for index in mart_device_health.indexes:  # one newer than an existing table
        index.create(engine, checkfirst=True)


# Re-checked now and then like the other datamart tables: a datamart dropped and rebuilt
# under a running process (or a database re-created under the same URL) gets its table back.
_schema = SchemaMemo([mart_device_health.name], _create_device_health)


def ensure_device_health(engine: Engine) -> None:
    """Create the table when missing, and add columns and indexes newer than an existing
    table (once per engine, re-checked as :class:`~tenpo.datamart._memo.SchemaMemo` does)."""
    _schema.ensure(engine)


def export_device_health(engine: Engine, business_date: date, rows: pa.Table) -> int:
    """Replace every tenant's rows of ``business_date`` by ``rows``; returns rows written."""
    if set(rows.column_names) != set(MART_DEVICE_HEALTH.names):
        raise BadInput(
            f"mart_device_health rows have columns {sorted(rows.column_names)}, expected "
            f"{sorted(MART_DEVICE_HEALTH.names)}"
        )
    records = rows.select(MART_DEVICE_HEALTH.names).cast(MART_DEVICE_HEALTH).to_pylist()
    for i, r in enumerate(records):
        if r["business_date"] != business_date:
            raise BadInput(
                f"mart_device_health row {i} has business_date {r['business_date']}, "
                f"outside the partition {business_date}"
            )
        r["flags"] = r["flags"] or ""
        r["incomplete_hours"] = r["incomplete_hours"] or ""
    ensure_device_health(engine)
    t = mart_device_health
    with engine.begin() as conn:
        conn.execute(t.delete().where(t.c.business_date == business_date))
        if records:
            conn.execute(t.insert(), records)
    logger.info("datamart mart_device_health %s: %d rows", business_date, len(records))
    return len(records)


def latest_health_date(engine: Engine, tenant_id: str) -> date | None:
    """The newest business date with device health for ``tenant_id``."""
    ensure_device_health(engine)
    t = mart_device_health
    query = sa.select(sa.func.max(t.c.business_date)).where(t.c.tenant_id == tenant_id)
    with engine.connect() as conn:
        value: date | None = conn.execute(query).scalar_one_or_none()
    return value


def device_health(
    engine: Engine,
    tenant_id: str,
    business_date: date,
    *,
    store_ids: Collection[str] | None = None,
) -> list[DeviceHealthRecord]:
    """The tenant's devices' health on ``business_date`` (only ``store_ids``' when given)."""
    ensure_device_health(engine)
    t = mart_device_health
    query = sa.select(t).where(t.c.tenant_id == tenant_id, t.c.business_date == business_date)
    if store_ids is not None:
        query = query.where(t.c.store_id.in_(sorted(store_ids)))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.store_id, t.c.device_id)).mappings().all()
    return [_record(dict(r)) for r in rows]


def _record(r: dict[str, Any]) -> DeviceHealthRecord:
    seen = r["last_seen"]
    if seen is not None and seen.tzinfo is None:  # SQLite keeps no offset: values are UTC
        seen = seen.replace(tzinfo=UTC)
    return DeviceHealthRecord(
        device_id=r["device_id"],
        store_id=r["store_id"],
        business_date=r["business_date"],
        last_seen=seen,
        interval_s=r["interval_s"],
        intervals_expected=r["intervals_expected"] or 0,
        intervals_received=r["intervals_received"] or 0,
        intervals_missing=r["intervals_missing"] or 0,
        incomplete_hours=_split(r.get("incomplete_hours")),
        heartbeats=r["heartbeats"] or 0,
        clock_skew_s=r["clock_skew_s"],
        battery_min=r["battery_min"],
        last_status=r["last_status"],
        flags=_split(r["flags"]),
    )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(f for f in (value or "").split(",") if f)


@dataclass(frozen=True)
class StoreDayHealth:
    """Device health of one store-date: its devices' flags and incomplete local hours."""

    flags: frozenset[str]
    incomplete_hours: frozenset[str]


def store_day_health(
    engine: Engine, tenant_id: str, store_ids: Sequence[str], start: date, end: date
) -> dict[tuple[str, date], StoreDayHealth]:
    """Per (store_id, business_date) of ``start..end``: the union over the store's devices."""
    if not store_ids:
        return {}
    ensure_device_health(engine)
    t = mart_device_health
    query = sa.select(t.c.store_id, t.c.business_date, t.c.flags, t.c.incomplete_hours).where(
        t.c.tenant_id == tenant_id,
        t.c.store_id.in_(list(store_ids)),
        t.c.business_date >= start,
        t.c.business_date <= end,
    )
    flags: dict[tuple[str, date], set[str]] = defaultdict(set)
    hours: dict[tuple[str, date], set[str]] = defaultdict(set)
    with engine.connect() as conn:
        for row in conn.execute(query):
            day = row.business_date
            if isinstance(day, str):
                day = date.fromisoformat(day[:10])
            key = (row.store_id, day)
            flags[key].update(_split(row.flags))
            hours[key].update(_split(row.incomplete_hours))
    return {k: StoreDayHealth(frozenset(flags[k]), frozenset(hours[k])) for k in flags}
