"""Behavioural parameters: per industry, and per planted store archetype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IndustryProfile:
    """Typical figures of a store of one industry (before archetype and noise)."""

    passersby_per_day: float  # street traffic over 24 hours
    capture_rate: float
    conversion_rate: float
    basket_lines: float
    dwell_median_s: float
    dwell_sigma: float  # of log dwell
    qty_probs: tuple[float, float, float]  # P(quantity 1, 2, 3)
    hours: tuple[tuple[str, str], ...]  # candidate opening hours
    closed_weekday_share: float  # share of stores closed one weekday
    floor_area: tuple[int, int]
    weekday_factor: tuple[float, ...]  # mon..sun
    hourly_traffic: tuple[float, ...]  # 24 relative weights of street traffic
    zones: tuple[str, ...]  # ToF zones
    name_suffix: str


def _hourly(peaks: dict[int, float], base: float = 0.15) -> tuple[float, ...]:
    weights = [base] * 24
    for hour, w in peaks.items():
        weights[hour] = w
    return tuple(weights)


_NIGHT = {0: 0.05, 1: 0.03, 2: 0.02, 3: 0.02, 4: 0.03, 5: 0.08}

INDUSTRIES: dict[str, IndustryProfile] = {
    "apparel": IndustryProfile(
        passersby_per_day=6000,
        capture_rate=0.07,
        conversion_rate=0.28,
        basket_lines=1.6,
        dwell_median_s=900,
        dwell_sigma=0.6,
        qty_probs=(0.88, 0.1, 0.02),
        hours=(("10:00", "20:00"), ("11:00", "21:00"), ("10:00", "21:00")),
        closed_weekday_share=0.15,
        floor_area=(80, 400),
        weekday_factor=(0.85, 0.8, 0.85, 0.9, 1.0, 1.35, 1.3),
        hourly_traffic=_hourly(
            {
                **_NIGHT,
                6: 0.2,
                7: 0.4,
                8: 0.5,
                9: 0.6,
                10: 0.8,
                11: 1.0,
                12: 1.2,
                13: 1.3,
                14: 1.3,
                15: 1.3,
                16: 1.2,
                17: 1.2,
                18: 1.1,
                19: 0.9,
                20: 0.6,
                21: 0.4,
            }
        ),
        zones=("women", "men", "fitting"),
        name_suffix="店",
    ),
    "drugstore": IndustryProfile(
        passersby_per_day=4500,
        capture_rate=0.16,
        conversion_rate=0.62,
        basket_lines=2.6,
        dwell_median_s=480,
        dwell_sigma=0.55,
        qty_probs=(0.82, 0.13, 0.05),
        hours=(("09:00", "22:00"), ("10:00", "21:00"), ("09:30", "21:30")),
        closed_weekday_share=0.0,
        floor_area=(150, 600),
        weekday_factor=(1.0, 0.95, 1.0, 1.0, 1.05, 1.15, 1.05),
        hourly_traffic=_hourly(
            {
                **_NIGHT,
                6: 0.3,
                7: 0.8,
                8: 1.0,
                9: 0.8,
                10: 0.8,
                11: 0.9,
                12: 1.1,
                13: 1.0,
                14: 0.9,
                15: 0.9,
                16: 1.0,
                17: 1.2,
                18: 1.3,
                19: 1.2,
                20: 0.9,
                21: 0.6,
            }
        ),
        zones=("cosmetics", "medicine", "food", "checkout"),
        name_suffix="店",
    ),
    "supermarket": IndustryProfile(
        passersby_per_day=3500,
        capture_rate=0.28,
        conversion_rate=0.82,
        basket_lines=4.5,
        dwell_median_s=1200,
        dwell_sigma=0.45,
        qty_probs=(0.75, 0.18, 0.07),
        hours=(("09:00", "22:00"), ("10:00", "21:00"), ("09:00", "21:00")),
        closed_weekday_share=0.0,
        floor_area=(800, 2500),
        weekday_factor=(0.95, 0.95, 1.0, 0.95, 1.05, 1.25, 1.15),
        hourly_traffic=_hourly(
            {
                **_NIGHT,
                6: 0.2,
                7: 0.4,
                8: 0.5,
                9: 0.7,
                10: 1.0,
                11: 1.1,
                12: 1.0,
                13: 0.8,
                14: 0.8,
                15: 1.0,
                16: 1.3,
                17: 1.5,
                18: 1.4,
                19: 1.0,
                20: 0.7,
                21: 0.5,
            }
        ),
        zones=("produce", "meat_fish", "deli", "checkout"),
        name_suffix="店",
    ),
    "cafe": IndustryProfile(
        passersby_per_day=3000,
        capture_rate=0.1,
        conversion_rate=0.88,
        basket_lines=1.7,
        dwell_median_s=2100,
        dwell_sigma=0.5,
        qty_probs=(0.92, 0.07, 0.01),
        hours=(("07:00", "19:00"), ("08:00", "20:00"), ("07:30", "20:00")),
        closed_weekday_share=0.4,
        floor_area=(40, 150),
        weekday_factor=(1.0, 1.0, 1.0, 1.0, 1.1, 1.25, 1.15),
        hourly_traffic=_hourly(
            {
                **_NIGHT,
                6: 0.4,
                7: 1.1,
                8: 1.4,
                9: 1.0,
                10: 0.8,
                11: 0.9,
                12: 1.3,
                13: 1.2,
                14: 0.9,
                15: 1.0,
                16: 0.9,
                17: 1.0,
                18: 1.0,
                19: 0.7,
                20: 0.5,
                21: 0.3,
            }
        ),
        zones=("counter", "seating", "terrace"),
        name_suffix="店",
    ),
}


@dataclass(frozen=True)
class Location:
    """A planted location type: context a store cannot change.

    The multipliers apply to the industry profile: street traffic, the *frontier* of each
    lever (what the best-run store of that context reaches), the weekly and hourly demand
    shape, and the customer mix. Execution (:data:`EXECUTION_SPREAD`) then decides how
    close to the frontier a store gets.
    """

    passersby: float
    capture: float
    conversion: float
    basket: float  # lines per receipt (UPT)
    price: float  # price per unit (SKU mix)
    regular: float
    weekend: float  # multiplies the industry's sat/sun demand
    weekday: float  # multiplies its mon-fri demand
    hourly: dict[int, float]  # local hour → multiplier on the industry's street traffic
    area: float = 1.0  # multiplies the industry's floor-area range
    hours: tuple[str, str] | None = None  # opening hours imposed by the location (a mall's)


def _hours_boost(hours: tuple[int, ...], factor: float) -> dict[int, float]:
    return dict.fromkeys(hours, factor)


LOCATIONS: dict[str, Location] = {
    "station": Location(
        passersby=2.4,
        capture=0.55,
        conversion=0.85,
        basket=0.8,
        price=0.95,
        regular=0.6,
        weekend=0.7,
        weekday=1.1,
        area=0.7,
        hourly={**_hours_boost((7, 8, 9), 2.2), **_hours_boost((17, 18, 19, 20), 1.9)},
    ),
    "office": Location(
        passersby=1.4,
        capture=0.8,
        conversion=0.95,
        basket=0.9,
        price=1.0,
        regular=1.2,
        weekend=0.4,
        weekday=1.15,
        area=0.85,
        hourly={**_hours_boost((11, 12, 13), 2.6), 8: 1.3, 19: 0.6, 20: 0.4},
    ),
    "suburban": Location(
        passersby=0.55,
        capture=1.6,
        conversion=1.05,
        basket=1.3,
        price=1.05,
        regular=1.5,
        weekend=1.3,
        weekday=0.95,
        area=1.4,
        hourly={**_hours_boost((14, 15, 16), 1.5), 7: 0.5, 8: 0.6, 20: 0.7},
    ),
    "mall": Location(
        passersby=1.0,
        capture=1.15,
        conversion=0.95,
        basket=1.05,
        price=1.12,
        regular=0.8,
        weekend=1.5,
        weekday=0.9,
        hourly={**_hours_boost((12, 13, 14, 15, 16, 17), 1.3), 10: 0.8, 20: 0.8},
        hours=("10:00", "21:00"),
    ),
}
"""Planted context groups (within an industry): where the store stands."""

EXECUTION_LEVERS = ("capture", "conversion", "upt", "price")
"""Levers with a latent execution quality each (ATV = UPT × price per unit)."""

EXECUTION_SPREAD = 0.35
"""Execution of a lever = exp(−g), g ~ U(0, spread): 1 is the context's frontier."""

TOP_QUARTILE_GAP = {"single": 0.25, "product": 0.5**0.5}
"""Lower quartile of g (single lever) and of g₁ + g₂ (a product of two, e.g. ATV), in
units of the spread: g ~ U(0, s) → Q25 = s/4; g₁ + g₂ is triangular → Q25 = s·√½."""

CAPTURE_CAP, CONVERSION_CAP = 0.9, 0.95


def top_quartile_execution(levers: int = 1) -> float:
    """Execution of a top-quartile store on one lever (or a product of two, for ATV)."""
    share = TOP_QUARTILE_GAP["single" if levers == 1 else "product"]
    return float(np.exp(-share * EXECUTION_SPREAD))


def typical_execution() -> float:
    """Mean of g → the execution at which a store shows the industry's typical figures."""
    return float(np.exp(-EXECUTION_SPREAD / 2))


def assign_locations(rng: np.random.Generator, count: int) -> list[str]:
    """Location types for ``count`` stores: each one at least once when count allows."""
    names = list(LOCATIONS)
    first = [names[i] for i in rng.permutation(len(names))][:count]
    weights = np.array([0.3, 0.2, 0.3, 0.2])
    rest = [names[i] for i in rng.choice(len(names), size=count - len(first), p=weights)]
    out = first + rest
    return [out[i] for i in rng.permutation(count)]


def location_week(industry: IndustryProfile, location: Location) -> tuple[float, ...]:
    """Demand per weekday (mon..sun) of a store of ``industry`` at ``location``."""
    week = industry.weekday_factor
    return (*(f * location.weekday for f in week[:5]), *(f * location.weekend for f in week[5:]))


def location_hourly(industry: IndustryProfile, location: Location) -> tuple[float, ...]:
    """Relative street traffic per local hour of a store of ``industry`` at ``location``."""
    return tuple(w * location.hourly.get(h, 1.0) for h, w in enumerate(industry.hourly_traffic))


REGIONS = ("東京都", "神奈川県", "大阪府", "愛知県", "福岡県", "北海道", "埼玉県", "京都府")
PLACES = (
    "渋谷",
    "新宿",
    "池袋",
    "横浜",
    "川崎",
    "梅田",
    "難波",
    "栄",
    "天神",
    "札幌",
    "大宮",
    "四条",
    "吉祥寺",
    "自由が丘",
    "中野",
    "町田",
    "船橋",
    "柏",
    "浦和",
    "藤沢",
    "元町",
    "三宮",
    "博多",
    "小倉",
    "仙台",
    "金山",
    "本町",
    "北浜",
    "豊洲",
    "品川",
)
TENANT_NAMES = (
    ("㈱さくらリテール", "さくら"),
    ("株式会社ひかり商事", "ひかり"),
    ("みどりホールディングス㈱", "みどり"),
    ("株式会社あおば", "あおば"),
    ("つばめ商店株式会社", "つばめ"),
)
BRAND_BY_INDUSTRY = {
    "apparel": "ウェア",
    "drugstore": "ドラッグ",
    "supermarket": "マート",
    "cafe": "カフェ",
}
