"""ORM mapping of the control-plane tables (SQLAlchemy 2, typed ``Mapped[...]``).

The schema itself is owned by the Alembic migrations in ``tenpo.control.migrations``;
these classes must describe the same tables (``tests/control`` checks that they do).
Nothing outside ``tenpo.control`` should import them: the public API returns plain
values (``StoreInfo``, ``DeviceInfo``, ...), never ORM objects.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, so values are normalised to UTC on the way in and tagged UTC on
    the way out; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """``NUMERIC(12, 2)``; on SQLite, which has no exact decimal, the decimal's text."""

    impl = sa.Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.Numeric(12, 2))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


class Base(DeclarativeBase):
    """Declarative base of the control-plane tables."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        Decimal: ExactDecimal(),
        dict[str, Any]: sa.JSON(),
        list[str]: sa.JSON(),
    }


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "code"),
        sa.UniqueConstraint("tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    industry: Mapped[str | None] = mapped_column(sa.String(64))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    floor_area_m2: Mapped[Decimal | None]
    opening_hours: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    lines: Mapped[list[str]]
    zones: Mapped[list[str]]
    config: Mapped[dict[str, Any]]
    active: Mapped[bool]
    created_at: Mapped[datetime]


class PosRegister(Base):
    __tablename__ = "pos_registers"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
        sa.UniqueConstraint("tenant_id", "vendor", "register_code", "valid_from"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    vendor: Mapped[str] = mapped_column(sa.String(64))
    register_code: Mapped[str] = mapped_column(sa.String(64))
    store_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    scopes: Mapped[list[str]]
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # Named by every session token; bumped on logout, password change and removal (0003).
    session_version: Mapped[int] = mapped_column(sa.Integer, server_default="0", default=0)


class UserStore(Base):
    __tablename__ = "user_stores"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    )

    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(32))
    store_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class Initiative(Base):
    __tablename__ = "initiatives"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(64))
    kpi: Mapped[str] = mapped_column(sa.String(32))
    start_date: Mapped[date]
    end_date: Mapped[date]
    description: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]


class InitiativeStore(Base):
    __tablename__ = "initiative_stores"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["tenant_id", "initiative_id"], ["initiatives.tenant_id", "initiatives.id"]
        ),
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    initiative_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    store_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class Budget(Base):
    __tablename__ = "budgets"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    store_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    business_date: Mapped[date] = mapped_column(primary_key=True)
    net_sales: Mapped[Decimal]
    updated_at: Mapped[datetime]


class AlertRule(Base):
    __tablename__ = "alert_rules"

    tenant_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True
    )
    rule_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    params: Mapped[dict[str, Any]]
    stores: Mapped[list[str] | None]
    webhook_url: Mapped[str | None] = mapped_column(sa.Text())
    webhook_secret: Mapped[str | None] = mapped_column(sa.Text())
    updated_at: Mapped[datetime]


class AlertDelivery(Base):
    """An alert id its rule's webhook has received (kept across datamart rebuilds)."""

    __tablename__ = "alert_deliveries"

    tenant_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True
    )
    alert_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(64))
    store_id: Mapped[str] = mapped_column(sa.String(64))
    business_date: Mapped[date]
    delivered_at: Mapped[datetime]


class AlertAck(Base):
    """Who acknowledged an alert id and when (kept across datamart rebuilds)."""

    __tablename__ = "alert_acks"

    tenant_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True
    )
    alert_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    acknowledged_at: Mapped[datetime]
    acknowledged_by: Mapped[str] = mapped_column(sa.String(128))


class StaffMember(Base):
    """An enrolled member of staff: face descriptors only (the photos are never stored)."""

    __tablename__ = "staff_members"
    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    store_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(200))
    descriptors: Mapped[bytes] = mapped_column(sa.LargeBinary)  # n × 128 float32, little-endian
    created_at: Mapped[datetime]
