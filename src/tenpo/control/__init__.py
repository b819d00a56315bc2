"""Control plane: tenants, stores, devices, POS registers, API keys (SQLAlchemy + Alembic)."""

from tenpo.control.directory import (
    DeviceRef,
    Directory,
    RegisterAssignment,
    StaticDirectory,
    StoreRef,
)

__all__ = ["DeviceRef", "Directory", "RegisterAssignment", "StaticDirectory", "StoreRef"]
