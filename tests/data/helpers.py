"""Factories shared by the Pre-ETL tests: events, directories and sample paths."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from tenpo.control.directory import DeviceRef, RegisterAssignment, StaticDirectory, StoreRef
from tenpo.lake.landing import ObjectRegistered

DATA = Path(__file__).parent
TENANT = "t1"
REGISTERED_AT = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)


def event(
    source: str, tenant: str = TENANT, registered_at: datetime = REGISTERED_AT
) -> ObjectRegistered:
    """A registration event for an object of ``source``."""
    return ObjectRegistered(
        key=f"landing/{source}/tenant={tenant}/date=2026-10-05/obj.bin",
        source=source,
        tenant_id=tenant,
        business_date=date(2026, 10, 5),
        object_id="obj1",
        size=0,
        sha256="0" * 64,
        content_type="application/octet-stream",
        registered_at=registered_at,
    )


def directory() -> StaticDirectory:
    """Tenant t1: store T01 (id s-01, Tokyo) with register 0001 since 2026-04-01; devices."""
    d = StaticDirectory(
        stores=[
            StoreRef("s-01", TENANT, "T01"),
            StoreRef("s-02", TENANT, "T02"),
            StoreRef("s-x", "other", "T01"),
        ],
        devices=[
            DeviceRef("pc-001", TENANT, "s-01", "people_counter", lines=("entrance", "passby")),
            DeviceRef("tof-01", TENANT, "s-01", "tof_camera", zones=("cosmetics",)),
            DeviceRef("cam-1", TENANT, "s-01", "rgb_camera"),
            DeviceRef("pc-other", "other", "s-x", "people_counter"),
        ],
    )
    d.registers[(TENANT, "vendor_a", "0001")] = [
        RegisterAssignment("0001", "T01", date(2026, 4, 1))
    ]
    return d
