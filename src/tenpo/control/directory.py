"""The ``Directory``: what Pre-ETL and gateways need to know about tenants' stores and devices.

It is the read side of the control plane, narrowed to lookups (plus the POS-master write
that vendor A's master upload performs). ``SqlDirectory`` (``tenpo.control``) serves it from
the control database; ``StaticDirectory`` holds it in memory for tests and offline tools
such as ``tenpo pos convert``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

DeviceKind = str  # "people_counter" | "tof_camera" | "rgb_camera"


@dataclass(frozen=True)
class StoreRef:
    """A store as Pre-ETL sees it."""

    store_id: str
    tenant_id: str
    code: str
    timezone: str = "Asia/Tokyo"


@dataclass(frozen=True)
class DeviceRef:
    """A registered device and the store it is installed in."""

    device_id: str
    tenant_id: str
    store_id: str
    kind: DeviceKind
    timezone: str = "Asia/Tokyo"
    lines: tuple[str, ...] = ()  # people counter: "entrance", "passby", zone names
    zones: tuple[str, ...] = ()  # ToF camera zones


@dataclass(frozen=True)
class RegisterAssignment:
    """One POS-master row: register ``register_code`` is in store ``store_code`` on these dates."""

    register_code: str
    store_code: str
    valid_from: date
    valid_to: date | None = None  # inclusive; None while current
    store_name: str | None = None


@runtime_checkable
class Directory(Protocol):
    """Lookups by tenant; every method returns None for another tenant's entities."""

    def store_by_code(self, tenant_id: str, code: str) -> StoreRef | None:
        """The tenant's store with this code."""
        ...

    def store(self, tenant_id: str, store_id: str) -> StoreRef | None:
        """The tenant's store with this id."""
        ...

    def register_store(
        self, tenant_id: str, vendor: str, register_code: str, day: date
    ) -> StoreRef | None:
        """The store that register ``register_code`` of ``vendor`` belonged to on ``day``."""
        ...

    def device(self, tenant_id: str, device_id: str) -> DeviceRef | None:
        """The tenant's device with this id."""
        ...

    def apply_pos_master(self, tenant_id: str, vendor: str, rows: list[RegisterAssignment]) -> int:
        """Replace the assignments of the registers listed in ``rows``; returns rows applied.

        Raises :class:`tenpo.core.errors.BadInput` when a row names an unknown store code.
        """
        ...


@dataclass
class StaticDirectory:
    """An in-memory :class:`Directory` (tests, offline conversion)."""

    stores: list[StoreRef] = field(default_factory=list)
    devices: list[DeviceRef] = field(default_factory=list)
    registers: dict[tuple[str, str, str], list[RegisterAssignment]] = field(default_factory=dict)

    def store_by_code(self, tenant_id: str, code: str) -> StoreRef | None:
        return next((s for s in self.stores if (s.tenant_id, s.code) == (tenant_id, code)), None)

    def store(self, tenant_id: str, store_id: str) -> StoreRef | None:
        return next(
            (s for s in self.stores if (s.tenant_id, s.store_id) == (tenant_id, store_id)), None
        )

    def register_store(
        self, tenant_id: str, vendor: str, register_code: str, day: date
    ) -> StoreRef | None:
        for a in self.registers.get((tenant_id, vendor, register_code), []):
            if a.valid_from <= day and (a.valid_to is None or day <= a.valid_to):
                return self.store_by_code(tenant_id, a.store_code)
        return None

    def device(self, tenant_id: str, device_id: str) -> DeviceRef | None:
        return next(
            (d for d in self.devices if (d.tenant_id, d.device_id) == (tenant_id, device_id)),
            None,
        )

    def apply_pos_master(self, tenant_id: str, vendor: str, rows: list[RegisterAssignment]) -> int:
        from tenpo.core.errors import BadInput

        for row in rows:
            if self.store_by_code(tenant_id, row.store_code) is None:
                raise BadInput(f"POS master names unknown store code {row.store_code!r}")
        for code in {r.register_code for r in rows}:
            self.registers[(tenant_id, vendor, code)] = [r for r in rows if r.register_code == code]
        return len(rows)
