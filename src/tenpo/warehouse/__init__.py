"""Warehouse: table catalog over the lake, Ibis connection, views for analysts.

:func:`open_warehouse` exposes every raw and mart table of the lake by name (raw tables
deduplicated by natural key) on the configured engine — :class:`Warehouse` (DuckDB) or
``tenpo.warehouse.spark.SparkWarehouse``; :func:`write_partition` replaces one (table, tenant, date)
partition as a whole, which is how every mart is written.

The names below load on first use: Pre-ETL, the streamer and the gateway import only
``tenpo.warehouse.schemas`` and should not pay for importing Ibis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenpo.warehouse.catalog import TABLES, BaseWarehouse, Warehouse, open_warehouse
    from tenpo.warehouse.partitions import list_partitions, write_dates, write_partition

_LAZY = {
    "TABLES": "tenpo.warehouse.catalog",
    "BaseWarehouse": "tenpo.warehouse.catalog",
    "Warehouse": "tenpo.warehouse.catalog",
    "open_warehouse": "tenpo.warehouse.catalog",
    "list_partitions": "tenpo.warehouse.partitions",
    "write_dates": "tenpo.warehouse.partitions",
    "write_partition": "tenpo.warehouse.partitions",
}

__all__ = [
    "TABLES",
    "BaseWarehouse",
    "Warehouse",
    "list_partitions",
    "open_warehouse",
    "write_dates",
    "write_partition",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tenpo.warehouse' has no attribute {name!r}")
