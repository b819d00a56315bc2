"""Initiative effects in the datamart: ``mart_initiative_effects``, one row per (tenant,
initiative, KPI) with the estimate, its interval, the controls and the pre-period fit.

A snapshot: each export replaces the rows of the tenants it names (all of a tenant's
initiatives are measured together), in one transaction. Reads are scoped to one tenant;
a caller limited to some stores sees only initiatives at one of them, and of the control
stores only those it may read by id (the others are counted).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import BadInput
from tenpo.datamart._memo import SchemaMemo
from tenpo.datamart.read import Caller
from tenpo.ml.initiatives import EFFECT_COLUMNS, EFFECT_KPIS

__all__ = [
    "EffectRecord",
    "ensure_initiative_schema",
    "export_initiative_effects",
    "initiative_effects",
    "mart_initiative_effects",
]

logger = logging.getLogger(__name__)

_metadata = sa.MetaData()
_FLOAT = sa.Float(precision=53)

mart_initiative_effects = sa.Table(
    "mart_initiative_effects",
    _metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("initiative_id", sa.String(64), primary_key=True),
    sa.Column("kpi", sa.String(32), primary_key=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    *(
        sa.Column(name, _FLOAT)
        for name in (
            "effect ci_low ci_high confidence p_value std_error pre_rmse pre_corr "
            "pre_slope_per_week pre_slope_p treated_mean_pre treated_mean_post "
            "control_mean_pre control_mean_post"
        ).split()
    ),
    sa.Column("significant", sa.Boolean),
    sa.Column("parallel_trends", sa.Boolean),
    sa.Column("pre_start", sa.Date, nullable=False),
    sa.Column("pre_end", sa.Date, nullable=False),
    sa.Column("post_start", sa.Date, nullable=False),
    sa.Column("post_end", sa.Date, nullable=False),
    sa.Column("pre_days", sa.Integer, nullable=False),
    sa.Column("post_days", sa.Integer, nullable=False),
    sa.Column("candidates", sa.Integer, nullable=False),
    sa.Column("control_basis", sa.String(16), nullable=False),
    sa.Column("treated", sa.Text, nullable=False),
    sa.Column("controls", sa.Text, nullable=False),
    sa.Column("series", sa.Text, nullable=False),
)
assert {c.name for c in mart_initiative_effects.columns} == set(EFFECT_COLUMNS)


def ensure_initiative_schema(engine: Engine) -> None:
    """Create ``mart_initiative_effects`` when missing (an older layout is dropped: derived)."""
    _schema.ensure(engine)


def _create_initiative_schema(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    table = mart_initiative_effects
    if inspector.has_table(table.name):
        present = {c["name"] for c in inspector.get_columns(table.name)}
        if {c.name for c in table.columns} - present:
            logger.warning("datamart: %s of an older layout dropped", table.name)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {table.name}"))
    _metadata.create_all(engine)


_schema = SchemaMemo([t.name for t in _metadata.sorted_tables], _create_initiative_schema)


def export_initiative_effects(
    engine: Engine, tenants: Iterable[str], rows: Sequence[Mapping[str, Any]]
) -> int:
    """Replace the effect rows of ``tenants`` with ``rows`` (all theirs) in one transaction."""
    tenants = sorted(set(tenants))
    if stray := sorted({str(r["tenant_id"]) for r in rows} - set(tenants)):
        raise BadInput(f"effect rows of tenants not exported: {stray}")
    records = [{name: r[name] for name in EFFECT_COLUMNS} for r in rows]
    ensure_initiative_schema(engine)
    table = mart_initiative_effects
    with engine.begin() as conn:
        if tenants:
            conn.execute(table.delete().where(table.c.tenant_id.in_(tenants)))
        if records:
            conn.execute(table.insert(), records)
    logger.info("datamart initiative effects: %d rows for %d tenants", len(records), len(tenants))
    return len(records)


@dataclass(frozen=True)
class EffectRecord:
    """One KPI's measured effect of an initiative, as the read API serves it."""

    initiative_id: str
    kpi: str
    as_of: date
    status: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float | None
    p_value: float | None
    significant: bool | None
    pre_start: date
    pre_end: date
    post_start: date
    post_end: date
    pre_days: int
    post_days: int
    treated: list[str]
    controls: list[str]
    controls_hidden: int
    candidates: int
    control_basis: str
    pre_rmse: float | None
    pre_corr: float | None
    pre_slope_per_week: float | None
    pre_slope_p: float | None
    parallel_trends: bool | None
    treated_mean_pre: float | None
    treated_mean_post: float | None
    control_mean_pre: float | None
    control_mean_post: float | None
    series: list[dict[str, Any]]


def initiative_effects(engine: Engine, caller: Caller, initiative_id: str) -> list[EffectRecord]:
    """The latest measured effects of the caller's initiative (empty: not measured yet).

    Control stores the caller may not read are left out of ``controls`` and counted in
    ``controls_hidden``; their daily figures appear only averaged with the others.
    """
    ensure_initiative_schema(engine)
    table = mart_initiative_effects
    query = (
        sa.select(table)
        .where(table.c.tenant_id == caller.tenant_id, table.c.initiative_id == initiative_id)
        .order_by(table.c.kpi)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    out = []
    for r in rows:
        controls = json.loads(r["controls"])
        shown = [c for c in controls if caller.sees_store(c)]
        fields = {k: r[k] for k in r.keys() if k in EffectRecord.__dataclass_fields__}
        out.append(
            EffectRecord(
                **{
                    **fields,
                    "as_of": r["business_date"],
                    "treated": [s for s in json.loads(r["treated"]) if caller.sees_store(s)],
                    "controls": shown,
                    "controls_hidden": len(controls) - len(shown),
                    "series": json.loads(r["series"]),
                }
            )
        )
    order = {k: i for i, k in enumerate(EFFECT_KPIS)}
    return sorted(out, key=lambda e: order.get(e.kpi, 99))
