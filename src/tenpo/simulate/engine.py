"""Generate a chain in memory: master data, then day by day, store by store, traffic and sales.

The flow of one store-day: street traffic per minute (industry hourly profile × weekday ×
noise) → visitors (each passer-by enters with the store's capture rate while it is open) →
each visitor stays a log-normal dwell → buys with the store's conversion rate (one sale
receipt at check-out) → lines drawn from the store's SKU preferences. Returns come from
other visitors, voids are a cashier cancelling a receipt just before ringing it again.

Every random draw comes from a generator seeded by (seed, purpose, tenant, store, day), so
the output depends only on the config.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta

import jpholiday
import numpy as np

from tenpo.simulate.catalog import build_catalogs
from tenpo.simulate.config import SimConfig
from tenpo.simulate.initiatives import lever_lifts, plant_initiatives
from tenpo.simulate.model import (
    RETURN,
    SALE,
    TAX_PCTS,
    TIMEZONE,
    VOID,
    WEEKDAYS,
    Chain,
    Device,
    Initiative,
    IntArray,
    Register,
    Sales,
    Sku,
    StaffMember,
    Store,
    StoreDay,
    Tenant,
    Traffic,
)
from tenpo.simulate.profiles import (
    BRAND_BY_INDUSTRY,
    CAPTURE_CAP,
    CONVERSION_CAP,
    EXECUTION_LEVERS,
    EXECUTION_SPREAD,
    INDUSTRIES,
    LOCATIONS,
    PLACES,
    REGIONS,
    TENANT_NAMES,
    assign_locations,
    location_hourly,
    location_week,
    typical_execution,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total) business dates

_VENDORS = ("vendor_a", "vendor_b")
_REGISTER_WEIGHTS = np.array([1.0, 0.7, 0.5])
_MAX_DWELL_S = 3 * 3600


def _register_weights(n: int) -> np.ndarray:
    """Share of receipts per register; a store can hold more than three on the day a
    register moves in, so the weights continue geometrically past the first three."""
    extra = _REGISTER_WEIGHTS[-1] * 0.7 ** np.arange(1, max(n - len(_REGISTER_WEIGHTS), 0) + 1)
    weights = np.concatenate([_REGISTER_WEIGHTS, extra])[:n]
    return np.asarray(weights / weights.sum())


_LAST_EXIT_AFTER_CLOSE_S = 20 * 60


def keyed_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


@dataclass
class StoreState:
    """Per-store working data that is not part of the public model."""

    store: Store
    tenant_index: int
    store_index: int
    sku_weights: np.ndarray
    has_camera: bool
    pool_start: int = 0
    pool_size: int = 0
    staff: tuple[int, ...] = ()  # indexes into Chain.staff
    counter_interval: int = 15


@dataclass
class _Master:
    """The chain's master data and the per-store working state days are simulated from."""

    chain: Chain  # with no store-days
    states: list[list[StoreState]]
    next_person: list[int]


def simulate_chain(config: SimConfig, on_progress: Progress | None = None) -> Chain:
    """Simulate the chain described by ``config`` (deterministic in ``config``)."""
    master = _master(config)
    days: list[StoreDay] = []
    for d_index, (_, store_days) in enumerate(_iter_days(config, master)):
        days.extend(store_days)
        if on_progress is not None:
            on_progress(d_index + 1, len(master.chain.dates))
    log.debug(
        "simulated %d tenants, %d stores, %d store-days, %d receipts",
        len(master.chain.tenants),
        len(master.chain.stores),
        len(days),
        sum(d.sales.receipt_count for d in days),
    )
    return dataclasses.replace(master.chain, days=days)


def simulate_master(config: SimConfig) -> Chain:
    """The chain's master data only (tenants, stores, devices, registers, catalogs, staff):
    :func:`simulate_chain` without store-days."""
    return _master(config).chain


def iter_store_days(
    config: SimConfig, tenant_ids: Collection[str] | None = None
) -> Iterator[tuple[date, list[StoreDay]]]:
    """The store-days of ``config``'s chain date by date (of ``tenant_ids`` only, if given):
    the same store-days as :func:`simulate_chain`, never more than one date in memory."""
    yield from _iter_days(config, _master(config), tenant_ids)


def _master(config: SimConfig) -> _Master:
    seed = config.seed
    catalogs = build_catalogs(keyed_rng(seed, 1))
    dates = [config.start_date + timedelta(days=i) for i in range(config.days)]
    tenants: list[Tenant] = []
    stores: list[Store] = []
    devices: list[Device] = []
    registers: list[Register] = []
    staff: list[StaffMember] = []
    states: list[list[StoreState]] = []
    next_person: list[int] = []
    initiatives: list[Initiative] = []
    for t_index, count in enumerate(config.store_counts()):
        tenant = make_tenant(t_index)
        tenants.append(tenant)
        rng = keyed_rng(seed, 2, t_index)
        tenant_states = make_stores(config, rng, tenant, t_index, count, catalogs)
        stores.extend(s.store for s in tenant_states)
        devices.extend(_devices(config, rng, tenant_states))
        registers.extend(_registers(config, rng, tenant, tenant_states, dates))
        n = 0
        for state in tenant_states:
            if state.has_camera:
                for _ in range(config.staff_per_store):
                    state.staff += (len(staff),)
                    n += 1
                    staff.append(StaffMember(tenant.id, state.store.code, f"{tenant.id}-s{n:04d}"))
        next_person.append(_allocate_pools(config, tenant_states))
        states.append(tenant_states)
        planted = plant_initiatives(
            config, keyed_rng(seed, 7, t_index), [s.store for s in tenant_states], dates
        )
        initiatives.extend(planted)
    chain = Chain(
        config, tenants, stores, devices, registers, catalogs, staff, [], dates, initiatives
    )
    return _Master(chain, states, next_person)


def _iter_days(
    config: SimConfig, master: _Master, tenant_ids: Collection[str] | None = None
) -> Iterator[tuple[date, list[StoreDay]]]:
    chain = master.chain
    next_person = list(master.next_person)
    by_tenant = {t.id: [r for r in chain.registers if r.tenant_id == t.id] for t in chain.tenants}
    shocks = regional_shocks(config.seed, len(chain.dates))
    for d_index, day in enumerate(chain.dates):
        days: list[StoreDay] = []
        for t_index, tenant_states in enumerate(master.states):
            tenant = chain.tenants[t_index]
            if tenant_ids is not None and tenant.id not in tenant_ids:
                continue
            active = [r for r in by_tenant[tenant.id] if r.active_on(day)]
            cameras = [s for s in tenant_states if s.has_camera]
            for state in tenant_states:
                hours = state.store.hours_on(day)
                if hours is None:
                    continue
                rng = keyed_rng(config.seed, 3, t_index, state.store_index, d_index)
                codes = tuple(r.register_code for r in active if r.store_code == state.store.code)
                demand = day_demand(state.store, day, shocks[d_index], config.yearly_amplitude)
                lifts = lever_lifts(chain.initiatives, state.store.tenant_id, state.store.code, day)
                store_day, used = _store_day(
                    config,
                    rng,
                    state,
                    day,
                    hours,
                    codes,
                    chain.catalogs,
                    cameras,
                    next_person[t_index],
                    demand,
                    lifts,
                )
                next_person[t_index] += used
                days.append(store_day)
        yield day, days


def regional_shocks(seed: int, days: int) -> np.ndarray:
    """Demand shock per (date, region) shared by every store there (weather, local events):
    log-normal, σ 0.1. Controls of the same region absorb it; that is what they are for."""
    return keyed_rng(seed, 6).lognormal(0.0, 0.1, (days, len(REGIONS)))


def day_demand(store: Store, day: date, shocks: np.ndarray, yearly_amplitude: float = 0.0) -> float:
    """Street traffic of ``store`` on ``day`` relative to its average day (before noise).

    Weekday shape of its context; a Japanese public holiday trades like a Sunday; with
    ``yearly_amplitude`` a yearly cycle (log amplitude, peak at the year-end sales, trough in
    February) multiplies it.
    """
    week = store.weekday_factor or INDUSTRIES[store.industry].weekday_factor
    weekday = 6 if jpholiday.is_holiday(day) else day.weekday()
    season = 1.0
    if yearly_amplitude:
        angle = 2.0 * np.pi * (day.timetuple().tm_yday - 355) / 365.25
        season = float(np.exp(yearly_amplitude * (0.8 * np.cos(angle) + 0.2 * np.cos(2 * angle))))
    return float(week[weekday] * shocks[REGIONS.index(store.region)] * season)


def make_tenant(index: int) -> Tenant:
    name, _ = TENANT_NAMES[index % len(TENANT_NAMES)]
    if index >= len(TENANT_NAMES):
        name = f"{name}{index // len(TENANT_NAMES) + 1}"
    return Tenant(f"t{index + 1}", name, _VENDORS[index % 2])


def make_stores(
    config: SimConfig,
    rng: np.random.Generator,
    tenant: Tenant,
    t_index: int,
    count: int,
    catalogs: dict[str, list[Sku]],
) -> list[StoreState]:
    _, brand = TENANT_NAMES[t_index % len(TENANT_NAMES)]
    locations = assign_locations(rng, count)
    places = [PLACES[i] for i in rng.permutation(len(PLACES))]
    camera_count = round(config.rgb_camera_share * count)
    if config.rgb_camera_share > 0:
        camera_count = max(1, camera_count)
    cameras = set(rng.choice(count, size=camera_count, replace=False).tolist())
    typical = typical_execution()
    states: list[StoreState] = []
    for i in range(count):
        industry = config.industries[(i + t_index) % len(config.industries)]
        prof = INDUSTRIES[industry]
        loc = LOCATIONS[locations[i]]
        low, high = prof.floor_area
        area = int(rng.integers(low, high + 1) * loc.area) // 5 * 5
        hours = prof.hours[int(rng.integers(0, len(prof.hours)))]
        hours = loc.hours or hours
        opening: dict[str, tuple[str, str] | None] = dict.fromkeys(WEEKDAYS, hours)
        if rng.random() < prof.closed_weekday_share and loc.hours is None:
            opening[WEEKDAYS[int(rng.integers(0, 5))]] = None  # closed one weekday (mon-fri)
        place = places[i % len(places)]
        if i >= len(places):
            place += f"第{i // len(places) + 1}"
        size = (area / ((low + high) / 2)) ** 0.25
        # Execution per lever: how close to its context's frontier the store is run.
        execution = np.exp(-rng.uniform(0.0, EXECUTION_SPREAD, len(EXECUTION_LEVERS)))
        ex = dict(zip(EXECUTION_LEVERS, execution.tolist(), strict=True))
        # The frontier of a lever (its value at execution 1) is set by the context alone;
        # a 3 % nuisance stands for what neither the context nor the execution explains.
        frontier = rng.lognormal(0.0, 0.03, 4) / typical
        skus = catalogs[industry]
        popularity = 1.0 / (rng.permutation(len(skus)) + 1.0) ** 0.8
        prices = np.array([s.price_excl_sen for s in skus], dtype=float)
        unit_price = prices.mean() * loc.price * frontier[3] * ex["price"]
        tilt = _tilt_for(popularity, prices, unit_price)
        store = Store(
            tenant_id=tenant.id,
            code=f"S{i + 1:03d}",
            name=f"{brand}{BRAND_BY_INDUSTRY[industry]} {place}{prof.name_suffix}",
            industry=industry,
            floor_area_m2=area,
            region=REGIONS[int(rng.integers(0, len(REGIONS)))],
            opening_hours=opening,
            archetype=locations[i],
            potential=1.0,
            passersby_per_day=prof.passersby_per_day
            * loc.passersby
            * size
            * float(rng.lognormal(0, 0.2))
            * config.traffic_scale,
            capture_rate=min(CAPTURE_CAP, prof.capture_rate * loc.capture * frontier[0])
            * ex["capture"],
            conversion_rate=min(CONVERSION_CAP, prof.conversion_rate * loc.conversion * frontier[1])
            * ex["conversion"],
            basket_lines=max(1.0, prof.basket_lines * loc.basket * frontier[2] * ex["upt"]),
            price_tilt=tilt,
            dwell_median_s=prof.dwell_median_s * float(rng.lognormal(0, 0.12)),
            regular_share=min(0.95, config.regular_share * loc.regular),
            weekday_factor=location_week(prof, loc),
            hourly_traffic=location_hourly(prof, loc),
            execution=tuple(round(v, 6) for v in execution.tolist()),
            timezone=store_timezone(config, i),
        )
        store = replace(store, potential=round(store.achievable_ratio("net_sales"), 4))
        weights = popularity * prices**store.price_tilt
        states.append(
            StoreState(
                store=store,
                tenant_index=t_index,
                store_index=i,
                sku_weights=weights / weights.sum(),
                has_camera=i in cameras,
                counter_interval=1 if rng.random() < config.one_minute_counter_share else 15,
            )
        )
    return states


def _tilt_for(popularity: np.ndarray, prices: np.ndarray, unit_price: float) -> float:
    """The price tilt at which the SKU mix (popularity × price^tilt) averages ``unit_price``.

    The weighted mean price rises with the tilt, so bisection finds it (clipped to ±6).
    """
    log_p = np.log(prices)

    def mean_price(tilt: float) -> float:
        w = popularity * np.exp(tilt * (log_p - log_p.max()))
        return float((w * prices).sum() / w.sum())

    low, high = -6.0, 6.0
    for _ in range(50):
        mid = (low + high) / 2
        if mean_price(mid) < unit_price:
            low = mid
        else:
            high = mid
    return round((low + high) / 2, 6)


def _devices(config: SimConfig, rng: np.random.Generator, states: list[StoreState]) -> list[Device]:
    devices: list[Device] = []
    for state in states:
        s = state.store
        low = s.code.lower()
        devices.append(
            Device(
                s.tenant_id,
                f"pc-{low}",
                s.code,
                "people_counter",
                lines=("entrance", "passby"),
                interval_minutes=state.counter_interval,
            )
        )
        if rng.random() < config.tof_camera_share:
            zones = INDUSTRIES[s.industry].zones
            # Its count lines are its zones (it reports in/out counts per zone).
            devices.append(
                Device(s.tenant_id, f"tof-{low}", s.code, "tof_camera", lines=zones, zones=zones)
            )
        if state.has_camera:
            devices.append(Device(s.tenant_id, f"cam-{low}", s.code, "rgb_camera"))
    return devices


def _registers(
    config: SimConfig,
    rng: np.random.Generator,
    tenant: Tenant,
    states: list[StoreState],
    dates: list[date],
) -> list[Register]:
    per_industry = {"supermarket": (2, 4), "drugstore": (2, 4), "apparel": (1, 3), "cafe": (1, 2)}
    rows: list[Register] = []
    number = 0
    for state in states:
        low, high = per_industry[state.store.industry]
        since = dates[0] - timedelta(days=int(rng.integers(60, 700)))
        for k in range(int(rng.integers(low, high))):
            number += 1
            code = f"{number:04d}" if tenant.pos_vendor == "vendor_a" else f"POS-{k + 1}"
            rows.append(Register(tenant.id, tenant.pos_vendor, code, state.store.code, since))
    movable = [r for r in rows if sum(1 for o in rows if o.store_code == r.store_code) >= 2]
    if (
        config.move_register
        and tenant.pos_vendor == "vendor_a"
        and len(dates) >= 7
        and len(states) >= 2
        and movable
    ):
        moved = movable[-1]  # the last register of a store that keeps at least one
        targets = [s.store.code for s in states if s.store.code != moved.store_code]
        target = targets[int(rng.integers(0, len(targets)))]
        on = dates[len(dates) // 2]
        rows[rows.index(moved)] = Register(
            moved.tenant_id, moved.vendor, moved.register_code, moved.store_code,
            moved.valid_from, on - timedelta(days=1),
        )  # fmt: skip
        rows.append(Register(tenant.id, tenant.pos_vendor, moved.register_code, target, on))
        log.debug(
            "register %s moves %s → %s on %s", moved.register_code, moved.store_code, target, on
        )
    return rows


def _allocate_pools(config: SimConfig, states: list[StoreState]) -> int:
    """Give each camera store a contiguous range of regular customers; returns the next id."""
    next_id = 1
    for state in states:
        if not state.has_camera:
            continue
        s = state.store
        daily_regulars = s.passersby_per_day * 0.7 * s.capture_rate * s.regular_share
        state.pool_start = next_id
        state.pool_size = max(20, round(daily_regulars * config.customer_pool_factor))
        next_id += state.pool_size
    return next_id


def _store_day(
    config: SimConfig,
    rng: np.random.Generator,
    state: StoreState,
    day: date,
    hours: tuple[int, int],
    registers: tuple[str, ...],
    catalogs: dict[str, list[Sku]],
    cameras: list[StoreState],
    next_person: int,
    demand: float = 1.0,
    lifts: dict[str, float] | None = None,
) -> tuple[StoreDay, int]:
    store = state.store
    prof = INDUSTRIES[store.industry]
    lifts = lifts or {}
    open_m, close_m = hours
    start, end = max(0, open_m - 60), min(24 * 60, close_m + 60)
    minutes = np.arange(start, end)
    hour = minutes // 60
    profile = np.asarray(store.hourly_traffic or prof.hourly_traffic)
    hour_noise = rng.lognormal(0.0, 0.1, 24)
    daily = store.passersby_per_day * demand * rng.lognormal(0, 0.06)
    lam = daily * profile[hour] * hour_noise[hour] / profile.sum() / 60.0
    passby = rng.poisson(lam)
    passby_in = rng.binomial(passby, 0.5)
    accepting = (minutes >= open_m) & (minutes < close_m - 5)
    capture = store.capture_rate * lifts.get("capture", 1.0)
    entering = rng.binomial(passby, np.where(accepting, capture, 0.0))
    n = int(entering.sum())
    entry_s = np.repeat(minutes, entering) * 60 + rng.integers(0, 60, n)
    entry_s.sort()
    dwell = np.clip(
        rng.lognormal(np.log(store.dwell_median_s), prof.dwell_sigma, n), 60, _MAX_DWELL_S
    )
    exit_s = np.minimum(entry_s + dwell.astype(np.int64), close_m * 60 + _LAST_EXIT_AFTER_CLOSE_S)
    exit_s = np.maximum(exit_s, entry_s + 30)

    person, used = _persons(config, rng, state, cameras, n, next_person)
    staff_index, staff_in, staff_out = _staff_shifts(rng, state, open_m, close_m)
    offline = _offline(config, rng, state, open_m, close_m)
    traffic = Traffic(
        window_start=start,
        passby_in=passby_in.astype(np.int64),
        passby_out=(passby - passby_in).astype(np.int64),
        entry_s=entry_s.astype(np.int64),
        exit_s=exit_s.astype(np.int64),
        person=person,
        staff_index=staff_index,
        staff_entry_s=staff_in,
        staff_exit_s=staff_out,
        offline=offline,
    )
    sales = _sales(config, rng, state, registers, catalogs[store.industry], entry_s, exit_s, lifts)
    return StoreDay(store.tenant_id, store.code, day, open_m, close_m, traffic, sales), used


def _persons(
    config: SimConfig,
    rng: np.random.Generator,
    state: StoreState,
    cameras: list[StoreState],
    n: int,
    next_person: int,
) -> tuple[IntArray, int]:
    """PersonIDs (ints) of the visitors of a camera store; -1 everywhere else."""
    if not state.has_camera:
        return np.full(n, -1, dtype=np.int64), 0
    regular = rng.random(n) < state.store.regular_share
    others = [c for c in cameras if c is not state]
    cross = regular & (rng.random(n) < config.cross_store_share) if others else np.zeros(n, bool)
    pool_start = np.full(n, state.pool_start, dtype=np.int64)
    pool_size = np.full(n, state.pool_size, dtype=np.int64)
    if others:
        pick = rng.integers(0, len(others), n)
        starts = np.array([c.pool_start for c in others], dtype=np.int64)
        sizes = np.array([c.pool_size for c in others], dtype=np.int64)
        pool_start = np.where(cross, starts[pick], pool_start)
        pool_size = np.where(cross, sizes[pick], pool_size)
    # Skewed draw: a few regulars come very often, most now and then.
    offset = np.floor(pool_size * rng.random(n) ** 1.6).astype(np.int64)
    person = np.where(regular, pool_start + offset, -1)
    newcomers = int((~regular).sum())
    person[~regular] = np.arange(next_person, next_person + newcomers)
    return person.astype(np.int64), newcomers


def _staff_shifts(
    rng: np.random.Generator, state: StoreState, open_m: int, close_m: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Shifts of the store's enrolled staff who work today (entry/exit seconds)."""
    index, entry, exit_ = [], [], []
    working = rng.random(len(state.staff)) < 0.85  # the others have a day off
    if len(state.staff) and not working.any():
        working[int(rng.integers(0, len(state.staff)))] = True  # someone opens the store
    for member, works in zip(state.staff, working.tolist(), strict=True):
        if not works:
            continue
        length = int(rng.integers(5 * 60, 9 * 60 + 1))
        latest_start = max(open_m - 30, close_m + 30 - length)
        begin = int(rng.integers(open_m - 30, latest_start + 1))
        index.append(member)
        entry.append(begin * 60 + int(rng.integers(0, 300)))
        exit_.append(min(begin + length, close_m + 30) * 60 + int(rng.integers(0, 300)))
    as_array = [np.asarray(x, dtype=np.int64) for x in (index, entry, exit_)]
    return as_array[0], as_array[1], as_array[2]


def _offline(
    config: SimConfig, rng: np.random.Generator, state: StoreState, open_m: int, close_m: int
) -> list[tuple[int, int]]:
    if config.device_gap_rate == 0 or rng.random() >= config.device_gap_rate:
        return []
    step = state.counter_interval
    begin = int(rng.integers(open_m, max(open_m + 1, close_m - 90))) // 15 * 15
    length = int(rng.integers(2, 7)) * 15
    return [(begin - begin % step, begin + length)]


def _sales(
    config: SimConfig,
    rng: np.random.Generator,
    state: StoreState,
    registers: tuple[str, ...],
    skus: list[Sku],
    entry_s: IntArray,
    exit_s: IntArray,
    lifts: dict[str, float],
) -> Sales:
    store = state.store
    prof = INDUSTRIES[store.industry]
    n = len(entry_s)
    buyer = np.flatnonzero(rng.random(n) < store.conversion_rate * lifts.get("conversion", 1.0))
    sale_ts = np.maximum(entry_s[buyer] + 5, exit_s[buyer] - rng.integers(15, 120, len(buyer)))
    n_sale = len(buyer)
    basket = store.basket_lines * lifts.get("basket", 1.0)
    sale_lines = np.minimum(1 + rng.poisson(basket - 1.0, n_sale), 30)

    n_return = int(rng.binomial(n_sale, config.return_rate)) if n else 0
    returner = rng.choice(n, size=min(n_return, n), replace=False) if n else np.zeros(0, int)
    return_ts = np.minimum(
        entry_s[returner] + rng.integers(30, 240, len(returner)), exit_s[returner]
    )
    return_lines = 1 + (rng.random(len(returner)) < 0.2)

    n_void = int(rng.binomial(n_sale, config.void_rate)) if n_sale else 0
    voided = rng.choice(n_sale, size=n_void, replace=False) if n_void else np.zeros(0, np.int64)
    void_ts = np.maximum(sale_ts[voided] - rng.integers(20, 90, len(voided)), 0)

    # Lines of sales and returns; voids copy the lines of the sale they were re-rung as.
    sku_count = len(skus)
    price = np.array([s.price_incl for s in skus], dtype=np.int64)
    tax_pct = np.array([TAX_PCTS[s.tax_class] for s in skus], dtype=np.int64)
    total_sale_lines = int(sale_lines.sum())
    sale_sku = rng.choice(sku_count, size=total_sale_lines, p=state.sku_weights)
    sale_qty = 1 + rng.choice(3, size=total_sale_lines, p=np.asarray(prof.qty_probs))
    gross = price[sale_sku] * sale_qty
    discounted = rng.random(total_sale_lines) < config.discount_rate
    share = rng.choice(np.array([0.1, 0.2, 0.3, 0.5]), size=total_sale_lines)
    sale_disc = np.where(discounted, np.maximum(1, np.floor(gross * share)).astype(np.int64), 0)
    sale_disc = np.where(sale_disc >= gross, 0, sale_disc)
    total_return_lines = int(return_lines.sum())
    return_sku = rng.choice(sku_count, size=total_return_lines, p=state.sku_weights)

    sale_starts = np.concatenate([[0], np.cumsum(sale_lines)[:-1]]).astype(np.int64)
    void_sku, void_qty, void_disc = _gather_lines(
        sale_starts[voided], sale_lines[voided], sale_sku, sale_qty, sale_disc
    )

    ts = np.concatenate([sale_ts, return_ts, void_ts]).astype(np.int64)
    kind = np.concatenate(
        [np.full(n_sale, SALE), np.full(len(returner), RETURN), np.full(len(voided), VOID)]
    ).astype(np.int64)
    line_counts = np.concatenate([sale_lines, return_lines, sale_lines[voided]]).astype(np.int64)
    line_sku = np.concatenate([sale_sku, return_sku, void_sku]).astype(np.int64)
    line_qty = np.concatenate([sale_qty, np.ones(total_return_lines, np.int64), void_qty])
    line_disc = np.concatenate([sale_disc, np.zeros(total_return_lines, np.int64), void_disc])

    reg_p = _register_weights(len(registers))
    sale_register = rng.choice(len(registers), size=n_sale, p=reg_p)
    register = np.concatenate(
        [
            sale_register,
            rng.choice(len(registers), size=len(returner), p=reg_p),
            sale_register[voided],
        ]
    ).astype(np.int64)

    order = np.lexsort((kind == SALE, ts))  # by time; a void comes before its re-ringing
    starts = np.concatenate([[0], np.cumsum(line_counts)[:-1]]).astype(np.int64)
    line_sku, line_qty, line_disc = _gather_lines(
        starts[order], line_counts[order], line_sku, line_qty, line_disc
    )
    counts = line_counts[order]
    line_receipt = np.repeat(np.arange(len(order), dtype=np.int64), counts)
    disc_excl_sen = (2 * line_disc * 10_000 + (100 + tax_pct[line_sku])) // (
        2 * (100 + tax_pct[line_sku])
    )
    return Sales(
        registers=registers,
        receipt_ts=ts[order],
        receipt_kind=kind[order],
        receipt_register=register[order],
        line_receipt=line_receipt,
        line_sku=line_sku,
        line_qty=line_qty.astype(np.int64),
        line_discount_incl=line_disc.astype(np.int64),
        line_discount_excl_sen=disc_excl_sen.astype(np.int64),
    )


def _gather_lines(starts: IntArray, counts: IntArray, *columns: IntArray) -> tuple[IntArray, ...]:
    """The lines of the given receipts (``starts``/``counts`` into ``columns``), in order."""
    total = int(counts.sum())
    if total == 0:
        return tuple(np.zeros(0, np.int64) for _ in columns)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index = np.repeat(starts - offsets, counts) + np.arange(total)
    return tuple(np.asarray(c)[index].astype(np.int64) for c in columns)


def store_timezone(config: SimConfig, index: int) -> str:
    """The zone of a tenant's ``index``-th store: ``dst_store_share`` of them, spread evenly
    and in turn over ``dst_timezones``, keep daylight saving time; the others Asia/Tokyo.

    Draws nothing from the random streams: every other figure of the chain is the same."""
    share = config.dst_store_share
    before, upto = int(index * share), int((index + 1) * share)
    if upto == before:
        return TIMEZONE
    return config.dst_timezones[before % len(config.dst_timezones)]
