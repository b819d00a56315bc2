"""Arrow schemas of the ML marts, and the conversion of result frames into them.

``mart_store_clusters`` (one row per store), ``mart_store_targets`` (per store and KPI) and
``mart_benchmarks`` (per industry, size band and KPI; no tenant). ``business_date`` is the
last date of the feature window (the "as of" date) in all three. Lists and peer details are
JSON text so the datamart can hold them in one column.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa

from tenpo.core.errors import BadInput
from tenpo.ml.features import FEATURES

__all__ = [
    "MART_BENCHMARKS",
    "MART_STORE_CLUSTERS",
    "MART_STORE_TARGETS",
    "ML_KEYS",
    "ML_SCHEMAS",
    "to_arrow",
]

_MONEY = pa.decimal128(18, 2)

MART_STORE_CLUSTERS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("industry", pa.string()),
        ("group_id", pa.string()),
        ("cluster", pa.int32()),
        ("cluster_id", pa.string()),
        ("description", pa.string()),
        ("k", pa.int32()),
        ("silhouette", pa.float64()),
        ("distance", pa.float64()),
        ("features", pa.string()),  # JSON list: features clustered on
        ("imputed", pa.string()),  # JSON list: features filled with the group median
        ("open_days", pa.int32()),
        ("daily_net_sales", _MONEY),
        *((f.name, pa.float64()) for f in FEATURES),
    ]
)

MART_STORE_TARGETS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("kpi", pa.string()),
        ("cluster_id", pa.string()),
        ("actual", pa.float64()),
        ("target", pa.float64()),
        ("headroom", pa.float64()),
        ("quantile", pa.float64()),
        ("peer_basis", pa.string()),
        ("peers_n", pa.int32()),
        ("peer_p25", pa.float64()),
        ("peer_median", pa.float64()),
        ("peer_target", pa.float64()),
        ("uplift_per_day", _MONEY),
        ("uplift_share", pa.float64()),
        ("is_primary", pa.bool_()),
        ("explanation", pa.string()),
        ("peers", pa.string()),  # JSON: own-tenant peer stores, other tenants' count
    ]
)

MART_BENCHMARKS = pa.schema(
    [
        ("business_date", pa.date32()),
        ("period", pa.string()),
        ("period_start", pa.date32()),
        ("period_end", pa.date32()),
        ("industry", pa.string()),
        ("size_band", pa.string()),
        ("kpi", pa.string()),
        ("stores_band", pa.string()),  # "10-19": exact counts are not published
        ("tenants_band", pa.string()),
        ("published", pa.bool_()),
        ("suppressed_reason", pa.string()),
        ("p25", pa.float64()),  # noisy and rounded (tenpo.ml.benchmarks)
        ("median", pa.float64()),
        ("p75", pa.float64()),
    ]
)

ML_SCHEMAS: dict[str, pa.Schema] = {
    "mart_store_clusters": MART_STORE_CLUSTERS,
    "mart_store_targets": MART_STORE_TARGETS,
    "mart_benchmarks": MART_BENCHMARKS,
}
"""The ML marts and their schemas."""

ML_KEYS: dict[str, tuple[str, ...]] = {
    "mart_store_clusters": ("tenant_id", "store_id", "business_date"),
    "mart_store_targets": ("tenant_id", "store_id", "business_date", "kpi"),
    "mart_benchmarks": ("business_date", "industry", "size_band", "kpi"),
}
"""Primary keys of the ML marts."""


def _cell(value: Any, field: pa.Field) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if pa.types.is_decimal(field.type):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    if pa.types.is_integer(field.type):
        return int(value)
    if pa.types.is_floating(field.type):
        return float(value)
    if pa.types.is_boolean(field.type):
        return bool(value)
    return value


def to_arrow(frame: pd.DataFrame, table: str, **constants: Any) -> pa.Table:
    """``frame`` as the ML mart ``table``'s Arrow table; ``constants`` fill whole columns.

    NaN becomes null, lists become JSON. ``BadInput`` when a schema column is missing.
    """
    if table not in ML_SCHEMAS:
        raise BadInput(f"unknown ML mart {table!r}; expected one of {sorted(ML_SCHEMAS)}")
    schema = ML_SCHEMAS[table]
    records = frame.to_dict("records")
    missing = [f.name for f in schema if f.name not in constants and f.name not in frame.columns]
    if missing and records:
        raise BadInput(f"{table} rows lack column(s) {missing}")
    columns = {
        f.name: [
            _cell(constants[f.name] if f.name in constants else r.get(f.name), f) for r in records
        ]
        for f in schema
    }
    return pa.table(columns, schema=schema)
