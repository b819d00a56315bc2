"""Public response models of the read API (what OpenAPI documents).

Money is a decimal string with two places (``"12345.00"``, yen) so no client parses it into
a binary float; counts are integers; ratios are JSON numbers, ``null`` when their
denominator is zero or unknown.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, create_model

from tenpo.datamart.read import ApiGrain
from tenpo.warehouse.schemas import DAILY_KPIS, SALES_TRAFFIC_KPIS

Money = Annotated[
    str,
    Field(
        pattern=r"^-?\d+\.\d{2}$",
        description="Yen as a decimal string with two places.",
        examples=["12345.00"],
    ),
]


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Health(_Public):
    """Liveness and datamart reachability."""

    status: str = Field(description="`ok` when the datamart answers.", examples=["ok"])


class Store(_Public):
    """A store of the caller's tenant."""

    store_id: str = Field(description="tenpo's store id (use it in KPI URLs).")
    code: str = Field(description="The tenant's own store code.")
    name: str
    industry: str | None = None
    region: str | None = None
    timezone: str = Field(description="IANA time zone of the store's business dates.")
    floor_area_m2: float | None = Field(None, description="Sales floor area in m².")


class StorePage(_Public):
    """One page of stores and the number of stores matching the filters."""

    items: list[Store]
    total: int = Field(ge=0, description="Stores matching the filters, over all pages.")
    limit: int
    offset: int


_KPI_DOCS: dict[str, str] = {
    "net_sales": "Σ sales − returns, excl. tax, yen.",
    "net_sales_incl_tax": "The same incl. tax, yen.",
    "transactions": "Sale receipts − return receipts.",
    "units": "Σ quantity (returns negative).",
    "atv": "net_sales / transactions (yen).",
    "upt": "units / transactions.",
    "visitors": "Entries counted at entrance lines.",
    "passersby": "People counted at pass-by lines.",
    "capture_rate": "visitors / passersby.",
    "conversion_rate": "transactions / visitors.",
    "sales_per_visitor": "net_sales / visitors (yen).",
    "has_pos": "Every day of the period had POS data.",
    "has_counter": "Every day of the period had people-counter data.",
    "unique_visitors": "Distinct customers (video PersonIDs, staff excluded) of the day; null "
    "without video, at grain `hour` and for periods of more than one day (a person visiting on "
    "two days is one unique visitor, not two).",
    "repeat_visitors": "Unique visitors of the day with a visit to any store of the tenant on an "
    "earlier business date within the repeat window (default 180 days); null as "
    "`unique_visitors`.",
    "repeat_rate": "repeat_visitors / unique_visitors; null as `unique_visitors` or when there "
    "are none.",
    "dwell_time_median_s": "Median entry→exit time of the day's visits with an exit, seconds; "
    "null without such visits, at grain `hour` and for periods of more than one day.",
    "dwell_time_mean_s": "Mean entry→exit time of the day's visits with an exit, seconds; null "
    "as `dwell_time_median_s` (the mart holds no count of closed visits to weight days by).",
    "open_visits": "Video entries without an exit (no dwell time); summed over a period; null "
    "without video and at grain `hour`.",
    "visitors_source": "Where `visitors` came from: `counter`, `video` (no people counter that "
    "day), `mixed` (a period whose days differ); null without either.",
    "has_video": "Every day of the period had video visitor events; null at grain `hour`.",
    "counter_complete": "Every entrance counter reported without a gap on every day of the "
    "period that had one; null without a counter and at grain `hour`.",
    "video_complete": "Every video entry had an exit on every day of the period that had video; "
    "null without video and at grain `hour`.",
}
"""What each KPI column of the warehouse schema means, for OpenAPI (one entry per column)."""


_REQUIRED_FLAGS = frozenset(n for n, k in SALES_TRAFFIC_KPIS if pa.types.is_boolean(k))
"""``has_pos`` and ``has_counter``: known at every grain, so never null."""


def _kpi_field(name: str, kind: pa.DataType) -> tuple[Any, Any]:
    """The response field of one KPI column: money a two-place string, counts integers,
    ratios numbers, text a string (each null when unknown), the POS and counter flags
    required booleans, the daily mart's quality flags nullable ones."""
    try:
        doc = _KPI_DOCS[name]
    except KeyError:
        raise RuntimeError(
            f"KPI column {name!r} of the warehouse schema has no description"
        ) from None
    if pa.types.is_decimal(kind):
        return Money | None, Field(None, description=doc)
    if pa.types.is_boolean(kind) and name in _REQUIRED_FLAGS:
        return bool, Field(description=doc)
    if pa.types.is_boolean(kind):
        return bool | None, Field(None, description=doc)
    if pa.types.is_string(kind):
        return str | None, Field(None, description=doc)
    if pa.types.is_integer(kind):
        return int | None, Field(None, description=doc)
    if pa.types.is_floating(kind):
        return float | None, Field(None, description=doc)
    raise RuntimeError(f"KPI column {name!r} has a type the API cannot serve: {kind}")


_KPI_ROW_FIELDS: dict[str, Any] = {
    "business_date": (
        date,
        Field(
            description="First business date of the period (the day itself at grain `day`, "
            "the Monday at `week`, the 1st at `month`)."
        ),
    ),
    "period_end": (date, Field(description="Last calendar date of the period.")),
    "days": (int, Field(ge=0, description="Days with data in the period (within the range).")),
    **{name: _kpi_field(name, kind) for name, kind in DAILY_KPIS},
}
_KpiRowColumns: Any = create_model("KpiRowColumns", __base__=_Public, **_KPI_ROW_FIELDS)
"""The period and the daily mart's KPI columns (:data:`DAILY_KPIS`), derived."""


class KpiRow(_KpiRowColumns):
    """A store's KPIs for one period (a business date at grain `day`)."""

    hour: int | None = Field(
        None, ge=0, le=23, description="Hour of day (store local time) at grain `hour`."
    )
    utc_offset_s: int | None = Field(
        None,
        description="At grain `hour`: the store's UTC offset (seconds east) during that hour. "
        "The hour repeated when clocks go back has two rows, one per offset (earlier first); "
        "the hour skipped when they go forward has none.",
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Data-quality flags: `pos_missing` (a day without POS data), "
        "`counter_missing` (a day without people-counter data), `partial_period` (fewer days "
        "with data than calendar days of the period inside the range), `counter_incomplete` "
        "(device health: a counter missed expected intervals — in this very hour at grain "
        "`hour`, on a day of the period otherwise — or sent nothing all day).",
    )
    device_flags: list[str] = Field(
        default_factory=list,
        description="Device-health flags of the period's dates (union over the store's "
        "devices, see `GET /v1/devices/health`), e.g. `missing_intervals`, `no_data`.",
    )


class KpiSeries(_Public):
    """KPIs of one store over a date range; ratios of weeks and months come from sums."""

    store_id: str
    grain: ApiGrain
    from_: date = Field(serialization_alias="from", description="First business date asked.")
    to: date = Field(description="Last business date asked (inclusive).")
    items: list[KpiRow] = Field(description="Periods with data, oldest first.")
    missing_dates: list[date] = Field(
        default_factory=list,
        description="Past business dates of the range without any data (grain day and hour).",
    )


class StoreSeries(_Public):
    """One store's KPI rows in a side-by-side answer."""

    store_id: str
    code: str
    name: str
    items: list[KpiRow]
    missing_dates: list[date] = Field(default_factory=list)


class MultiSeries(_Public):
    """KPIs of several stores side by side, one page of stores at a time."""

    grain: ApiGrain
    from_: date = Field(serialization_alias="from")
    to: date
    stores: list[StoreSeries] = Field(description="The page's stores, by code.")
    total: int = Field(ge=0, description="Stores asked for (or visible), over all pages.")
    limit: int
    offset: int


class TreeNode(_Public):
    """The sales tree of one period: net_sales = passersby × capture × conversion × ATV."""

    from_: date = Field(serialization_alias="from")
    to: date
    days: int = Field(description="Days with every input of the tree (POS and counters).")
    net_sales: Money | None = None
    passersby: int | None = None
    visitors: int | None = None
    transactions: int | None = None
    capture_rate: float | None = None
    conversion_rate: float | None = None
    atv: float | None = None


class TreeChange(_Public):
    """How one factor moved against the previous period."""

    absolute: float | None = Field(None, description="current − previous.")
    relative: float | None = Field(None, description="current / previous − 1.")
    contribution: float | None = Field(
        None,
        description="Share of the change in net sales explained by this factor "
        "(log decomposition: the four shares add up to 1).",
    )


class SalesTree(_Public):
    """The sales tree of a range and of the previous range of the same length."""

    store_id: str
    current: TreeNode
    previous: TreeNode
    change: dict[str, TreeChange] = Field(
        description="Per factor (`net_sales`, `passersby`, `capture_rate`, `conversion_rate`, "
        "`atv`)."
    )


class LoginRequest(BaseModel):
    """Email and password of a dashboard user."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, examples=["manager@example.com"])
    password: str = Field(max_length=256)


class Me(_Public):
    """The caller: a dashboard user or an API key."""

    tenant_id: str
    kind: str = Field(description="`user` or `api_key`.")
    user_id: str | None = None
    email: str | None = None
    role: str | None = None
    store_ids: list[str] | None = Field(None, description="Stores a store manager may see.")


class Problem(BaseModel):
    """An RFC 9457 problem (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:tenpo:problem:not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["store 'st_0123' not found"])
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="Invalid parameters: `loc`, `msg`, `type` each."
    )


class Coverage(_Public):
    """The business dates with daily KPIs among the caller's stores (null when none)."""

    first: date | None
    last: date | None
