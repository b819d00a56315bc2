"""Building blocks shared by the KPI jobs (portable Ibis only: DuckDB, Spark, BigQuery)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tenpo.core.errors import BadInput
from tenpo.warehouse import bigquery_ibis  # noqa: F401  (BigQuery's exact median rule)
from tenpo.warehouse.schemas import MONEY

DAILY_KEYS = ("tenant_id", "store_id", "business_date")
OFFSET_COLUMNS = (
    "tenant_id",
    "store_id",
    "business_date",
    "valid_from",
    "valid_to",
    "utc_offset_s",
)
DEFAULT_UTC_OFFSET_S = 9 * 3600  # Asia/Tokyo, tenpo's default store timezone


def require(table: ibis.Table, columns: Iterable[str], what: str) -> None:
    """``BadInput`` naming the ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BadInput(f"{what} lacks column(s) {', '.join(missing)} needed for the KPI job")


def ibis_type(arrow_type: pa.DataType) -> dt.DataType:
    """The Ibis type of an Arrow type."""
    return ibis.dtype(arrow_type)


def money_zero() -> ibis.Value:
    """0.00 yen in the money type."""
    return ibis.literal(Decimal("0.00"), type=ibis_type(MONEY))


def ratio(numerator: ibis.Value, denominator: ibis.Value) -> ibis.Value:
    """numerator / denominator as float64; null for a zero or null denominator."""
    den = denominator.cast("float64")
    return numerator.cast("float64") / den.nullif(0.0)


def cast_to(schema: pa.Schema) -> list[ibis.Value]:
    """Column expressions in ``schema``'s order and types (the mart contract)."""
    return [ibis._[f.name].cast(ibis_type(f.type)).name(f.name) for f in schema]


def merge_partials(parts: Sequence[ibis.Table], keys: Sequence[str]) -> ibis.Table:
    """One row per ``keys`` from per-source partial aggregates: a UNION ALL, then one GROUP BY.

    Each part has at most one row per key and its own value columns; a column present in
    several parts must have one type. Parts are padded with typed nulls to one schema, and each
    column takes its one non-null value per key (``MAX``; booleans ``BOOL_OR``), null where no
    part has it. The same result as full outer joins of the parts with coalesced keys, but one
    scan of a small union instead of a chain of joins: cheaper to plan, compile and run.
    """
    types: dict[str, dt.DataType] = {}
    for part in parts:
        for name, typ in part.schema().items():
            if name in keys:
                continue
            if types.setdefault(name, typ) != typ:
                raise TypeError(f"column {name} has types {types[name]} and {typ} in the parts")
    padded = [
        part.select(
            *keys,
            *[
                part[name] if name in part.columns else ibis.null(typ).name(name)
                for name, typ in types.items()
            ],
        )
        for part in parts
    ]
    u = ibis.union(*padded, distinct=False)
    return u.group_by(list(keys)).aggregate(
        **{
            name: u[name].any() if typ.is_boolean() else u[name].max()
            for name, typ in types.items()
        }
    )


def left_join_on(left: ibis.Table, right: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """``left`` with ``right``'s other columns, matched on equal ``keys`` (right keys dropped)."""
    left = left.view()
    r = right.rename({f"_j_{k}": k for k in keys}).view()
    joined = left.left_join(r, [left[k] == r[f"_j_{k}"] for k in keys])
    return joined.drop(*[f"_j_{k}" for k in keys])


def with_offsets(
    t: ibis.Table, offsets: ibis.Table | None, default_offset_s: int, ts: str
) -> ibis.Table:
    """``t`` with ``_offset_s``: its store's UTC offset at the instant in column ``ts``.

    ``offsets`` follows ``tenpo.jobs.timezones.OFFSETS_SCHEMA``: per (tenant_id, store_id,
    business_date) the offset in force over ``[valid_from, valid_to)``. Each row takes the
    range that holds its own instant, so the hours either side of a daylight-saving change
    get their own offsets. Rows of stores (or instants) the table lacks get
    ``default_offset_s``.
    """
    default = ibis.literal(default_offset_s, type="int64")
    if offsets is None:
        return t.mutate(_offset_s=default)
    require(offsets, OFFSET_COLUMNS, "offsets")
    o = offsets.select(
        _o_tenant=offsets.tenant_id,
        _o_store=offsets.store_id,
        _o_date=offsets.business_date,
        _o_from=offsets.valid_from,
        _o_to=offsets.valid_to,
        _o_offset=offsets.utc_offset_s.cast("int64"),
    )
    t = t.view()
    joined = t.left_join(
        o,
        [
            t.tenant_id == o._o_tenant,
            t.store_id == o._o_store,
            t.business_date == o._o_date,
            t[ts] >= o._o_from,
            t[ts] < o._o_to,
        ],
    )
    return joined.mutate(_offset_s=joined._o_offset.coalesce(default)).drop(
        "_o_tenant", "_o_store", "_o_date", "_o_from", "_o_to", "_o_offset"
    )


def local_hour(ts: ibis.Value, offset_s: ibis.Value) -> ibis.Value:
    """Local clock hour (0-23) of a UTC instant shifted by ``offset_s`` seconds.

    Plain integer arithmetic on epoch seconds, which every backend compiles the same way.
    """
    seconds = ts.epoch_seconds().cast("int64") + offset_s
    return ((seconds % 86400) // 3600).cast("int32")
