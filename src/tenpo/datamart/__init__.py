"""Datamart: the serving database the read API queries (SQLite embedded, PostgreSQL at scale).

Marts are copied in per (table, business date) partition by :func:`export_partition`, and
the store list by :func:`sync_stores`; :mod:`tenpo.datamart.read` is the one read side
(every query scoped to a caller's tenant and stores). Everything here is derived data: the
schema is created on first use and, when it changes, the datamart is dropped and rebuilt
from the marts.
"""

from tenpo.datamart._engine import dispose_engines, get_engine
from tenpo.datamart.export import export_partition, sync_stores
from tenpo.datamart.kpis import GRAINS, Grain, KpiPeriod, rollup
from tenpo.datamart.read import (
    Caller,
    Scope,
    StoreRecord,
    get_store,
    list_stores,
    store_kpis,
)
from tenpo.datamart.schema import (
    dm_stores,
    ensure_schema,
    mart_store_daily,
    mart_store_hourly,
    mart_store_visits,
    metadata,
)

__all__ = [
    "GRAINS",
    "Grain",
    "Caller",
    "KpiPeriod",
    "Scope",
    "StoreRecord",
    "dispose_engines",
    "dm_stores",
    "ensure_schema",
    "export_partition",
    "get_engine",
    "get_store",
    "list_stores",
    "mart_store_daily",
    "mart_store_hourly",
    "mart_store_visits",
    "metadata",
    "rollup",
    "store_kpis",
    "sync_stores",
]
