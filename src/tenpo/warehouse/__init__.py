"""Warehouse: table catalog over the lake, Ibis connection, views for analysts.

:class:`Warehouse` exposes every raw and mart table of the lake by name (raw tables
deduplicated by natural key); :func:`write_partition` replaces one (table, tenant, date)
partition as a whole, which is how every mart is written.
"""

from tenpo.warehouse.catalog import TABLES, Warehouse, open_warehouse
from tenpo.warehouse.partitions import list_partitions, write_dates, write_partition

__all__ = [
    "TABLES",
    "Warehouse",
    "list_partitions",
    "open_warehouse",
    "write_dates",
    "write_partition",
]
