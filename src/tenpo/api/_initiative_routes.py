"""Initiatives (施策): register them, list them, and read their measured effect.

``POST /v1/initiatives`` (an API key with the ``admin`` scope; operator keys may name
``?tenant=``) registers an initiative in the control plane: idempotent on
``initiative_id`` (201 the first time, 200 for the same body again, 409 when it differs).
``GET /v1/initiatives`` lists the caller's (a store manager sees those at one of its
stores, naming only its stores). ``GET /v1/initiatives/{id}/effect`` serves the latest
measurement of the ``mart_initiative_effects`` assets from the datamart: per KPI the
relative effect, its interval, the controls and the pre-period fit. Every rule lives in
:mod:`tenpo.control` and :mod:`tenpo.ml.initiatives`; these routes only translate HTTP.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._problems import problem_doc
from tenpo.api.deps import (
    ADMIN_TENANT_ERRORS,
    READER_ERRORS,
    Admin,
    Control,
    Datamart,
    Reader,
    TenantParam,
    created_status,
)
from tenpo.control import InitiativeInfo, Principal
from tenpo.core.errors import NotFound
from tenpo.datamart.initiatives import initiative_effects
from tenpo.ml.initiatives import EFFECT_KPIS

__all__ = ["initiative_router"]

initiative_router = APIRouter(tags=["initiatives"])


_WRITE_ERRORS = ADMIN_TENANT_ERRORS | {
    409: problem_doc("An initiative with this id exists with different values."),
    422: problem_doc("Invalid body: unknown KPI or store, end before start, too long."),
}
InitiativeId = Annotated[str, Path(description="The initiative's id.", max_length=64)]
KPI_PATTERN = f"^({'|'.join(EFFECT_KPIS)})$"


class InitiativeCreate(BaseModel):
    """An initiative to register."""

    model_config = ConfigDict(extra="forbid")

    initiative_id: str | None = Field(
        None,
        max_length=64,
        description="Your id for it (letters, digits, `.`, `_`, `-`); default: a new one. "
        "Sending the same body with the same id again is harmless.",
    )
    name: str = Field(max_length=200, description="What it is called, e.g. `店頭プロモーション`.")
    kind: str = Field(max_length=64, description="Kind, e.g. `promotion`, `staffing`.")
    kpi: str = Field(
        description="The KPI it aims at: `net_sales`, `visitors`, `conversion_rate` or `atv` "
        "(the effect is measured on all four).",
        json_schema_extra={"pattern": KPI_PATTERN},
    )
    stores: list[str] = Field(
        min_length=1, max_length=1000, description="tenpo store ids where it runs."
    )
    start: date = Field(description="First business date (inclusive).")
    end: date = Field(description="Last business date (inclusive; at most 366 days).")
    description: str = Field("", max_length=2000)


class Initiative(BaseModel):
    """A registered initiative."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initiative_id: str
    name: str
    kind: str
    kpi: str
    stores: list[str] = Field(description="Its stores the caller may read.")
    stores_hidden: int = Field(0, description="Its other stores (counted, not named).")
    start: date
    end: date
    description: str


class InitiativePage(BaseModel):
    """The caller's initiatives, newest start first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[Initiative]


class SeriesPoint(BaseModel):
    """One date of the chart: treated and control levels relative to their pre-period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    period: str = Field(description="`pre` or `post` (the initiative's own dates).")
    treated: float | None = Field(description="Treated stores, 1.05 = 5 % above pre-period.")
    control: float | None = Field(description="Control stores, same scale.")
    control_low: float | None = Field(description="Controls' 10th percentile.")
    control_high: float | None = Field(description="Controls' 90th percentile.")


class KpiEffect(BaseModel):
    """The effect on one KPI, with the controls and the pre-period fit to judge them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kpi: str
    status: str = Field(
        description="`ok`, or why there is no estimate: `not_started`, `no_controls`, "
        "`too_few_pre_days`, `too_few_post_days`."
    )
    effect: float | None = Field(description="Relative change: 0.05 = +5 %.")
    ci_low: float | None
    ci_high: float | None
    confidence: float | None = Field(description="Level of the interval (0.9).")
    p_value: float | None
    significant: bool | None = Field(description="The interval excludes 0.")
    pre_start: date
    pre_end: date
    post_start: date
    post_end: date = Field(description="Last date measured (today's data for a running one).")
    pre_days: int
    post_days: int
    treated: list[str]
    controls: list[str] = Field(description="Control stores the caller may read.")
    controls_hidden: int = Field(description="Other control stores (counted, not named).")
    candidates: int = Field(description="Stores that could have been controls.")
    control_basis: str = Field(
        description="`group`: candidates of the treated stores' industry; `tenant`: any "
        "store of the tenant (the industry had fewer than two)."
    )
    pre_rmse: float | None = Field(description="Daily treated−control gap left unexplained.")
    pre_corr: float | None = Field(description="Correlation of treated and control (pre).")
    pre_slope_per_week: float | None = Field(description="Pre-period drift of the gap.")
    pre_slope_p: float | None
    parallel_trends: bool | None = Field(description="No significant pre-period drift.")
    treated_mean_pre: float | None
    treated_mean_post: float | None
    control_mean_pre: float | None
    control_mean_post: float | None
    series: list[SeriesPoint]


class InitiativeEffect(BaseModel):
    """An initiative and its latest measured effect (``items`` empty until measured)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initiative: Initiative
    as_of: date | None = Field(description="Last business date of the measurement.")
    method: str
    items: list[KpiEffect]


_METHOD = (
    "difference in differences of the daily log KPI, treated stores vs matched control stores "
    "(same industry, in no initiative, best pre-period fit), with day-type effects (Japanese "
    "public holidays as Sundays); Newey-West interval"
)


def _public(info: InitiativeInfo, caller: Principal | None) -> Initiative:
    shown = [s for s in info.store_ids if caller is None or caller.sees_store(s)]
    return Initiative(
        initiative_id=info.initiative_id,
        name=info.name,
        kind=info.kind,
        kpi=info.kpi,
        stores=shown,
        stores_hidden=len(info.store_ids) - len(shown),
        start=info.start,
        end=info.end,
        description=info.description,
    )


def _visible(info: InitiativeInfo, caller: Principal) -> bool:
    return any(caller.sees_store(s) for s in info.store_ids)


@initiative_router.post(
    "/v1/initiatives", response_model=Initiative, status_code=201, responses=_WRITE_ERRORS
)
def create_initiative(
    admin: Admin,
    control: Control,
    body: InitiativeCreate,
    response: Response,
    tenant: TenantParam = None,
) -> Initiative:
    """Register an initiative at some of the tenant's stores (idempotent on its id)."""
    info, created = control.ensure_initiative(
        admin.tenant(tenant),
        name=body.name,
        kind=body.kind,
        kpi=body.kpi,
        store_ids=body.stores,
        start=body.start,
        end=body.end,
        description=body.description,
        initiative_id=body.initiative_id,
    )
    created_status(response, created)
    return _public(info, None)


@initiative_router.get("/v1/initiatives", response_model=InitiativePage, responses=READER_ERRORS)
def list_initiatives(caller: Reader, control: Control) -> InitiativePage:
    """The caller's initiatives (a store manager's: those at one of its stores)."""
    items = [
        _public(i, caller)
        for i in control.list_initiatives(caller.tenant_id)
        if _visible(i, caller)
    ]
    return InitiativePage(items=items)


@initiative_router.get(
    "/v1/initiatives/{initiative_id}/effect",
    response_model=InitiativeEffect,
    responses=READER_ERRORS | {404: problem_doc("No such initiative for the caller.")},
)
def initiative_effect(
    caller: Reader, control: Control, engine: Datamart, initiative_id: InitiativeId
) -> InitiativeEffect:
    """The initiative's effect on net sales, visitors, conversion and ATV against controls."""
    try:
        info = control.get_initiative(caller.tenant_id, initiative_id)
    except NotFound:
        info = None
    if info is None or not _visible(info, caller):
        raise NotFound(f"no initiative {initiative_id!r}")
    effects = initiative_effects(engine, caller, initiative_id)
    return InitiativeEffect(
        initiative=_public(info, caller),
        as_of=effects[0].as_of if effects else None,
        method=_METHOD,
        items=[
            KpiEffect(
                **{
                    k: v
                    for k, v in vars(e).items()
                    if k not in ("initiative_id", "as_of", "series")
                },
                series=[SeriesPoint(**p) for p in e.series],
            )
            for e in effects
        ],
    )
