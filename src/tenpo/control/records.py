"""Plain, immutable views of control-plane rows, as the public API returns them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from tenpo.control.directory import DeviceRef, StoreRef


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TenantInfo(_Record):
    """A tenant: one customer, whose data no other tenant ever sees."""

    tenant_id: str
    name: str
    created_at: datetime


class StoreInfo(_Record):
    """A store of a tenant; ``code`` is the tenant's own store code (as in POS masters)."""

    store_id: str
    tenant_id: str
    code: str
    name: str
    timezone: str
    industry: str | None = None
    region: str | None = None
    floor_area_m2: Decimal | None = None
    opening_hours: dict[str, list[str] | None] | None = None
    created_at: datetime

    def to_ref(self) -> StoreRef:
        """The store as Pre-ETL's :class:`StoreRef`."""
        return StoreRef(
            store_id=self.store_id, tenant_id=self.tenant_id, code=self.code, timezone=self.timezone
        )


class DeviceInfo(_Record):
    """A registered device (``device_id`` as the device sends it) and its store."""

    tenant_id: str
    device_id: str
    store_id: str
    kind: str
    lines: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    config: dict[str, Any] = {}
    active: bool = True
    created_at: datetime

    def to_ref(self, timezone: str) -> DeviceRef:
        """The device as Pre-ETL's :class:`DeviceRef`, with its store's ``timezone``."""
        return DeviceRef(
            device_id=self.device_id,
            tenant_id=self.tenant_id,
            store_id=self.store_id,
            kind=self.kind,
            timezone=timezone,
            lines=self.lines,
            zones=self.zones,
        )


class RegisterInfo(_Record):
    """A POS register's assignment to a store from ``valid_from`` to ``valid_to`` (inclusive)."""

    id: int
    tenant_id: str
    vendor: str
    register_code: str
    store_id: str
    valid_from: date
    valid_to: date | None = None


class ApiKeyInfo(_Record):
    """An API key without its secret."""

    key_id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class UserInfo(_Record):
    """A dashboard user without the password hash.

    ``role`` is ``tenant_admin`` (every store of the tenant) or ``store_manager`` (only
    ``store_ids``).
    """

    user_id: str
    tenant_id: str
    email: str
    role: str
    store_ids: tuple[str, ...] = ()
    created_at: datetime
    disabled_at: datetime | None = None
    last_login_at: datetime | None = None
    session_version: int = 0


class InitiativeInfo(_Record):
    """An initiative (施策): a measure run at some stores from ``start`` to ``end`` (inclusive)
    that aims at one KPI; its effect is measured against control stores."""

    tenant_id: str
    initiative_id: str
    name: str
    kind: str
    kpi: str
    store_ids: tuple[str, ...]
    start: date
    end: date
    description: str
    created_at: datetime


class StaffInfo(_Record):
    """An enrolled member of staff (``descriptors``: how many face descriptors are held;
    the descriptors themselves, and never any photo, stay in the control plane)."""

    staff_id: str
    tenant_id: str
    store_id: str
    name: str
    descriptors: int
    created_at: datetime
