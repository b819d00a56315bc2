"""ML assets: store clusters, targets and industry benchmarks, weekly and on demand.

``mart_store_clusters``, ``mart_store_targets`` and ``mart_benchmarks`` are computed together
(one multi-asset: the targets need the clusters of the same run, the benchmarks the same
features) from ``mart_store_daily`` (and ``mart_store_hourly`` when it exists) over a
trailing window ending on the run's ``as_of`` date (default: the latest date of
``mart_store_daily``). They are not date-partitioned: each run writes the partition
``date={as_of}`` of the three marts (benchmarks, which belong to no tenant, under
``tenant=_all``) and the fitted scalers, cluster centres, parameters and metrics to
``artifacts/ml_store_clusters/{run_id}/``. ``datamart_ml`` copies the three into the datamart.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import hashlib
import io
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    ScheduleDefinition,
    asset,
    multi_asset,
)
from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tenpo.core.errors import BadInput, NotFound
from tenpo.core.settings import Settings
from tenpo.lake.base import Lake
from tenpo.lake.keys import artifact_key, table_key, table_prefix
from tenpo.ml import (
    MlParams,
    cluster_stores,
    estimate_targets,
    feature_window,
    industry_benchmarks,
    period_label,
    store_features,
)
from tenpo.ml.tables import ML_KEYS, ML_SCHEMAS, to_arrow
from tenpo.pipelines.kpis import MART_STORE_DAILY_KEY, WRITER_TAG
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.schedules import asset_job_schedule
from tenpo.warehouse.partitions import list_partitions
from tenpo.warehouse.screen import quarantine_rows, screen_rows

__all__ = [
    "BENCHMARK_TENANT",
    "DATAMART_ML_KEY",
    "ML_ASSET_KEYS",
    "ML_JOB",
    "MlRunConfig",
    "latest_business_date",
    "ml_assets",
    "ml_schedules",
    "read_daily",
    "read_mart_day",
    "read_ml_mart",
    "store_master",
    "write_mart",
]

log = logging.getLogger(__name__)

MART_STORE_CLUSTERS_KEY = "mart_store_clusters"
MART_STORE_TARGETS_KEY = "mart_store_targets"
MART_BENCHMARKS_KEY = "mart_benchmarks"
DATAMART_ML_KEY = "datamart_ml"
ML_ASSET_KEYS = (MART_STORE_CLUSTERS_KEY, MART_STORE_TARGETS_KEY, MART_BENCHMARKS_KEY)
ML_JOB = "ml_weekly"
ARTIFACT_JOB = "ml_store_clusters"
BENCHMARK_TENANT = "_all"
"""Partition "tenant" of mart_benchmarks: its rows are cross-tenant aggregates."""

_HOURLY = "mart_store_hourly"


class MlRunConfig(Config):
    """Run configuration of the ML assets (unset fields: ``MlParams`` defaults / TENPO_ML_*)."""

    as_of: str | None = Field(
        default=None, description="Last business date of the window (default: latest in mart)."
    )
    window_weeks: int | None = Field(default=None, description="Trailing window, in weeks.")
    target_quantile: float | None = Field(default=None, description="Peer quantile of targets.")
    target_peers: str | None = Field(default=None, description="`cluster` or `group`.")
    scope: str | None = Field(default=None, description="`tenant` or `industry`.")

    def params(self) -> MlParams:
        """The ML parameters of this run."""
        overrides: dict[str, Any] = {
            k: v
            for k, v in {
                "window_weeks": self.window_weeks,
                "target_quantile": self.target_quantile,
                "target_peers": self.target_peers,
                "scope": self.scope,
            }.items()
            if v is not None
        }
        try:
            return MlParams(**overrides)
        except ValueError as exc:
            raise BadInput(f"bad ML run config: {exc}") from exc


def latest_business_date(lake: Lake) -> date | None:
    """The latest business date with a ``mart_store_daily`` partition (None: no mart yet)."""
    days = [day for _, day in list_partitions(lake, MART_STORE_DAILY_KEY)]
    return max(days) if days else None


def store_master(tenpo: TenpoResource) -> list[dict[str, Any]]:
    """Stores with industry, floor area and opening hours: control plane, else datamart."""
    from tenpo.control import ControlPlane

    settings = tenpo.get_settings()
    url = make_url(settings.control_db_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return _datamart_stores(settings)
    try:
        control = ControlPlane.open(settings.control_db_url, migrate=False)
        try:
            stores = [
                s.model_dump()
                for tenant in control.list_tenants()
                for s in control.list_stores(tenant.tenant_id)
            ]
        finally:
            control.dispose()
    except SQLAlchemyError as exc:
        log.warning("ml: control plane unreadable (%s); stores from the datamart", exc)
        return _datamart_stores(settings)
    return stores or _datamart_stores(settings)


def _datamart_stores(settings: Settings) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from tenpo.datamart import dm_stores, ensure_schema, get_engine

    engine = get_engine(settings.datamart_db_url)
    ensure_schema(engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(dm_stores)).mappings()]


def _write_partition(lake: Lake, table: str, tenant: str, day: date, rows: pa.Table) -> None:
    """Replace partition (table, tenant, day): new content-named part first, then the old."""
    prefix = table_prefix(table, tenant, day)
    old = [k for k in lake.list(prefix) if k.endswith(".parquet")]
    new_key = None
    if rows.num_rows:
        buf = io.BytesIO()
        pq.write_table(rows, buf, compression="zstd")
        data = buf.getvalue()
        new_key = table_key(table, tenant, day, "part-" + hashlib.sha256(data).hexdigest()[:24])
        lake.put(new_key, data)
    for key in old:
        if key != new_key:
            lake.delete(key)


def write_mart(lake: Lake, table: str, day: date, rows: pa.Table) -> int:
    """Write ``rows`` of ``day`` per tenant partition; drop the day's other tenants' parts."""
    tenants = (
        sorted(set(rows["tenant_id"].to_pylist()))
        if "tenant_id" in rows.column_names
        else [BENCHMARK_TENANT]
    )
    for tenant in tenants:
        part = (
            rows
            if tenant == BENCHMARK_TENANT
            else rows.filter(pa.compute.equal(rows["tenant_id"], tenant))
        )
        _write_partition(lake, table, tenant, day, part)
    for tenant, _ in list_partitions(lake, table, [day]):
        if tenant not in tenants:
            _write_partition(lake, table, tenant, day, rows.slice(0, 0))
    return rows.num_rows


def read_mart_day(lake: Lake, table: str, day: date, schema: pa.Schema) -> pa.Table:
    """Every row of mart ``table`` for ``day`` (all tenants, by tenant), read as ``schema``."""
    parts = [
        pq.read_table(io.BytesIO(lake.get(key)), schema=schema)
        for tenant, d in sorted(list_partitions(lake, table, [day]))
        for key in lake.list(table_prefix(table, tenant, d))
        if key.endswith(".parquet")
    ]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def read_ml_mart(lake: Lake, table: str, day: date) -> pa.Table:
    """Every row of ML mart ``table`` for ``day`` (all tenants), in its schema."""
    if table not in ML_SCHEMAS:
        raise NotFound(f"no ML mart {table!r}")
    return read_mart_day(lake, table, day, ML_SCHEMAS[table])


def read_daily(tenpo: TenpoResource, start: date, end: date) -> tuple[pd.DataFrame, Any]:
    """``mart_store_daily`` of ``start..end`` as a frame, and the hourly mart's (None if absent)."""
    days = [date.fromordinal(o) for o in range(start.toordinal(), end.toordinal() + 1)]
    with tenpo.open_warehouse() as wh:
        daily = wh.to_arrow(wh.table(MART_STORE_DAILY_KEY, dates=days)).to_pandas()
        hourly = None
        try:
            scan = wh.table(_HOURLY, dates=days)
        except NotFound:
            scan = None  # an older catalog without the hourly mart
        if scan is not None:
            table = wh.to_arrow(scan)
            hourly = table.to_pandas() if table.num_rows else None
    return daily, hourly


def _artifacts(
    lake: Lake, run_id: str, result: Any, params: MlParams, metrics: dict[str, Any]
) -> list[str]:
    models = {
        gid: {
            "features": m.features,
            "medians": m.medians,
            "scaler": m.scaler,
            "centres": m.centres,
            "k": m.k,
            "descriptions": m.descriptions,
        }
        for gid, m in result.models.items()
    }
    buf = io.BytesIO()
    joblib.dump(models, buf)
    files = {
        "models.joblib": buf.getvalue(),
        "params.json": params.model_dump_json(indent=2).encode(),
        "metrics.json": json.dumps(metrics, indent=2, default=str).encode(),
    }
    keys = []
    for name, data in files.items():
        key = artifact_key(ARTIFACT_JOB, run_id, name)
        lake.put(key, data)
        keys.append(key)
    return keys


def ml_assets() -> list[AssetsDefinition]:
    """The ML marts (one multi-asset) and their datamart export."""

    @multi_asset(
        specs=[
            AssetSpec(
                MART_STORE_CLUSTERS_KEY,
                deps=[MART_STORE_DAILY_KEY],
                description="Store clusters per tenant and industry, with descriptions.",
                group_name="ml",
                kinds={"scikitlearn", "parquet"},
            ),
            AssetSpec(
                MART_STORE_TARGETS_KEY,
                deps=[MART_STORE_CLUSTERS_KEY],
                description="KPI targets (peer P75), headroom and sales uplift per store.",
                group_name="ml",
                kinds={"parquet"},
            ),
            AssetSpec(
                MART_BENCHMARKS_KEY,
                deps=[MART_STORE_DAILY_KEY],
                description="Industry benchmarks: noisy quantiles over ≥10 stores of ≥2 tenants.",
                group_name="ml",
                kinds={"parquet"},
            ),
        ],
        op_tags=WRITER_TAG,
        can_subset=False,
    )
    def ml_marts(context: AssetExecutionContext, config: MlRunConfig, tenpo: TenpoResource):  # type: ignore[no-untyped-def]
        params = config.params()
        lake = tenpo.open_lake()
        as_of = date.fromisoformat(config.as_of) if config.as_of else latest_business_date(lake)
        if as_of is None:
            raise NotFound("mart_store_daily is empty: materialize it before the ML assets")
        start, end = feature_window(as_of, params.window_weeks)
        daily, hourly = read_daily(tenpo, start, end)
        stores = store_master(tenpo)
        features = store_features(
            daily,
            stores,
            end=end,
            weeks=params.window_weeks,
            hourly=hourly,
            min_open_days=min(params.min_open_days, 7 * params.window_weeks),
        )
        result = cluster_stores(features, params)
        targets = estimate_targets(features, result.assignments, params, as_of=as_of)
        bench = industry_benchmarks(
            features, params, period=period_label(end), period_start=start, period_end=end
        )
        clusters = result.assignments.merge(
            features.drop(columns=["industry", "missing"]), on=["tenant_id", "store_id"]
        )
        tables = {
            MART_STORE_CLUSTERS_KEY: to_arrow(
                clusters, MART_STORE_CLUSTERS_KEY, business_date=as_of
            ),
            MART_STORE_TARGETS_KEY: to_arrow(targets, MART_STORE_TARGETS_KEY),
            MART_BENCHMARKS_KEY: to_arrow(bench, MART_BENCHMARKS_KEY, business_date=as_of),
        }
        quarantined: dict[str, int] = {}
        for name, rows in tables.items():
            # A row breaking the mart's key is set aside with its reason; the rest is written.
            screened = screen_rows(rows, ML_KEYS[name], days=[as_of])
            quarantine_rows(lake, name, [as_of], screened, default_tenant=BENCHMARK_TENANT)
            tables[name] = screened.kept
            quarantined[name] = screened.rejected.num_rows
            write_mart(lake, name, as_of, screened.kept)
        published = int(bench["published"].sum()) if len(bench) else 0
        metrics: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "window": [start.isoformat(), end.isoformat()],
            "stores": len(features),
            "stores_with_gaps": int(sum(1 for m in features["missing"] if m)),
            "groups": result.metrics(),
            "benchmarks_published": published,
            "benchmarks_suppressed": len(bench) - published,
            "rows_quarantined": quarantined,
        }
        keys = _artifacts(lake, context.run_id, result, params, metrics)
        context.log.info("ml: %d stores as of %s; artifacts %s", len(features), as_of, keys[0])
        common: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "artifacts": keys[0].rsplit("/", 1)[0] + "/",
        }
        yield MaterializeResult(
            asset_key=MART_STORE_CLUSTERS_KEY,
            metadata={
                **common,
                "rows": tables[MART_STORE_CLUSTERS_KEY].num_rows,
                "rows_quarantined": quarantined[MART_STORE_CLUSTERS_KEY],
                "groups": len(result.models),
            },
        )
        yield MaterializeResult(
            asset_key=MART_STORE_TARGETS_KEY,
            metadata={**common, "rows": tables[MART_STORE_TARGETS_KEY].num_rows},
        )
        yield MaterializeResult(
            asset_key=MART_BENCHMARKS_KEY,
            metadata={
                **common,
                "rows": tables[MART_BENCHMARKS_KEY].num_rows,
                "rows_quarantined": quarantined[MART_BENCHMARKS_KEY],
                "published": published,
                "suppressed": len(bench) - published,
            },
        )

    @asset(
        name=DATAMART_ML_KEY,
        deps=list(ML_ASSET_KEYS),
        group_name="datamart",
        kinds={"sql"},
        op_tags=WRITER_TAG,
        description="The ML marts of the latest as-of date copied into the datamart.",
    )
    def datamart_ml(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        from tenpo.datamart.ml import export_ml

        lake = tenpo.open_lake()
        days = [d for _, d in list_partitions(lake, MART_STORE_CLUSTERS_KEY)]
        # No ML rows at all (no store with enough days yet): empty the latest date's rows.
        as_of = max(days) if days else latest_business_date(lake)
        if as_of is None:
            context.log.warning("datamart ml: no marts yet, nothing to export")
            return MaterializeResult(metadata={"rows": 0})
        settings = tenpo.get_settings()
        written = {
            name: export_ml(settings, name, as_of, read_ml_mart(lake, name, as_of))
            for name in ML_ASSET_KEYS
        }
        context.log.info("datamart ml %s: %s", as_of, written)
        metadata: dict[str, Any] = {"as_of": as_of.isoformat(), **written}
        return MaterializeResult(metadata=metadata)

    return [ml_marts, datamart_ml]


def ml_schedules() -> list[ScheduleDefinition]:
    """Weekly run of the ML assets (Mondays 03:00, Asia/Tokyo); also runnable on demand."""
    return [
        asset_job_schedule(
            "ml_weekly_schedule", ML_JOB, [*ML_ASSET_KEYS, DATAMART_ML_KEY], cron="0 3 * * 1"
        )
    ]
