"""The same chain at store-day grain: daily and hourly KPIs without receipts or files.

For the ML back-tests (targets, initiative effects), which need hundreds of stores over
months but only their KPIs. Stores (context, execution), initiatives, weekly shape, Japanese
holidays and regional demand shocks are exactly those of :func:`simulate_chain` for the
same config; the day itself is drawn per hour instead of per person: passers-by (Poisson),
visitors (binomial on the capture rate), receipts (binomial on the conversion rate), lines
per receipt (1 + Poisson), SKUs and quantities as in the full simulator. Returns, voids,
discounts and tax rounding are left out (net sales = Σ tax-excluded price × quantity).

For the forecast back-tests the config's ``yearly_amplitude`` (a yearly cycle),
``outlier_rate`` (one-off demand events), ``device_gap_rate`` (a counter offline for a few
hours: ``visitors_counted`` below ``visitors``) and ``outage_rate`` (store-days that never
reach the marts, see :func:`store_day_marts`) make the series as irregular as real ones.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from tenpo.simulate.catalog import build_catalogs
from tenpo.simulate.config import SimConfig
from tenpo.simulate.engine import (
    StoreState,
    day_demand,
    keyed_rng,
    make_stores,
    make_tenant,
    regional_shocks,
)
from tenpo.simulate.initiatives import lever_lifts, plant_initiatives
from tenpo.simulate.model import Initiative, Store, Tenant, day_offsets
from tenpo.simulate.profiles import INDUSTRIES
from tenpo.simulate.truth import DailyTruth

__all__ = ["StoreDays", "simulate_store_days", "store_day_marts"]


@dataclass
class StoreDays:
    """Stores, initiatives and per store-day truth (``daily``) and hourly receipts/visitors."""

    config: SimConfig
    tenants: list[Tenant]
    stores: list[Store]
    initiatives: list[Initiative]
    dates: list[date]
    daily: list[DailyTruth]
    # tenant_id, store_id, business_date, hour, transactions, visitors, visitors_counted,
    # net_sales (float yen: the day's sales spread over its hours by receipts)
    hourly: pd.DataFrame

    def store(self, tenant_id: str, code: str) -> Store:
        """The store with this code (KeyError when unknown)."""
        for s in self.stores:
            if s.tenant_id == tenant_id and s.code == code:
                return s
        raise KeyError(f"{tenant_id}/{code}")


def simulate_store_days(config: SimConfig) -> StoreDays:
    """Daily and hourly KPIs of the chain of ``config`` (deterministic in ``config``)."""
    seed = config.seed
    catalogs = build_catalogs(keyed_rng(seed, 1))
    prices = {
        k: np.array([s.price_excl_sen for s in v], dtype=np.int64) for k, v in catalogs.items()
    }
    dates = [config.start_date + timedelta(days=i) for i in range(config.days)]
    tenants: list[Tenant] = []
    states: list[StoreState] = []
    initiatives: list[Initiative] = []
    for t_index, count in enumerate(config.store_counts()):
        tenant = make_tenant(t_index)
        tenants.append(tenant)
        tenant_states = make_stores(
            config, keyed_rng(seed, 2, t_index), tenant, t_index, count, catalogs
        )
        states.extend(tenant_states)
        initiatives.extend(
            plant_initiatives(
                config, keyed_rng(seed, 7, t_index), [s.store for s in tenant_states], dates
            )
        )
    shocks = regional_shocks(seed, len(dates))
    daily: list[DailyTruth] = []
    hourly: dict[str, list[object]] = {
        k: []
        for k in (
            "tenant_id",
            "store_id",
            "business_date",
            "hour",
            "utc_offset_s",
            "transactions",
            "visitors",
            "visitors_counted",
            "net_sales",
        )
    }
    cdfs = [_cdfs(state) for state in states]
    for d_index, day in enumerate(dates):
        for state, state_cdfs in zip(states, cdfs, strict=True):
            store = state.store
            hours = store.hours_on(day)
            if hours is None:
                continue
            rng = keyed_rng(seed, 8, state.tenant_index, state.store_index, d_index)
            demand = day_demand(store, day, shocks[d_index], config.yearly_amplitude)
            demand *= _demand_event(config, state, d_index)
            lifts = lever_lifts(initiatives, store.tenant_id, store.code, day)
            row, tx_h, vis_h = _store_day(rng, state, state_cdfs, day, hours, demand, lifts, prices)
            counted_h = _counter_gap(config, state, d_index, hours, vis_h)
            if counted_h is not vis_h:
                row = dataclasses.replace(row, visitors_counted=int(counted_h.sum()))
            daily.append(row)
            sales_h = float(row.net_sales) * tx_h / max(1, row.transactions)
            active = np.flatnonzero(tx_h + vis_h)
            hourly["tenant_id"] += [store.tenant_id] * len(active)
            hourly["store_id"] += [store.code] * len(active)
            hourly["business_date"] += [day] * len(active)
            hourly["hour"] += active.tolist()
            offsets = day_offsets(store.timezone, day)[1]  # each hour its own offset
            hourly["utc_offset_s"] += [offsets[h] for h in active.tolist()]
            hourly["transactions"] += tx_h[active].tolist()
            hourly["visitors"] += vis_h[active].tolist()
            hourly["visitors_counted"] += counted_h[active].tolist()
            hourly["net_sales"] += np.round(sales_h[active], 2).tolist()
    return StoreDays(
        config, tenants, [s.store for s in states], initiatives, dates, daily, pd.DataFrame(hourly)
    )


def _demand_event(config: SimConfig, state: StoreState, d_index: int) -> float:
    """A one-off local event's demand multiplier (1.0 on an ordinary day)."""
    if config.outlier_rate == 0:
        return 1.0
    rng = keyed_rng(config.seed, 9, state.tenant_index, state.store_index, d_index)
    if rng.random() >= config.outlier_rate:
        return 1.0
    return float(rng.uniform(1.8, 2.5) if rng.random() < 0.6 else rng.uniform(0.3, 0.5))


def _counter_gap(
    config: SimConfig, state: StoreState, d_index: int, hours: tuple[int, int], vis: np.ndarray
) -> np.ndarray:
    """Visitors the counter reported per hour: none for 2-6 hours when it went offline."""
    if config.device_gap_rate == 0:
        return vis
    rng = keyed_rng(config.seed, 10, state.tenant_index, state.store_index, d_index)
    if rng.random() >= config.device_gap_rate:
        return vis
    first = int(rng.integers(hours[0] // 60, max(hours[0] // 60 + 1, hours[1] // 60 - 1)))
    counted = vis.copy()
    counted[first : first + int(rng.integers(2, 7))] = 0
    return counted


def store_day_marts(sd: StoreDays) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the daily and hourly marts would hold for ``sd``: observed, not true, figures.

    Daily columns: tenant_id, store_id, business_date, visitors (as counted), transactions,
    net_sales (float yen), has_pos, has_counter, counter_complete; hourly: tenant_id, store_id,
    business_date, hour, utc_offset_s (+9 h), visitors, transactions, net_sales. Store-days of
    an outage (``outage_rate``) are absent from both.
    """
    cfg = sd.config
    rng = keyed_rng(cfg.seed, 11)
    daily = pd.DataFrame(
        {
            "tenant_id": [r.tenant_id for r in sd.daily],
            "store_id": [r.store_code for r in sd.daily],
            "business_date": [r.business_date for r in sd.daily],
            "visitors": [r.visitors_counted for r in sd.daily],
            "transactions": [r.transactions for r in sd.daily],
            "net_sales": [float(r.net_sales) for r in sd.daily],
            "counter_complete": [r.visitors_counted == r.visitors for r in sd.daily],
        }
    )
    daily["has_pos"] = True
    daily["has_counter"] = True
    keep = rng.random(len(daily)) >= cfg.outage_rate
    daily = daily[keep].reset_index(drop=True)
    hourly = sd.hourly.drop(columns=["visitors"]).rename(columns={"visitors_counted": "visitors"})
    kept = daily[["tenant_id", "store_id", "business_date"]]
    hourly = hourly.merge(kept, on=["tenant_id", "store_id", "business_date"])
    return daily, hourly


@functools.cache
def _hour_shares(hours: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per local hour: minutes of the counted window (an hour either side of opening) and
    the share of them in which a passer-by may enter (open, not in the last 5 minutes)."""
    open_m, close_m = hours
    minute = np.arange(24 * 60)
    in_window = (minute >= max(0, open_m - 60)) & (minute < min(24 * 60, close_m + 60))
    accepting = (minute >= open_m) & (minute < close_m - 5)
    window_h = in_window.reshape(24, 60).sum(axis=1)
    accept_h = accepting.reshape(24, 60).sum(axis=1)
    return window_h, np.divide(accept_h, window_h, out=np.zeros(24), where=window_h > 0)


def _cdfs(state: StoreState) -> tuple[np.ndarray, np.ndarray]:
    """The store's SKU and quantity CDFs (computed once per simulation, in ``simulate_store_days``;
    a module-level cache keyed by ``id(state)`` handed a later run another store's CDF when a
    freed state's id was reused)."""
    qty = np.asarray(INDUSTRIES[state.store.industry].qty_probs, dtype=float)
    return np.cumsum(state.sku_weights), np.cumsum(qty / qty.sum())


def _store_day(
    rng: np.random.Generator,
    state: StoreState,
    cdfs: tuple[np.ndarray, np.ndarray],
    day: date,
    hours: tuple[int, int],
    demand: float,
    lifts: dict[str, float],
    prices: dict[str, np.ndarray],
) -> tuple[DailyTruth, np.ndarray, np.ndarray]:
    store = state.store
    prof = INDUSTRIES[store.industry]
    window_h, share = _hour_shares(hours)
    profile = np.asarray(store.hourly_traffic or prof.hourly_traffic)
    daily = store.passersby_per_day * demand * rng.lognormal(0, 0.06)
    lam = daily * profile * rng.lognormal(0.0, 0.1, 24) / profile.sum() / 60.0 * window_h
    passby = rng.poisson(lam)
    visitors = rng.binomial(rng.binomial(passby, share), store.capture_rate * lifts["capture"])
    tx = rng.binomial(visitors, store.conversion_rate * lifts["conversion"])
    n_tx = int(tx.sum())
    basket = store.basket_lines * lifts["basket"]
    lines = n_tx + int(rng.poisson(n_tx * (basket - 1.0)))
    sku_cdf, qty_cdf = cdfs
    sku = np.minimum(np.searchsorted(sku_cdf, rng.random(lines)), len(sku_cdf) - 1)
    qty = 1 + np.minimum(np.searchsorted(qty_cdf, rng.random(lines)), 2)
    sen = int((prices[store.industry][sku] * qty).sum())
    units = int(qty.sum())
    row = DailyTruth(
        tenant_id=store.tenant_id,
        store_code=store.code,
        business_date=day,
        net_sales=Decimal(sen).scaleb(-2),
        net_sales_incl_tax=Decimal(sen).scaleb(-2),
        transactions=n_tx,
        units=units,
        visitors=int(visitors.sum()),
        visitors_counted=int(visitors.sum()),
        passersby=int(passby.sum()),
        passersby_counted=int(passby.sum()),
        unique_visitors=None,
        repeat_visitors=None,
        median_dwell_s=None,
    )
    return row, tx.astype(np.int64), visitors.astype(np.int64)
