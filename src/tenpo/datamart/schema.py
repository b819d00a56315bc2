"""SQLAlchemy Core tables of the datamart.

Mart tables mirror the Arrow schemas of :mod:`tenpo.warehouse.schemas` column for column
(money decimals → ``NUMERIC(18, 2)``, ratios → float, dates, booleans), so a mart partition
can be copied in as it is. ``dm_stores`` is the store list the read API serves, synced from
the control plane.

There are no migrations here on purpose: the datamart holds nothing that is not derived, so
when a schema changes the datamart is dropped and rebuilt by re-exporting the marts.
:func:`ensure_schema` creates missing tables on first use.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from tenpo.core.errors import ConfigError
from tenpo.datamart._memo import SchemaMemo
from tenpo.warehouse.schemas import MART_STORE_DAILY, MART_STORE_HOURLY, MART_STORE_VISITS

logger = logging.getLogger(__name__)

_CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """``NUMERIC(18, 2)``; on SQLite, which has no exact decimal type, the decimal's text.

    Values are quantized to the cent on the way in and always read back as ``Decimal``.
    """

    impl = sa.Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(24))
        return dialect.type_descriptor(sa.Numeric(18, 2))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        # str() first: a float would otherwise bring its binary expansion along.
        exact = (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(_CENT)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(_CENT)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def column_type(name: str, arrow_type: pa.DataType, key: bool) -> TypeEngine[Any]:
    if pa.types.is_decimal(arrow_type):
        return Money()
    if pa.types.is_floating(arrow_type):
        return sa.Float()
    if pa.types.is_int64(arrow_type):
        return sa.BigInteger()
    if pa.types.is_integer(arrow_type):
        return sa.Integer()
    if pa.types.is_date(arrow_type):
        return sa.Date()
    if pa.types.is_boolean(arrow_type):
        return sa.Boolean()
    if pa.types.is_string(arrow_type):
        return sa.String(64) if key else sa.Text()
    if pa.types.is_timestamp(arrow_type):
        return sa.DateTime(timezone=arrow_type.tz is not None)
    raise TypeError(f"no datamart type for column {name!r} of Arrow type {arrow_type}")


def _mart_table(name: str, schema: pa.Schema, key: tuple[str, ...]) -> sa.Table:
    columns = [
        sa.Column(
            f.name,
            column_type(f.name, f.type, f.name in key),
            primary_key=f.name in key,
            nullable=f.name not in key,
        )
        for f in schema
    ]
    return sa.Table(name, metadata, *columns)


mart_store_daily = _mart_table(
    "mart_store_daily", MART_STORE_DAILY, ("tenant_id", "store_id", "business_date")
)
# The primary key (tenant, store, date) serves the API's range reads; exports replace by date.
sa.Index(None, mart_store_daily.c.business_date)

mart_store_hourly = _mart_table(
    "mart_store_hourly",
    MART_STORE_HOURLY,
    ("tenant_id", "store_id", "business_date", "hour", "utc_offset_s"),
)
sa.Index(None, mart_store_hourly.c.business_date)

mart_store_visits = _mart_table(
    "mart_store_visits",
    MART_STORE_VISITS,
    ("tenant_id", "store_id", "business_date", "person_id", "entry_ts"),
)
sa.Index(None, mart_store_visits.c.business_date)
sa.Index(None, mart_store_visits.c.tenant_id, mart_store_visits.c.person_id)

dm_stores = sa.Table(
    "dm_stores",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("industry", sa.String(64)),
    sa.Column("region", sa.String(64)),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("floor_area_m2", sa.Float()),
)
sa.Index(None, dm_stores.c.tenant_id, dm_stores.c.code)

MART_SCHEMAS: dict[str, tuple[sa.Table, pa.Schema]] = {
    "mart_store_daily": (mart_store_daily, MART_STORE_DAILY),
    "mart_store_hourly": (mart_store_hourly, MART_STORE_HOURLY),
    "mart_store_visits": (mart_store_visits, MART_STORE_VISITS),
}
"""Mart tables the datamart accepts, with the Arrow schema of their partitions."""


def ensure_schema(engine: Engine) -> None:
    """Create the datamart tables missing on ``engine``; cheap after the first call."""
    _schema.ensure(engine)


def _create_schema(engine: Engine) -> None:
    try:
        metadata.create_all(engine)
    except sa.exc.DBAPIError:
        # Another process may have created the same tables between check and create.
        logger.debug("datamart create_all raced; checking again", exc_info=True)
        metadata.create_all(engine)
    _check_columns(engine)


_schema = SchemaMemo([t.name for t in metadata.sorted_tables], _create_schema)


def _check_columns(engine: Engine) -> None:
    """Refuse a datamart created by an older schema (create_all never alters a table)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise ConfigError(
                f"datamart table {table.name} lacks columns {missing}: it predates this "
                "version; drop the datamart database and re-export the marts to rebuild it",
                table=table.name,
            )
