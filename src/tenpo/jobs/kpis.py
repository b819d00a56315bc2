"""Store KPI marts as pure Ibis functions (ARCHITECTURE.md, "KPI definitions").

Each function takes Ibis tables in the raw-table contract and returns an expression in a mart's
schema; it does no I/O and uses no engine-specific SQL, so the same code runs on DuckDB, Spark
or BigQuery. The building blocks are grouped by a list of keys so the hourly mart can reuse
them with an hour key.

Choices the definitions leave open:

* ``passersby`` is Σ ``count_in`` at ``passby`` lines. A passby counter faces the street and
  reports the people crossing its line, one direction as "in" and the other as "out";
  tenpo counts one direction so that a person walking by is counted once, and the capture
  rate compares like with like (``visitors`` is Σ ``count_in`` at ``entrance``).
* A metric whose source sent nothing for the store-date is null, not zero: a store without a
  people counter has unknown visitors, a counter-only store-date has unknown sales. The
  ``has_pos`` / ``has_counter`` flags say which sources had rows (a POS day of voids only
  counts as present, with zero sales).
* Every ratio is null when its denominator is zero or null, never 0 or infinity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tenpo.core.errors import BadInput
from tenpo.warehouse.schemas import MART_STORE_DAILY, MONEY

__all__ = ["POS_COLUMNS", "COUNT_COLUMNS", "store_daily"]

# The columns each job reads: anything else in the inputs is ignored.
POS_COLUMNS = (
    "tenant_id",
    "store_id",
    "business_date",
    "kind",
    "total_excl_tax",
    "total_incl_tax",
    "item_count",
)
COUNT_COLUMNS = ("tenant_id", "store_id", "business_date", "line", "count_in")

DAILY_KEYS = ("tenant_id", "store_id", "business_date")

_COUNTED_KINDS = ("sale", "return")  # voids count nowhere
_ENTRANCE, _PASSBY = "entrance", "passby"


def store_daily(pos_transactions: ibis.Table, iot_counts: ibis.Table) -> ibis.Table:
    """``mart_store_daily`` rows, one per (tenant_id, store_id, business_date) with any data.

    Inputs follow ``raw_pos_transactions`` / ``raw_iot_counts`` (already deduplicated);
    ``BadInput`` names any column they lack.
    """
    _require(pos_transactions, POS_COLUMNS, "pos_transactions")
    _require(iot_counts, COUNT_COLUMNS, "iot_counts")
    pos = _pos_aggregates(pos_transactions, DAILY_KEYS)
    counts = _count_aggregates(iot_counts, DAILY_KEYS)
    joined = _outer_join(pos, counts, DAILY_KEYS)
    return _with_ratios(joined).select(*_cast_to(MART_STORE_DAILY))


def _require(table: ibis.Table, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BadInput(f"{what} lacks column(s) {', '.join(missing)} needed for the KPI job")


def _money_zero() -> ibis.Value:
    return ibis.literal(Decimal("0.00"), type=_ibis_type(MONEY))


def _pos_aggregates(t: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """Sales, receipts and units per group; sums over sale and return rows only."""
    counted = t.kind.isin(_COUNTED_KINDS)
    return t.group_by(list(keys)).aggregate(
        net_sales=t.total_excl_tax.sum(where=counted).coalesce(_money_zero()),
        net_sales_incl_tax=t.total_incl_tax.sum(where=counted).coalesce(_money_zero()),
        transactions=(
            t.kind.count(where=t.kind == "sale") - t.kind.count(where=t.kind == "return")
        ),
        units=t.item_count.cast("int64").sum(where=counted).coalesce(0),
        has_pos=ibis.literal(True),
    )


def _count_aggregates(t: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """Visitors (entrance) and passers-by (passby) per group; null when that line is absent."""
    return t.group_by(list(keys)).aggregate(
        visitors=t.count_in.cast("int64").sum(where=t.line == _ENTRANCE),
        passersby=t.count_in.cast("int64").sum(where=t.line == _PASSBY),
        has_counter=ibis.literal(True),
    )


def _outer_join(left: ibis.Table, right: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """Full outer join on ``keys`` with the keys coalesced, so one-sided groups survive."""
    joined = left.join(right, list(keys), how="outer", rname="{name}_r")
    merged = {k: ibis.coalesce(joined[k], joined[f"{k}_r"]) for k in keys}
    rest = [c for c in joined.columns if c not in keys and not c.endswith("_r")]
    return joined.select(**merged, **{c: joined[c] for c in rest}).mutate(
        has_pos=ibis._.has_pos.coalesce(False),
        has_counter=ibis._.has_counter.coalesce(False),
    )


def _ratio(numerator: ibis.Value, denominator: ibis.Value) -> ibis.Value:
    """numerator / denominator as float64; null for a zero or null denominator."""
    den = denominator.cast("float64")
    return numerator.cast("float64") / den.nullif(0.0)


def _with_ratios(t: ibis.Table) -> ibis.Table:
    return t.mutate(
        atv=_ratio(t.net_sales, t.transactions),
        upt=_ratio(t.units, t.transactions),
        capture_rate=_ratio(t.visitors, t.passersby),
        conversion_rate=_ratio(t.transactions, t.visitors),
        sales_per_visitor=_ratio(t.net_sales, t.visitors),
    )


def _ibis_type(arrow_type: pa.DataType) -> dt.DataType:
    return ibis.dtype(arrow_type)


def _cast_to(schema: pa.Schema) -> list[ibis.Value]:
    """Column expressions in ``schema``'s order and types (the mart contract)."""
    return [ibis._[f.name].cast(_ibis_type(f.type)).name(f.name) for f in schema]
