"""Initiative effect assets: each initiative's effect against control stores, daily.

``mart_initiative_effects`` reads every tenant's initiatives from the control plane and
``mart_store_daily`` over the pre-periods and initiative periods up to the run's ``as_of``
(default: the latest date of the mart), measures each one with
:func:`tenpo.ml.initiatives.estimate_effect` and writes the partition ``date={as_of}`` per
tenant. ``datamart_initiative_effects`` replaces the tenants' rows in the datamart with it.
An initiative still running is measured over its days so far; one not started yet gets
rows with status ``not_started``.
"""

# No `from __future__ import annotations`: Dagster inspects the asset functions' annotations.
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    ScheduleDefinition,
    asset,
)
from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tenpo.core.errors import NotFound
from tenpo.core.settings import Settings
from tenpo.ml.initiatives import (
    EffectParams,
    InitiativeSpec,
    effect_record,
    estimate_effect,
    kpi_frame,
)
from tenpo.pipelines.kpis import MART_STORE_DAILY_KEY, WRITER_TAG
from tenpo.pipelines.ml import latest_business_date, read_daily, read_mart_day, write_mart
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.schedules import asset_job_schedule
from tenpo.warehouse.partitions import list_partitions

__all__ = [
    "DATAMART_INITIATIVES_KEY",
    "EFFECT_SCHEMA",
    "INITIATIVES_JOB",
    "MART_INITIATIVE_EFFECTS_KEY",
    "initiative_assets",
    "initiative_schedules",
]

log = logging.getLogger(__name__)

MART_INITIATIVE_EFFECTS_KEY = "mart_initiative_effects"
DATAMART_INITIATIVES_KEY = "datamart_initiative_effects"
INITIATIVES_JOB = "initiative_effects_daily"

_F = pa.float64()
EFFECT_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("initiative_id", pa.string()),
        ("kpi", pa.string()),
        ("business_date", pa.date32()),
        ("status", pa.string()),
        ("effect", _F),
        ("ci_low", _F),
        ("ci_high", _F),
        ("confidence", _F),
        ("p_value", _F),
        ("significant", pa.bool_()),
        ("std_error", _F),
        ("pre_start", pa.date32()),
        ("pre_end", pa.date32()),
        ("post_start", pa.date32()),
        ("post_end", pa.date32()),
        ("pre_days", pa.int32()),
        ("post_days", pa.int32()),
        ("treated", pa.string()),
        ("controls", pa.string()),
        ("candidates", pa.int32()),
        ("control_basis", pa.string()),
        ("pre_rmse", _F),
        ("pre_corr", _F),
        ("pre_slope_per_week", _F),
        ("pre_slope_p", _F),
        ("parallel_trends", pa.bool_()),
        ("treated_mean_pre", _F),
        ("treated_mean_post", _F),
        ("control_mean_pre", _F),
        ("control_mean_post", _F),
        ("series", pa.string()),
    ]
)
"""Schema of ``mart_initiative_effects`` (lists and the daily series are JSON text)."""


class InitiativeRunConfig(Config):
    """Run configuration of the initiative effects."""

    as_of: str | None = Field(
        default=None, description="Last business date used (default: latest in the mart)."
    )


@dataclass
class _Registry:
    tenants: list[str]
    plans: dict[str, list[Any]]
    groups: dict[str, dict[str, str]]


def _registry(settings: Settings) -> _Registry:
    """Tenants, their initiatives and store industries (none without a control plane)."""
    from tenpo.control import ControlPlane

    url = make_url(settings.control_db_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return _Registry([], {}, {})
    try:
        control = ControlPlane.open(settings.control_db_url, migrate=False)
        try:
            tenants = [t.tenant_id for t in control.list_tenants()]
            plans = {t: control.list_initiatives(t) for t in tenants}
            groups = {
                t: {s.store_id: s.industry or "" for s in control.list_stores(t)} for t in tenants
            }
        finally:
            control.dispose()
    except SQLAlchemyError as exc:
        log.warning("initiatives: control plane unreadable (%s); none measured", exc)
        return _Registry([], {}, {})
    return _Registry(tenants, plans, groups)


def measure_all(
    settings: Settings, tenpo: TenpoResource, as_of: date, params: EffectParams | None = None
) -> tuple[list[str], list[dict[str, object]]]:
    """Every tenant's initiatives measured up to ``as_of``: (tenants, effect rows)."""
    params = params or EffectParams()
    registry = _registry(settings)
    tenants, plans, groups = registry.tenants, registry.plans, registry.groups
    started = [
        i for t in tenants for i in plans[t] if i.start - timedelta(params.pre_days) <= as_of
    ]
    rows: list[dict[str, object]] = []
    if not started:
        return tenants, rows
    first = min(i.start for i in started) - timedelta(days=params.pre_days)
    daily, _ = read_daily(tenpo, first, as_of)
    kpis = kpi_frame(daily) if len(daily) else None
    for tenant in tenants:
        busy: dict[str, list[tuple[date, date]]] = {}
        for i in plans[tenant]:
            for store in i.store_ids:
                busy.setdefault(store, []).append((i.start, i.end))
        for i in plans[tenant]:
            if i.start - timedelta(params.pre_days) > as_of or kpis is None:
                continue
            spec = InitiativeSpec(tenant, i.initiative_id, i.store_ids, i.start, i.end)
            effects = estimate_effect(
                kpis, spec, busy=busy, groups=groups[tenant], params=params, as_of=as_of
            )
            rows.extend(effect_record(e, as_of) for e in effects)
    return tenants, rows


def initiative_assets() -> list[AssetsDefinition]:
    """The initiative effects mart and its datamart export."""

    @asset(
        name=MART_INITIATIVE_EFFECTS_KEY,
        deps=[MART_STORE_DAILY_KEY],
        group_name="ml",
        kinds={"parquet"},
        op_tags=WRITER_TAG,
        description="Each initiative's effect on net sales, visitors, conversion and ATV "
        "against matched control stores (difference in differences, 90 % interval).",
    )
    def mart_initiative_effects(
        context: AssetExecutionContext, config: InitiativeRunConfig, tenpo: TenpoResource
    ) -> MaterializeResult:
        lake = tenpo.open_lake()
        as_of = date.fromisoformat(config.as_of) if config.as_of else latest_business_date(lake)
        if as_of is None:
            raise NotFound("mart_store_daily is empty: materialize it before the effects")
        tenants, rows = measure_all(tenpo.get_settings(), tenpo, as_of)
        table = pa.Table.from_pylist(rows, schema=EFFECT_SCHEMA)
        write_mart(lake, MART_INITIATIVE_EFFECTS_KEY, as_of, table)
        measured = sum(1 for r in rows if r["status"] == "ok")
        context.log.info("initiative effects as of %s: %d rows, %d ok", as_of, len(rows), measured)
        return MaterializeResult(
            metadata={
                "as_of": as_of.isoformat(),
                "rows": len(rows),
                "measured": measured,
                "tenants": tenants,
            }
        )

    @asset(
        name=DATAMART_INITIATIVES_KEY,
        deps=[MART_INITIATIVE_EFFECTS_KEY],
        group_name="datamart",
        kinds={"sql"},
        op_tags=WRITER_TAG,
        description="The latest initiative effects copied into the datamart.",
    )
    def datamart_initiative_effects(
        context: AssetExecutionContext, tenpo: TenpoResource
    ) -> MaterializeResult:
        from tenpo.datamart import get_engine
        from tenpo.datamart.initiatives import export_initiative_effects

        lake = tenpo.open_lake()
        days = [d for _, d in list_partitions(lake, MART_INITIATIVE_EFFECTS_KEY)]
        if not days:
            context.log.warning("datamart initiative effects: no mart yet, nothing to export")
            return MaterializeResult(metadata={"rows": 0})
        as_of = max(days)
        table = read_mart_day(lake, MART_INITIATIVE_EFFECTS_KEY, as_of, EFFECT_SCHEMA)
        settings = tenpo.get_settings()
        tenants = _registry(settings).tenants
        rows = table.to_pylist()
        tenants = sorted(set(tenants) | {str(r["tenant_id"]) for r in rows})
        written = export_initiative_effects(get_engine(settings.datamart_db_url), tenants, rows)
        return MaterializeResult(metadata={"as_of": as_of.isoformat(), "rows": written})

    return [mart_initiative_effects, datamart_initiative_effects]


def initiative_schedules() -> list[ScheduleDefinition]:
    """Daily run of the initiative effects (04:00 Asia/Tokyo, after the night's KPIs)."""
    return [
        asset_job_schedule(
            "initiative_effects_daily_schedule",
            INITIATIVES_JOB,
            [MART_INITIATIVE_EFFECTS_KEY, DATAMART_INITIATIVES_KEY],
        )
    ]
