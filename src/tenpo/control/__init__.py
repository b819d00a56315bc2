"""Control plane: tenants, stores, devices, POS registers, API keys, users (SQLAlchemy + Alembic).

``ControlPlane.open(settings.control_db_url)`` gives the read/write API; its
``directory()`` is the cached :class:`Directory` that Pre-ETL and the gateways use, and
``authenticate(token)`` turns an API key into a :class:`Principal`.
"""

from tenpo.control._admin import ImportRejected, RowError, iter_errors
from tenpo.control.auth import SCOPES, Principal
from tenpo.control.db import migrate
from tenpo.control.directory import (
    DeviceRef,
    Directory,
    RegisterAssignment,
    StaticDirectory,
    StoreRef,
)
from tenpo.control.plane import ControlPlane
from tenpo.control.records import (
    ApiKeyInfo,
    DeviceInfo,
    InitiativeInfo,
    RegisterInfo,
    StaffInfo,
    StoreInfo,
    TenantInfo,
    UserInfo,
)
from tenpo.control.sql_directory import SqlDirectory

__all__ = [
    "SCOPES",
    "ApiKeyInfo",
    "ControlPlane",
    "DeviceInfo",
    "DeviceRef",
    "Directory",
    "ImportRejected",
    "InitiativeInfo",
    "Principal",
    "RegisterAssignment",
    "RegisterInfo",
    "RowError",
    "SqlDirectory",
    "StaffInfo",
    "StaticDirectory",
    "StoreInfo",
    "StoreRef",
    "TenantInfo",
    "UserInfo",
    "iter_errors",
    "migrate",
]
