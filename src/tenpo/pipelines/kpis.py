"""KPI assets: the daily store mart in the lake, and its copy in the datamart.

Both are partitioned by business date and back-filled in a single run: the asset receives the
whole partition range and computes it with one query, which is far cheaper than one Dagster run
per date. Every partition is overwritten as a whole, so any rerun or backfill is safe.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations
# (context type, resources) when defining them and needs the real classes.
import logging
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from tenpo.jobs.kpis import DAILY_KEYS, store_daily
from tenpo.pipelines._compat import beta_features
from tenpo.pipelines.partitions import partition_dates
from tenpo.pipelines.resources import TenpoResource
from tenpo.warehouse.partitions import write_dates

__all__ = ["MART_STORE_DAILY_KEY", "DATAMART_STORE_DAILY_KEY", "kpi_assets"]

log = logging.getLogger(__name__)

MART_STORE_DAILY_KEY = "mart_store_daily"
DATAMART_STORE_DAILY_KEY = "datamart_store_daily"


def _rows_by_date(days: list[date], counts: dict[date, int]) -> dict[str, int]:
    return {d.isoformat(): counts.get(d, 0) for d in days}


def kpi_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """The daily KPI assets over ``partitions``: ``mart_store_daily``, ``datamart_store_daily``."""
    with beta_features():
        return _kpi_assets(partitions)


def _kpi_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:

    @asset(
        name=MART_STORE_DAILY_KEY,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=["raw_pos_transactions", "raw_iot_counts"],
        group_name="kpis",
        kinds={"duckdb", "parquet"},
        description="Store KPIs per business date (tables/mart_store_daily/), all tenants.",
    )
    def mart_store_daily(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        with tenpo.open_warehouse() as wh:
            expr = store_daily(
                wh.table("raw_pos_transactions", dates=days),
                wh.table("raw_iot_counts", dates=days),
            ).order_by(list(DAILY_KEYS))
            rows = wh.to_arrow(expr)
            written = write_dates(wh.lake, MART_STORE_DAILY_KEY, days, rows)
        per_date: dict[date, int] = {}
        for (_, day), n in written.items():
            per_date[day] = per_date.get(day, 0) + n
        context.log.info(
            "mart_store_daily: %d rows over %d date(s), %d tenant partition(s)",
            rows.num_rows,
            len(days),
            len(written),
        )
        return MaterializeResult(
            metadata={
                "rows": rows.num_rows,
                "partitions_written": sum(1 for n in written.values() if n),
                "partitions_removed": sum(1 for n in written.values() if not n),
                "rows_by_date": _rows_by_date(days, per_date),
            }
        )

    @asset(
        name=DATAMART_STORE_DAILY_KEY,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=[mart_store_daily],
        group_name="datamart",
        kinds={"sql"},
        description="mart_store_daily copied into the datamart, one date replaced at a time.",
    )
    def datamart_store_daily(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        # Imported here: the datamart is an adapter the KPI mart itself does not need.
        from tenpo.datamart import export_partition

        days = partition_dates(context.partition_keys)
        settings = tenpo.get_settings()
        with tenpo.open_warehouse() as wh:
            # One read for the whole range, split per date in memory.
            rows = wh.to_arrow(
                wh.table(MART_STORE_DAILY_KEY, dates=days).order_by(list(DAILY_KEYS))
            )
        exported: dict[date, int] = {}
        for day in days:
            day_rows = rows.filter(pc.equal(rows["business_date"], pa.scalar(day, pa.date32())))
            exported[day] = export_partition(settings, MART_STORE_DAILY_KEY, day, day_rows)
        total = sum(exported.values())
        context.log.info("datamart_store_daily: %d rows over %d date(s)", total, len(days))
        return MaterializeResult(
            metadata={"rows": total, "rows_by_date": _rows_by_date(days, exported)}
        )

    return [mart_store_daily, datamart_store_daily]
