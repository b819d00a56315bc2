"""The simulated chain in memory: master data plus, per store and date, traffic and sales.

Per-day data is columnar (numpy arrays) because a 100-store month holds millions of lines.
Times are seconds since local midnight of the business date (all stores are in Asia/Tokyo,
UTC+9, no daylight saving). Sales carry both money representations the vendors need: the
tax-inclusive integer yen price (vendor A) and the tax-exclusive price in sen (1/100 yen,
vendor B), both fixed per SKU in the catalog.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tenpo.simulate.config import SimConfig
from tenpo.simulate.profiles import EXECUTION_LEVERS, top_quartile_execution

IntArray = npt.NDArray[np.int64]

TIMEZONE = "Asia/Tokyo"
UTC_OFFSET = "+09:00"


@functools.lru_cache(maxsize=8192)
def day_offsets(zone: str, day: date) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The UTC offset of each wall-clock hour 0..25 of local date ``day`` in ``zone``, as
    ``±hh:mm`` and in seconds (hours from 24 are the next date's).

    A wall time is read with ``fold=0``: in the hour repeated when clocks go back, the first
    pass; in the hour skipped when they go forward, the offset before the change. The zones
    tenpo simulates change on the hour, so one offset per hour is exact.
    """
    tz = ZoneInfo(zone)
    texts: list[str] = []
    seconds: list[int] = []
    for h in range(26):
        local = datetime.combine(day + timedelta(days=h // 24), time(h % 24), tzinfo=tz)
        off = int((local.utcoffset() or timedelta(0)).total_seconds())
        sign, minutes = ("-" if off < 0 else "+"), abs(off) // 60
        texts.append(f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
        seconds.append(off)
    return tuple(texts), tuple(seconds)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Receipt kinds (``Sales.receipt_kind``).
SALE, RETURN, VOID = 0, 1, 2
# Tax classes (``Sku.tax_class``): index into TAX_PCTS.
TAX_PCTS = (0, 8, 10)


@dataclass(frozen=True)
class Tenant:
    """A retail chain; it uses one POS vendor for all its stores."""

    id: str
    name: str
    pos_vendor: str  # "vendor_a" | "vendor_b"


@dataclass(frozen=True)
class Store:
    """A store with its public master data and the latent parameters that drive it."""

    tenant_id: str
    code: str
    name: str
    industry: str
    floor_area_m2: int
    region: str
    opening_hours: dict[str, tuple[str, str] | None]  # weekday → (open, close) or closed
    archetype: str  # the planted context group: location type (profiles.LOCATIONS)
    potential: float  # net sales at top-quartile execution ÷ net sales now (expected)
    # Latent drivers (not in chain.json):
    passersby_per_day: float
    capture_rate: float
    conversion_rate: float
    basket_lines: float  # mean lines per sale receipt
    price_tilt: float  # SKU choice weight ∝ popularity × price^tilt
    dwell_median_s: float
    regular_share: float
    timezone: str = TIMEZONE
    # Context the store cannot change, and how well it is run (see profiles.Location):
    weekday_factor: tuple[float, ...] = ()  # demand mon..sun (empty: the industry's)
    hourly_traffic: tuple[float, ...] = ()  # 24 street-traffic weights (empty: the industry's)
    execution: tuple[float, ...] = ()  # per EXECUTION_LEVERS, in (0, 1]; 1 = the frontier

    def achievable_ratio(self, lever: str) -> float:
        """Lever value at top-quartile execution ÷ its value now (≥ 1; expected values).

        ``lever``: capture_rate, conversion_rate, upt, atv (= UPT × price per unit) or
        net_sales (capture × conversion × ATV, the sales tree below passers-by).
        """
        if not self.execution:
            return 1.0
        e = dict(zip(EXECUTION_LEVERS, self.execution, strict=True))
        single = {"capture_rate": e["capture"], "conversion_rate": e["conversion"], "upt": e["upt"]}
        if lever in single:
            return max(1.0, top_quartile_execution() / single[lever])
        atv = max(1.0, top_quartile_execution(2) / (e["upt"] * e["price"]))
        if lever == "atv":
            return atv
        if lever == "net_sales":
            return (
                atv
                * self.achievable_ratio("capture_rate")
                * self.achievable_ratio("conversion_rate")
            )
        raise KeyError(lever)

    def hours_on(self, day: date) -> tuple[int, int] | None:
        """Opening and closing minute of the day, or None when closed."""
        hours = self.opening_hours[WEEKDAYS[day.weekday()]]
        if hours is None:
            return None
        return _minute(hours[0]), _minute(hours[1])


def _minute(hhmm: str) -> int:
    hh, mm = hhmm.split(":")
    return int(hh) * 60 + int(mm)


@dataclass(frozen=True)
class Device:
    """An installed device; ``interval_minutes`` is the count interval it reports."""

    tenant_id: str
    device_id: str
    store_code: str
    kind: str  # people_counter | tof_camera | rgb_camera
    lines: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    interval_minutes: int = 15


@dataclass(frozen=True)
class Register:
    """One POS-master row: register ``register_code`` is in ``store_code`` on these dates."""

    tenant_id: str
    vendor: str
    register_code: str
    store_code: str
    valid_from: date
    valid_to: date | None = None  # inclusive; None while current

    def active_on(self, day: date) -> bool:
        """Whether this assignment covers ``day``."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class Sku:
    """A catalog item. Prices are fixed: incl. tax in yen and excl. tax in sen."""

    jan: str
    name: str
    price_incl: int  # yen, tax included (vendor A's 単価)
    price_excl_sen: int  # 1/100 yen, tax excluded (vendor B's unitPrice × 100)
    tax_class: int  # index into TAX_PCTS

    @property
    def tax_pct(self) -> int:
        return TAX_PCTS[self.tax_class]


@dataclass(frozen=True)
class StaffMember:
    """An enrolled employee: seen by the store's RGB camera on working days, never counted."""

    tenant_id: str
    store_code: str
    person_id: str


@dataclass
class Traffic:
    """People at one store on one date.

    Street traffic is per minute from ``window_start`` (minute of day). Customer visits are
    per person: entry/exit second, and ``person`` (tenant-wide int id, only for stores with
    an RGB camera; -1 elsewhere). Staff visits are kept apart: counters do not count staff.
    ``offline`` lists [start, end) minutes during which the people counter sent nothing.
    """

    window_start: int
    passby_in: IntArray
    passby_out: IntArray
    entry_s: IntArray
    exit_s: IntArray
    person: IntArray
    staff_index: IntArray  # index into Chain.staff
    staff_entry_s: IntArray
    staff_exit_s: IntArray
    offline: list[tuple[int, int]] = field(default_factory=list)

    @property
    def window_minutes(self) -> int:
        return len(self.passby_in)


@dataclass
class Sales:
    """Receipts of one store on one date, columnar; lines are grouped by receipt, in order.

    Quantities, prices and discounts are positive; ``receipt_kind`` gives the sign.
    """

    registers: tuple[str, ...]  # register codes active that day
    receipt_ts: IntArray  # seconds since local midnight, sorted
    receipt_kind: IntArray  # SALE | RETURN | VOID
    receipt_register: IntArray  # index into ``registers``
    line_receipt: IntArray  # receipt index of each line (non-decreasing)
    line_sku: IntArray  # index into the industry catalog
    line_qty: IntArray
    line_discount_incl: IntArray  # yen, tax included
    line_discount_excl_sen: IntArray  # sen, tax excluded

    @property
    def receipt_count(self) -> int:
        return len(self.receipt_ts)


@dataclass
class StoreDay:
    """What happened at one store on one business date (absent when the store was closed)."""

    tenant_id: str
    store_code: str
    day: date
    open_minute: int
    close_minute: int
    traffic: Traffic
    sales: Sales


INITIATIVE_KPIS = ("net_sales", "visitors", "conversion_rate", "atv")
"""KPIs a planted initiative aims at (and the lever it moves: capture for net sales and
visitors, conversion, or lines per basket for ATV)."""


@dataclass(frozen=True)
class Initiative:
    """A planted measure (施策) at some stores: ``kpi`` rises by ``true_effect`` (relative)
    on every open day from ``start`` to ``end`` (inclusive), nothing else changes."""

    tenant_id: str
    initiative_id: str
    name: str
    kind: str
    store_codes: tuple[str, ...]
    start: date
    end: date
    kpi: str
    true_effect: float

    def lift(self, store_code: str, day: date) -> float:
        """Multiplier of the lever this initiative moves at ``store_code`` on ``day``."""
        if store_code in self.store_codes and self.start <= day <= self.end:
            return 1.0 + self.true_effect
        return 1.0


@dataclass
class Chain:
    """A simulated set of tenants with their stores, devices, registers and daily activity."""

    config: SimConfig
    tenants: list[Tenant]
    stores: list[Store]
    devices: list[Device]
    registers: list[Register]
    catalogs: dict[str, list[Sku]]  # industry → SKUs
    staff: list[StaffMember]
    days: list[StoreDay]  # ordered by date, then tenant and store
    dates: list[date]
    initiatives: list[Initiative] = field(default_factory=list)

    def store(self, tenant_id: str, code: str) -> Store:
        """The store with this code (KeyError when unknown)."""
        for s in self.stores:
            if s.tenant_id == tenant_id and s.code == code:
                return s
        raise KeyError(f"{tenant_id}/{code}")

    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant with this id (KeyError when unknown)."""
        for t in self.tenants:
            if t.id == tenant_id:
                return t
        raise KeyError(tenant_id)

    def person_id(self, tenant_id: str, person: int) -> str:
        """The PersonID string of a tenant's customer number."""
        return f"{tenant_id}-p{person:07d}"
