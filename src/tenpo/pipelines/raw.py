"""Observable source assets for the raw tables the streamer writes.

An observation fingerprints the table's Parquet parts (their keys: parts are immutable and
named by content or load), so Dagster sees a new data version whenever the streamer loads
more data, without reading any row.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations
# (context type, resources) when defining them and needs the real classes.
import hashlib

from dagster import DataVersion, ObserveResult, SourceAsset, observable_source_asset

from tenpo.lake.keys import table_prefix
from tenpo.pipelines._compat import beta_features
from tenpo.pipelines.resources import TenpoResource
from tenpo.warehouse.schemas import RAW_TABLES

__all__ = ["raw_table_assets"]


def _observer(table: str) -> SourceAsset:
    def observe(tenpo: TenpoResource) -> ObserveResult:
        keys = [k for k in tenpo.open_lake().list(table_prefix(table)) if k.endswith(".parquet")]
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
        return ObserveResult(data_version=DataVersion(digest), metadata={"parts": len(keys)})

    with beta_features():
        asset: SourceAsset = observable_source_asset(
            name=table,
            group_name="raw",
            description=f"Raw table {table}: Parquet written by the streamer (tables/{table}/).",
        )(observe)
    return asset


def raw_table_assets() -> list[SourceAsset]:
    """One observable source asset per raw table, keyed by the table name."""
    return [_observer(table) for table in RAW_TABLES]
