"""KPI assets: the visit, daily and hourly store marts in the lake, and their datamart copies.

All are partitioned by business date and back-filled in a single run: an asset receives the
whole partition range and computes it with one query, which is far cheaper than one Dagster run
per date. Every partition is overwritten as a whole, so any rerun or backfill is safe.

Dependencies: ``mart_store_visits`` (visitor events) → ``mart_store_daily`` (POS, counts,
visits, reading visit history back over the repeat window) → ``mart_store_hourly`` (which
checks that its hours add up to the daily rows). Each mart carries data-quality asset checks,
evaluated on the rows just written.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations
# (context type, resources) when defining them and needs the real classes.
import csv
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from tenpo.core.errors import ConfigError
from tenpo.core.settings import Settings
from tenpo.jobs import VisitRules, store_daily, store_hourly, store_offsets, store_visits
from tenpo.jobs.kpis import COUNT_COLUMNS, DAILY_KEYS, HOURLY_KEYS, POS_COLUMNS
from tenpo.pipelines._compat import beta_features
from tenpo.pipelines.partitions import partition_dates
from tenpo.pipelines.resources import TenpoResource
from tenpo.warehouse.catalog import BaseWarehouse
from tenpo.warehouse.partitions import write_dates
from tenpo.warehouse.screen import Screened, quarantine_rows, screen_rows

__all__ = [
    "DATAMART_KEYS",
    "DATAMART_STORE_DAILY_KEY",
    "DATAMART_STORE_HOURLY_KEY",
    "DATAMART_STORE_VISITS_KEY",
    "MART_KEYS",
    "MART_STORE_DAILY_KEY",
    "MART_STORE_HOURLY_KEY",
    "MART_STORE_VISITS_KEY",
    "kpi_assets",
    "read_staff",
    "visit_rules",
]

log = logging.getLogger(__name__)

MART_STORE_VISITS_KEY = "mart_store_visits"
MART_STORE_DAILY_KEY = "mart_store_daily"
MART_STORE_HOURLY_KEY = "mart_store_hourly"
DATAMART_STORE_VISITS_KEY = "datamart_store_visits"
DATAMART_STORE_DAILY_KEY = "datamart_store_daily"
DATAMART_STORE_HOURLY_KEY = "datamart_store_hourly"
MART_KEYS = (MART_STORE_VISITS_KEY, MART_STORE_DAILY_KEY, MART_STORE_HOURLY_KEY)
DATAMART_KEYS = (DATAMART_STORE_VISITS_KEY, DATAMART_STORE_DAILY_KEY, DATAMART_STORE_HOURLY_KEY)

# Every run that writes marts carries this tag: the instance's tag concurrency limit lets one
# such run at a time write the lake and the datamart (see run.ensure_dagster_home).
WRITER_TAG = {"tenpo/writer": "marts"}

_VISIT_KEYS = ("tenant_id", "store_id", "business_date", "person_id", "entry_ts")
# The raw count columns store_daily reads.
_DAILY_COUNT_COLUMNS = (*COUNT_COLUMNS, "interval_start", "interval_end", "device_id")


def visit_rules(settings: Settings) -> VisitRules:
    """The visit and staff rules configured in ``settings``."""
    hours = settings.staff_min_visit_hours
    return VisitRules(
        repeat_window_days=settings.repeat_window_days,
        staff_min_visit_s=None if hours is None else round(hours * 3600),
        staff_min_days=settings.staff_min_days,
        staff_days_window=settings.staff_days_window,
    )


def read_staff(settings: Settings) -> pa.Table | None:
    """Enrolled staff (tenant_id, person_id) from ``settings.staff_file``; None when unset."""
    path = settings.staff_file
    if path is None:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"tenant_id", "person_id"} - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(f"staff file {path} lacks column(s) {sorted(missing)}")
            rows = [(r["tenant_id"], r["person_id"]) for r in reader]
    except OSError as exc:
        raise ConfigError(f"cannot read staff file {path}: {exc}") from exc
    return pa.table(
        {"tenant_id": [r[0] for r in rows], "person_id": [r[1] for r in rows]},
        schema=pa.schema([("tenant_id", pa.string()), ("person_id", pa.string())]),
    )


def _offsets(tenpo: TenpoResource, days: Sequence[date]) -> pa.Table | None:
    stores = tenpo.store_timezones()
    return store_offsets(stores, days) if stores else None


def _default_offset(settings: Settings, days: Sequence[date]) -> int:
    from tenpo.jobs.timezones import utc_offset_s

    return utc_offset_s(settings.default_timezone, min(days))


def _per_date(days: list[date], written: dict[tuple[str, date], int]) -> dict[str, int]:
    per: dict[date, int] = {}
    for (_, day), n in written.items():
        per[day] = per.get(day, 0) + n
    return {d.isoformat(): per.get(d, 0) for d in days}


def _write(
    context: AssetExecutionContext,
    wh: BaseWarehouse,
    table: str,
    days: list[date],
    rows: pa.Table,
    keys: Sequence[str],
) -> tuple[pa.Table, dict[str, Any], AssetCheckResult]:
    """Write the rows that keep ``keys`` unique; quarantine the others (a warning check).

    Returns the rows written, the asset metadata and the ``rows_quarantined`` check.
    """
    screened = screen_rows(rows, keys, days=days)
    quarantined = quarantine_rows(wh.lake, table, days, screened)
    written = write_dates(wh.lake, table, days, screened.kept)
    context.log.info(
        "%s: %d rows over %d date(s), %d tenant partition(s)",
        table,
        screened.kept.num_rows,
        len(days),
        len(written),
    )
    metadata = {
        "rows": screened.kept.num_rows,
        "partitions_written": sum(1 for n in written.values() if n),
        "partitions_removed": sum(1 for n in written.values() if not n),
        "rows_by_date": _per_date(days, written),
        "rows_quarantined": screened.rejected.num_rows,
    }
    return screened.kept, metadata, _quarantine_check(screened, quarantined)


def _quarantine_check(screened: Screened, keys: Sequence[str]) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="rows_quarantined",
        passed=screened.rejected.num_rows == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={**screened.summary(), "quarantine_files": list(keys[:20])},
    )


# -- checks ----------------------------------------------------------------------------------
def _null_keys(rows: pa.Table, keys: Sequence[str]) -> AssetCheckResult:
    nulls = {k: rows[k].null_count for k in keys}
    return AssetCheckResult(
        check_name="no_null_keys",
        passed=not any(nulls.values()),
        metadata={"null_keys": sum(nulls.values())},
    )


def _non_negative(rows: pa.Table, columns: Sequence[str], name: str) -> AssetCheckResult:
    bad = {
        c: int(pc.sum(pc.less(rows[c], 0)).as_py() or 0) for c in columns if c in rows.column_names
    }
    return AssetCheckResult(
        check_name=name, passed=not any(bad.values()), metadata={"negative_values": bad}
    )


def _sums(rows: pa.Table, keys: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    grouped = rows.group_by(list(keys)).aggregate([(c, "sum") for c in columns])
    out: dict[tuple, tuple] = {}
    for r in grouped.to_pylist():
        out[tuple(r[k] for k in keys)] = tuple(r[f"{c}_sum"] for c in columns)
    return out


_ADDITIVE = ("net_sales", "net_sales_incl_tax", "transactions", "units", "visitors", "passersby")


def _hourly_equals_daily(hourly: pa.Table, daily: pa.Table) -> AssetCheckResult:
    by_hour = _sums(hourly, DAILY_KEYS, _ADDITIVE)
    by_day = {
        tuple(r[k] for k in DAILY_KEYS): tuple(r[c] for c in _ADDITIVE)
        for r in daily.select([*DAILY_KEYS, *_ADDITIVE]).to_pylist()
    }
    differ: list[str] = []
    for k in sorted(set(by_hour) | set(by_day), key=str):
        hours, day = by_hour.get(k), by_day.get(k)
        if hours == day:
            continue
        if hours is None or day is None:
            differ.append(f"{k[1]} {k[2]}: only in {'daily' if hours is None else 'hourly'}")
        else:
            got = dict(zip(_ADDITIVE, hours, strict=True))
            differ.append(f"{k[1]} {k[2]}: {got} != {dict(zip(_ADDITIVE, day, strict=True))}")
    return AssetCheckResult(
        check_name="hourly_sums_equal_daily",
        passed=not differ,
        metadata={"store_dates": len(by_day), "differences": differ[:20]},
    )


def _pos_totals(wh: BaseWarehouse, raw: ibis.Table, daily: pa.Table) -> AssetCheckResult:
    """Σ net sales and transactions of ``daily`` against the raw POS rows it was built from."""
    counted = raw.kind.isin(("sale", "return"))
    expr = raw.aggregate(
        net_sales=raw.total_excl_tax.sum(where=counted),
        net_sales_incl_tax=raw.total_incl_tax.sum(where=counted),
        transactions=raw.kind.count(where=raw.kind == "sale")
        - raw.kind.count(where=raw.kind == "return"),
    )
    totals = wh.to_arrow(expr).to_pylist()[0]
    want = {
        "net_sales": totals["net_sales"] or Decimal("0.00"),
        "net_sales_incl_tax": totals["net_sales_incl_tax"] or Decimal("0.00"),
        "transactions": int(totals["transactions"] or 0),
    }
    got = {
        "net_sales": pc.sum(daily["net_sales"]).as_py() or Decimal("0.00"),
        "net_sales_incl_tax": pc.sum(daily["net_sales_incl_tax"]).as_py() or Decimal("0.00"),
        "transactions": int(pc.sum(daily["transactions"]).as_py() or 0),
    }
    return AssetCheckResult(
        check_name="pos_totals_match_raw",
        passed=got == want,
        metadata={
            "mart": {k: str(v) for k, v in got.items()},
            "raw": {k: str(v) for k, v in want.items()},
        },
    )


def _row_count(rows: pa.Table, expected: int, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="row_count",
        passed=rows.num_rows == expected,
        metadata={"rows": rows.num_rows, "expected": expected, "expected_from": what},
    )


def _source_store_dates(wh: BaseWarehouse, sources: Sequence[ibis.Table]) -> int:
    """Distinct (tenant, store, business date) over the ``sources`` (as the mart reads them)."""
    union = ibis.union(*[t.select(*DAILY_KEYS) for t in sources], distinct=True)
    return int(wh.to_arrow(union.aggregate(n=union.count()))["n"][0].as_py())


def _specs(key: str, names: Sequence[str]) -> list[AssetCheckSpec]:
    descriptions = {
        "no_null_keys": "No row has a null key column.",
        "row_count": "One row per source record group (store-date, or visit entry).",
        "visitors_non_negative": "Visitor and passer-by counts are ≥ 0.",
        "dwell_non_negative": "No visit ends before it starts.",
        "pos_totals_match_raw": "Σ net sales and transactions of the mart = raw POS totals.",
        "hourly_sums_equal_daily": "Σ over hours of additive KPIs = the daily row.",
        "rows_quarantined": "No row broke the table's key (else it is in quarantine/, "
        "the rest of the partition written).",
    }
    return [AssetCheckSpec(n, asset=key, description=descriptions[n]) for n in names]


# -- assets ----------------------------------------------------------------------------------
def kpi_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """The KPI marts over ``partitions`` and their datamart exports."""
    with beta_features():
        marts = _mart_assets(partitions)
        exports = [
            _export_asset(partitions, mart, export)
            for mart, export in zip(MART_KEYS, DATAMART_KEYS, strict=True)
        ]
    return [*marts, *exports]


def _mart_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    common: dict[str, Any] = {
        "partitions_def": partitions,
        "backfill_policy": BackfillPolicy.single_run(),
        "group_name": "kpis",
        "kinds": {"ibis", "parquet"},
        "op_tags": WRITER_TAG,
    }

    @asset(
        name=MART_STORE_VISITS_KEY,
        deps=["raw_visitor_events"],
        description="Customer visits per PersonID (entry→exit, staff excluded), all tenants.",
        check_specs=_specs(
            MART_STORE_VISITS_KEY,
            ("no_null_keys", "row_count", "dwell_non_negative", "rows_quarantined"),
        ),
        **common,
    )
    def mart_store_visits(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        settings = tenpo.get_settings()
        rules = visit_rules(settings)
        # The staff-days rule looks back at earlier dates.
        back = rules.staff_days_window - 1 if rules.staff_min_days else 0
        read_days = [min(days) - timedelta(days=i) for i in range(1, back + 1)] + days
        staff = read_staff(settings)
        offsets = _offsets(tenpo, days)
        with tenpo.open_warehouse() as wh:
            events = wh.table("raw_visitor_events", dates=read_days)
            visits = wh.run_job(
                store_visits,
                events,
                staff=None if staff is None else ibis.memtable(staff),
                offsets=None if offsets is None else ibis.memtable(offsets),
                days=days,
                rules=rules,
                default_utc_offset_s=_default_offset(settings, days),
                order_by=_VISIT_KEYS,
            )
            rows, metadata, quarantined = _write(
                context, wh, MART_STORE_VISITS_KEY, days, visits, _VISIT_KEYS
            )
            entries = wh.to_arrow(
                events.filter(
                    events.business_date.isin(days)
                    & (events.event == "entry")
                    & events.person_id.notnull()
                ).aggregate(n=ibis._.count())
            )["n"][0].as_py()
        excluded = int(entries or 0) - rows.num_rows
        metadata["staff_entries_excluded"] = excluded
        checks = [
            _null_keys(rows, _VISIT_KEYS),
            # Every PersonID entry is a visit or a staff entry; never more visits than entries.
            AssetCheckResult(
                check_name="row_count",
                passed=excluded >= 0,
                metadata={"visits": rows.num_rows, "entries": int(entries or 0)},
            ),
            _non_negative(rows, ("dwell_s",), "dwell_non_negative"),
            quarantined,
        ]
        return MaterializeResult(metadata=metadata, check_results=checks)

    @asset(
        name=MART_STORE_DAILY_KEY,
        deps=["raw_pos_transactions", "raw_iot_counts", mart_store_visits],
        description="Store KPIs per business date (tables/mart_store_daily/), all tenants.",
        check_specs=_specs(
            MART_STORE_DAILY_KEY,
            (
                "no_null_keys",
                "row_count",
                "visitors_non_negative",
                "pos_totals_match_raw",
                "rows_quarantined",
            ),
        ),
        **common,
    )
    def mart_store_daily(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        window = tenpo.get_settings().repeat_window_days
        history = [min(days) - timedelta(days=i) for i in range(1, window + 1)]
        with tenpo.open_warehouse() as wh:
            visits = wh.table(MART_STORE_VISITS_KEY, dates=[*history, *days])
            # The mart and its checks read the same raw rows: read (deduplicate, resolve POS
            # versions) each raw table once, only the columns the job uses.
            pos = wh.materialized(wh.table("raw_pos_transactions", dates=days).select(*POS_COLUMNS))
            counts = wh.materialized(
                wh.table("raw_iot_counts", dates=days).select(*_DAILY_COUNT_COLUMNS)
            )
            daily = wh.run_job(
                store_daily,
                pos,
                counts,
                visits,
                days=days,
                repeat_window_days=window,
                order_by=DAILY_KEYS,
            )
            rows, metadata, quarantined = _write(
                context, wh, MART_STORE_DAILY_KEY, days, daily, DAILY_KEYS
            )
            current = visits.filter(visits.business_date.isin(days))
            checks = [
                _null_keys(rows, DAILY_KEYS),
                _row_count(
                    rows, _source_store_dates(wh, [pos, counts, current]), "store-dates in sources"
                ),
                _non_negative(
                    rows,
                    ("visitors", "passersby", "unique_visitors", "repeat_visitors", "open_visits"),
                    "visitors_non_negative",
                ),
                _pos_totals(wh, pos, rows),
                quarantined,
            ]
        return MaterializeResult(metadata=metadata, check_results=checks)

    @asset(
        name=MART_STORE_HOURLY_KEY,
        deps=["raw_pos_transactions", "raw_iot_counts", mart_store_visits, mart_store_daily],
        description="Store KPIs per business date and local hour, all tenants.",
        check_specs=_specs(
            MART_STORE_HOURLY_KEY,
            (
                "no_null_keys",
                "visitors_non_negative",
                "hourly_sums_equal_daily",
                "rows_quarantined",
            ),
        ),
        **common,
    )
    def mart_store_hourly(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        days = partition_dates(context.partition_keys)
        settings = tenpo.get_settings()
        offsets = _offsets(tenpo, days)
        with tenpo.open_warehouse() as wh:
            hourly = wh.run_job(
                store_hourly,
                wh.table("raw_pos_transactions", dates=days),
                wh.table("raw_iot_counts", dates=days),
                wh.table(MART_STORE_VISITS_KEY, dates=days),
                offsets=None if offsets is None else ibis.memtable(offsets),
                default_utc_offset_s=_default_offset(settings, days),
                order_by=HOURLY_KEYS,
            )
            rows, metadata, quarantined = _write(
                context, wh, MART_STORE_HOURLY_KEY, days, hourly, HOURLY_KEYS
            )
            daily = wh.to_arrow(wh.table(MART_STORE_DAILY_KEY, dates=days))
        checks = [
            _null_keys(rows, HOURLY_KEYS),
            _non_negative(rows, ("visitors", "passersby"), "visitors_non_negative"),
            _hourly_equals_daily(rows, daily),
            quarantined,
        ]
        return MaterializeResult(metadata=metadata, check_results=checks)

    return [mart_store_visits, mart_store_daily, mart_store_hourly]


def _export_asset(partitions: DailyPartitionsDefinition, mart: str, name: str) -> AssetsDefinition:
    order: dict[str, Sequence[str]] = {
        MART_STORE_VISITS_KEY: _VISIT_KEYS,
        MART_STORE_DAILY_KEY: DAILY_KEYS,
        MART_STORE_HOURLY_KEY: HOURLY_KEYS,
    }

    @asset(
        name=name,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=[mart],
        group_name="datamart",
        kinds={"sql"},
        op_tags=WRITER_TAG,
        description=f"{mart} copied into the datamart, one date replaced per transaction.",
        check_specs=_specs(name, ("rows_quarantined",)),
    )
    def export(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        # Imported here: the datamart is an adapter the marts themselves do not need.
        from tenpo.datamart import export_partition
        from tenpo.datamart.schema import MART_SCHEMAS

        days = partition_dates(context.partition_keys)
        engine = tenpo.datamart_engine()
        with tenpo.open_warehouse() as wh:
            # One read for the whole range, split per date in memory.
            rows = wh.to_arrow(wh.table(mart, dates=days).order_by(list(order[mart])))
            # The datamart's own key decides here (it may be stricter than the lake's).
            key = [c.name for c in MART_SCHEMAS[mart][0].primary_key]
            screened = screen_rows(rows, key, days=days)
            quarantined = quarantine_rows(wh.lake, name, days, screened)
            rows = screened.kept
        exported: dict[str, int] = {}
        for day in days:
            day_rows = rows.filter(pc.equal(rows["business_date"], pa.scalar(day, pa.date32())))
            exported[day.isoformat()] = export_partition(engine, mart, day, day_rows)
        total = sum(exported.values())
        context.log.info("%s: %d rows over %d date(s)", name, total, len(days))
        return MaterializeResult(
            metadata={"rows": total, "rows_by_date": exported, **screened.summary()},
            check_results=[_quarantine_check(screened, quarantined)],
        )

    return export
