"""Ground truth: the KPIs tenpo must find, computed from the in-memory chain (not the files).

Definitions follow ARCHITECTURE.md, with the tax rules of FORMATS.md:

- vendor A (amounts incl. tax): per receipt and rate r with S = Σ line amounts (signed),
  tax = sign(S)·floor(|S|·r/(1+r)) and excl. = S − tax;
- vendor B (amounts excl. tax): per receipt and rate the subtotal is as sent and the
  vendor's tax is floor(subtotal_r·r); returns are negative.

Voids count nowhere. ``visitors`` are the true customer entries (staff are never counted);
``visitors_counted`` is what the people counter reported (lower when it was offline).
``passersby`` = Σ (in + out) at the ``passby`` line: people walking past in either
direction. PersonID KPIs (unique/repeat visitors, dwell) exist only for stores with an RGB
camera and exclude enrolled staff. One person's overlapping stays at one store on one day
(the draws allow them; an analyzer sees them as two tracks) are one visit, as in
``mart_store_visits``: its dwell runs from the first entry to the last exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

import numpy as np

from tenpo.simulate.model import RETURN, SALE, TAX_PCTS, Chain, IntArray, Store, StoreDay

__all__ = [
    "TARGET_KPIS",
    "DailyTruth",
    "TargetTruth",
    "daily_truth",
    "target_truth",
    "vendor_a_tax",
    "vendor_b_tax",
]

REPEAT_WINDOW_DAYS = 180
_PCT = np.asarray(TAX_PCTS, dtype=np.int64)


@dataclass(frozen=True)
class DailyTruth:
    """True KPIs of one store on one business date (None: not observable at that store)."""

    tenant_id: str
    store_code: str
    business_date: date
    net_sales: Decimal
    net_sales_incl_tax: Decimal
    transactions: int
    units: int
    visitors: int
    visitors_counted: int
    passersby: int
    passersby_counted: int
    unique_visitors: int | None
    repeat_visitors: int | None
    median_dwell_s: Decimal | None


def vendor_a_tax(amount_incl: int, tax_pct: int) -> int:
    """Vendor A's tax in yen of a signed per-rate receipt sum incl. tax: floor(|S|·r/(1+r))."""
    tax = abs(amount_incl) * tax_pct // (100 + tax_pct)
    return -tax if amount_incl < 0 else tax


def vendor_b_tax(subtotal_sen: int, tax_pct: int) -> int:
    """Vendor B's tax in yen of a per-rate subtotal in sen (≥ 0): floor(subtotal·r)."""
    return subtotal_sen * tax_pct // 10_000


def daily_truth(
    chain: Chain, last_seen: dict[str, dict[int, int]] | None = None
) -> list[DailyTruth]:
    """One row per simulated (open) store-day, in the order of ``chain.days``.

    ``last_seen`` (tenant → person → last date ordinal, updated here) carries the repeat-visitor
    state over from earlier dates when a chain's days are given a date at a time.
    """
    vendors = {t.id: t.pos_vendor for t in chain.tenants}
    industry = {(s.tenant_id, s.code): s.industry for s in chain.stores}
    cameras = {(d.tenant_id, d.store_code) for d in chain.devices if d.kind == "rgb_camera"}
    catalogs = {
        name: (
            np.array([s.price_incl for s in skus], dtype=np.int64),
            np.array([s.price_excl_sen for s in skus], dtype=np.int64),
            np.array([s.tax_class for s in skus], dtype=np.int64),
        )
        for name, skus in chain.catalogs.items()
    }
    visits = _visit_kpis(chain, cameras, last_seen)
    rows: list[DailyTruth] = []
    for sd in chain.days:
        key = (sd.tenant_id, sd.store_code)
        price_incl, price_excl, tax_class = catalogs[industry[key]]
        if vendors[sd.tenant_id] == "vendor_a":
            excl, incl = _vendor_a_sales(sd, price_incl, tax_class)
        else:
            excl, incl = _vendor_b_sales(sd, price_excl, tax_class)
        kind = sd.sales.receipt_kind
        sign = np.where(kind == SALE, 1, np.where(kind == RETURN, -1, 0))
        units = int((sd.sales.line_qty * sign[sd.sales.line_receipt]).sum())
        t = sd.traffic
        counted_entries, counted_passby = _counted(sd)
        unique, repeat, dwell = visits.get((key, sd.day), (None, None, None))
        rows.append(
            DailyTruth(
                tenant_id=sd.tenant_id,
                store_code=sd.store_code,
                business_date=sd.day,
                net_sales=excl,
                net_sales_incl_tax=incl,
                transactions=int((kind == SALE).sum() - (kind == RETURN).sum()),
                units=units,
                visitors=len(t.entry_s),
                visitors_counted=counted_entries,
                passersby=int(t.passby_in.sum() + t.passby_out.sum()),
                passersby_counted=counted_passby,
                unique_visitors=unique,
                repeat_visitors=repeat,
                median_dwell_s=dwell,
            )
        )
    return rows


def _receipt_rate_sums(sd: StoreDay, amounts: IntArray, tax_class: IntArray) -> IntArray:
    """Σ line amounts per (receipt, tax class), shape (receipts, 3), voids included."""
    s = sd.sales
    keys = s.line_receipt * 3 + tax_class[s.line_sku]
    sums = np.zeros(s.receipt_count * 3, dtype=np.int64)
    np.add.at(sums, keys, amounts)
    return sums.reshape(-1, 3)


def _signs(sd: StoreDay) -> IntArray:
    kind = sd.sales.receipt_kind
    return np.where(kind == SALE, 1, np.where(kind == RETURN, -1, 0)).astype(np.int64)


def _vendor_a_sales(
    sd: StoreDay, price_incl: IntArray, tax_class: IntArray
) -> tuple[Decimal, Decimal]:
    s = sd.sales
    amounts = price_incl[s.line_sku] * s.line_qty - s.line_discount_incl
    signed = _receipt_rate_sums(sd, amounts, tax_class) * _signs(sd)[:, None]
    tax = np.sign(signed) * (np.abs(signed) * _PCT // (100 + _PCT))
    incl = int(signed.sum())
    return Decimal(incl - int(tax.sum())), Decimal(incl)


def _vendor_b_sales(
    sd: StoreDay, price_excl_sen: IntArray, tax_class: IntArray
) -> tuple[Decimal, Decimal]:
    s = sd.sales
    amounts = price_excl_sen[s.line_sku] * s.line_qty - s.line_discount_excl_sen
    subtotal = _receipt_rate_sums(sd, amounts, tax_class)
    tax_yen = subtotal * _PCT // 10_000
    signs = _signs(sd)[:, None]
    excl_sen = int((subtotal * signs).sum())
    incl_sen = excl_sen + 100 * int((tax_yen * signs).sum())
    return Decimal(excl_sen).scaleb(-2), Decimal(incl_sen).scaleb(-2)


def _counted(sd: StoreDay) -> tuple[int, int]:
    """Entries and passers-by the counter reported (nothing during offline windows)."""
    t = sd.traffic
    if not t.offline:
        return len(t.entry_s), int(t.passby_in.sum() + t.passby_out.sum())
    minute = np.arange(t.window_start, t.window_start + t.window_minutes)
    online = np.ones(len(minute), dtype=bool)
    entry_minute = t.entry_s // 60
    entries_online = np.ones(len(entry_minute), dtype=bool)
    for begin, end in t.offline:
        online &= (minute < begin) | (minute >= end)
        entries_online &= (entry_minute < begin) | (entry_minute >= end)
    passby = int((t.passby_in + t.passby_out)[online].sum())
    return int(entries_online.sum()), passby


def _visit_kpis(
    chain: Chain,
    cameras: set[tuple[str, str]],
    last_seen: dict[str, dict[int, int]] | None = None,
) -> dict[tuple[tuple[str, str], date], tuple[int, int, Decimal | None]]:
    """Unique visitors, repeat visitors and median dwell per camera store-day."""
    if last_seen is None:
        last_seen = {}
    for t in chain.tenants:
        last_seen.setdefault(t.id, {})
    out: dict[tuple[tuple[str, str], date], tuple[int, int, Decimal | None]] = {}
    by_date: dict[date, list[StoreDay]] = {}
    for sd in chain.days:
        if (sd.tenant_id, sd.store_code) in cameras:
            by_date.setdefault(sd.day, []).append(sd)
    for day in sorted(by_date):
        ordinal = day.toordinal()
        seen_today: list[tuple[str, IntArray]] = []
        for sd in by_date[day]:
            persons = np.unique(sd.traffic.person)
            seen = last_seen[sd.tenant_id]
            repeat = sum(
                1 for p in persons.tolist() if p in seen and ordinal - seen[p] <= REPEAT_WINDOW_DAYS
            )
            dwell = merged_dwell(sd.traffic.person, sd.traffic.entry_s, sd.traffic.exit_s)
            median = _median(dwell)
            out[((sd.tenant_id, sd.store_code), day)] = (len(persons), repeat, median)
            seen_today.append((sd.tenant_id, persons))
        for tenant_id, persons in seen_today:
            seen = last_seen[tenant_id]
            for p in persons.tolist():
                seen[p] = ordinal
    return out


def merged_dwell(person: IntArray, entry_s: IntArray, exit_s: IntArray) -> IntArray:
    """Dwell seconds of each visit once a person's overlapping stays are merged into one.

    A stay that enters at or before the latest exit of the person's earlier stays joins them.
    """
    if len(person) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((exit_s, entry_s, person))
    p, entry, exit_ = person[order], entry_s[order], exit_s[order]
    # Shift each person's times apart so one running maximum serves every person at once.
    rank = np.cumsum(np.concatenate(([0], (p[1:] != p[:-1]).astype(np.int64))))
    span = int(max(entry.max(), exit_.max())) + 1
    entry, exit_ = entry + rank * span, exit_ + rank * span
    ended = np.maximum.accumulate(exit_)
    starts = np.concatenate(([True], entry[1:] > ended[:-1]))
    first_entry = entry[starts]
    last_exit = np.maximum.reduceat(exit_, np.flatnonzero(starts))
    return (last_exit - first_entry).astype(np.int64)


def _median(values: IntArray) -> Decimal | None:
    if len(values) == 0:
        return None
    ordered = np.sort(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(int(ordered[mid]))
    return Decimal(int(ordered[mid - 1]) + int(ordered[mid])) / 2


TARGET_KPIS = ("capture_rate", "conversion_rate", "atv", "upt", "net_sales")
"""KPIs of ``truth/targets.csv``, in row order."""

TARGET_WINDOW_DAYS = 56
"""The targets' default window (``MlParams.window_weeks`` = 8 weeks)."""


@dataclass(frozen=True)
class TargetTruth:
    """What a store shows over the target window, and what it would reach at top-quartile
    execution in its context (``net_sales`` per open day)."""

    tenant_id: str
    store_code: str
    kpi: str
    actual: float | None
    achievable: float | None


class _HasStores(Protocol):
    @property
    def stores(self) -> list[Store]: ...
    @property
    def dates(self) -> list[date]: ...


def target_truth(
    chain: _HasStores,
    rows: list[DailyTruth] | None = None,
    *,
    window_days: int = TARGET_WINDOW_DAYS,
) -> list[TargetTruth]:
    """Per store and TARGET_KPIS: the actual value over the last ``window_days`` dates.

    ``actual`` is a ratio of sums over the window (as tenpo's features are), from the true
    visitors and passers-by; ``achievable`` = actual × the store's execution ratio
    (:meth:`Store.achievable_ratio`): the same store and context, its lever run at the top
    quartile of execution (unchanged when it already is). None where a ratio has a zero
    denominator.
    """
    if rows is None:
        if not isinstance(chain, Chain):
            raise TypeError("rows are required unless chain is a full Chain")
        rows = daily_truth(chain)
    first = chain.dates[-min(window_days, len(chain.dates))]
    sums: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r.business_date < first:
            continue
        acc = sums.setdefault((r.tenant_id, r.store_code), [0.0] * 6)
        for i, v in enumerate(
            (float(r.net_sales), r.transactions, r.units, r.visitors, r.passersby, 1)
        ):
            acc[i] += v
    out: list[TargetTruth] = []
    for store in chain.stores:
        key = (store.tenant_id, store.code)
        if key not in sums:
            continue
        sales, tx, units, visitors, passersby, days = sums[key]
        actual = {
            "capture_rate": visitors / passersby if passersby else None,
            "conversion_rate": tx / visitors if visitors else None,
            "atv": sales / tx if tx else None,
            "upt": units / tx if tx else None,
            "net_sales": sales / days,
        }
        for kpi in TARGET_KPIS:
            value = actual[kpi]
            achievable = None if value is None else value * store.achievable_ratio(kpi)
            out.append(TargetTruth(store.tenant_id, store.code, kpi, value, achievable))
    return out
