"""The benchmark differencing attacks of issue 11, as code, against the release.

A tenant ("me") knows its own stores' figures and reads every benchmark cell, of two
periods. Each attack turns published numbers into candidate figures of other tenants'
stores; a store is *recovered* when a candidate matches its true figure (to 1e-6). The same
attacks recover many figures from the former release (reproduced by ``_former_release``:
exact counts, mean, exact quartiles over ≥5 stores of ≥2 tenants, counts in the reasons),
so they are real; against :func:`industry_benchmarks` they must recover none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tenpo.ml import MlParams, industry_benchmarks
from tenpo.ml.benchmarks import ALL_SIZES, BENCHMARK_KPIS, size_band

ME = "me"
END = date(2026, 10, 18)
AREA = {"S": 50.0, "M": 200.0, "L": 500.0, "XL": 2000.0}


def _stores(rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """(tenant, store, industry, band) of the chain the attacker shares benchmarks with."""
    out = []

    def add(tenant: str, industry: str, band: str, n: int) -> None:
        for _ in range(n):
            out.append((tenant, f"{tenant}-{len(out)}", industry, band))

    # cafe: me dominates band S with one rival store beside; one rival store in band M
    # (band versus all), and period 2 adds a rival store in band L (period versus period).
    add(ME, "cafe", "S", 9)
    add("rival", "cafe", "S", 1)
    add("rival", "cafe", "M", 1)
    # bakery: five stores, quartiles that are store figures.
    add(ME, "bakery", "M", 3)
    add("rival", "bakery", "M", 2)
    # grocer: big enough for the new release to publish.
    add(ME, "grocer", "L", 6)
    add("rival", "grocer", "L", 5)
    add("third", "grocer", "L", 5)
    add("third", "grocer", "XL", 1)
    return out


def _features(stores: list[tuple[str, str, str, str]], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for tenant, store, industry, band in stores:
        row: dict[str, Any] = {
            "tenant_id": tenant,
            "store_id": store,
            "industry": industry,
            "floor_area_m2": AREA[band],
        }
        for kpi in BENCHMARK_KPIS:  # continuous figures: equal by chance almost never
            row[kpi] = float(rng.uniform(0.05, 0.95) if "rate" in kpi else rng.uniform(500, 3000))
        rows.append(row)
    return pd.DataFrame(rows)


def _periods() -> tuple[pd.DataFrame, pd.DataFrame]:
    stores = _stores(np.random.default_rng(0))
    one = _features(stores, seed=1)
    # Period 2: the same stores with the same figures, plus one new rival store in band L.
    new = _features([("rival", "rival-new", "cafe", "L")], seed=2)
    return one, pd.concat([one, new], ignore_index=True)


def _former_release(features: pd.DataFrame, period: str) -> pd.DataFrame:
    """The release before issue 11, reduced to what the attacks read."""
    frame = features.assign(
        size_band=[size_band(a, (100, 300, 1000)) for a in features.floor_area_m2]
    )
    rows = []
    for industry, stores in frame.groupby("industry"):
        cells = [(ALL_SIZES, stores), *stores.groupby("size_band")]
        for band, cell in cells:
            for kpi in BENCHMARK_KPIS:
                v = cell[kpi].to_numpy(dtype=float)
                n, t = len(v), cell.tenant_id.nunique()
                ok = n >= 5 and t >= 2
                reason = (
                    None
                    if ok
                    else (f"fewer than 5 stores ({n})" if n < 5 else f"fewer than 2 tenants ({t})")
                )
                q = np.quantile(v, (0.25, 0.5, 0.75)) if ok else (None,) * 3
                rows.append({
                    "period": period, "industry": industry, "size_band": band, "kpi": kpi,
                    "stores": n if ok else None, "published": ok, "suppressed_reason": reason,
                    "p25": q[0], "median": q[1], "p75": q[2], "mean": v.mean() if ok else None,
                })  # fmt: skip
    return pd.DataFrame(rows)


def _new_release(features: pd.DataFrame, period: str) -> pd.DataFrame:
    return industry_benchmarks(
        features, MlParams(), period=period, period_start=END - timedelta(days=6), period_end=END
    )


# -- the attacks: published rows (+ own figures) → candidate figures of other stores --------


def _cells(release: pd.DataFrame) -> Iterator[dict[str, Any]]:
    yield from release[release.published].to_dict("records")


def _sum_and_count(cell: dict[str, Any]) -> tuple[float, int] | None:
    n, mean = cell.get("stores"), cell.get("mean")
    if n is None or mean is None or pd.isna(n) or pd.isna(mean):
        return None
    return float(n) * float(mean), int(n)


def _own(features: pd.DataFrame, industry: str, band: str, kpi: str) -> pd.Series:
    mine = features[(features.tenant_id == ME) & (features.industry == industry)]
    if band != ALL_SIZES:
        mine = mine[[size_band(a, (100, 300, 1000)) == band for a in mine.floor_area_m2]]
    return mine[kpi]


def attack_own_stores_subtracted(release: pd.DataFrame, own: pd.DataFrame) -> list[float]:
    """n × mean − Σ own figures: the one other store's figure when n − own = 1."""
    out = []
    for cell in _cells(release):
        total = _sum_and_count(cell)
        mine = _own(own, cell["industry"], cell["size_band"], cell["kpi"])
        if total is not None and total[1] - len(mine) == 1:
            out.append(total[0] - float(mine.sum()))
    return out


def attack_band_versus_all(release: pd.DataFrame, own: pd.DataFrame) -> list[float]:
    """Σ(all) − Σ(bands published): the figures outside them, minus one's own there."""
    out = []
    for (industry, kpi), cells in pd.DataFrame(list(_cells(release))).groupby(["industry", "kpi"]):
        rows = cells.to_dict("records")
        every = next((r for r in rows if r["size_band"] == ALL_SIZES), None)
        if every is None or (total := _sum_and_count(every)) is None:
            continue
        for band in (r for r in rows if r["size_band"] != ALL_SIZES):
            part = _sum_and_count(band)
            if part is None:
                continue
            mine_elsewhere = (
                _own(own, str(industry), ALL_SIZES, str(kpi)).sum()
                - _own(own, str(industry), band["size_band"], str(kpi)).sum()
            )
            mine_n = len(_own(own, str(industry), ALL_SIZES, str(kpi))) - len(
                _own(own, str(industry), band["size_band"], str(kpi))
            )
            if total[1] - part[1] - mine_n == 1:
                out.append(total[0] - part[0] - float(mine_elsewhere))
    return out


def attack_period_versus_period(before: pd.DataFrame, after: pd.DataFrame) -> list[float]:
    """Σ(period 2) − Σ(period 1) of a cell that grew by one store: that store's figure."""
    out = []
    key = ["industry", "size_band", "kpi"]
    one = {tuple(r[k] for k in key): r for r in _cells(before)}
    for cell in _cells(after):
        prev = one.get(tuple(cell[k] for k in key))
        a, b = _sum_and_count(cell), prev and _sum_and_count(prev)
        if a is not None and b and a[1] - b[1] == 1:
            out.append(a[0] - b[0])
    return out


def attack_quantile_is_a_store(release: pd.DataFrame) -> list[float]:
    """Quartiles of few stores are store figures: every published statistic is a candidate."""
    return [
        float(c[s]) for c in _cells(release) for s in ("p25", "median", "p75", "mean")
        if c.get(s) is not None and not pd.isna(c[s])
    ]  # fmt: skip


def attack_suppressed_counts(release: pd.DataFrame) -> list[int]:
    """Counts a suppressed cell states ("fewer than 5 stores (3)")."""
    reasons = release[~release.published].suppressed_reason.dropna()
    return [int(m) for r in reasons for m in re.findall(r"\((\d+)\)", str(r))]


def _recovered(candidates: list[float], features: pd.DataFrame) -> set[tuple[str, str]]:
    """(store, kpi) of other tenants' stores whose figure is among the candidates."""
    others = features[features.tenant_id != ME]
    hits = set()
    for kpi in BENCHMARK_KPIS:
        for store, value in zip(others.store_id, others[kpi], strict=True):
            if any(abs(c - value) <= 1e-6 * max(1.0, abs(value)) for c in candidates):
                hits.add((store, kpi))
    return hits


def _attack(release: Any, one: pd.DataFrame, two: pd.DataFrame) -> dict[str, set[Any]]:
    r1, r2 = release(one, "2026-W41"), release(two, "2026-W42")
    return {
        "own stores subtracted": _recovered(attack_own_stores_subtracted(r1, one), one),
        "band versus all": _recovered(attack_band_versus_all(r1, one), one),
        "period versus period": _recovered(attack_period_versus_period(r1, r2), two),
        "quantile is a store": _recovered(
            attack_quantile_is_a_store(r1) + attack_quantile_is_a_store(r2), two
        ),
        "suppressed counts": set(attack_suppressed_counts(r1) + attack_suppressed_counts(r2)),
    }


def test_the_attacks_recover_figures_from_the_former_release() -> None:
    one, two = _periods()
    found = _attack(_former_release, one, two)
    # Every attack works there: the attack code is real.
    assert all(found.values()), {k: len(v) for k, v in found.items()}
    assert ("rival-9", "atv") in found["own stores subtracted"]  # the rival's store in band S
    assert ("rival-10", "atv") in found["band versus all"]  # its store in band M
    assert ("rival-new", "atv") in found["period versus period"]


def test_the_release_lets_no_attack_recover_a_figure() -> None:
    one, two = _periods()
    found = _attack(_new_release, one, two)
    assert found == dict.fromkeys(found, set()), {k: sorted(v)[:5] for k, v in found.items()}
    # Not by publishing nothing: the big enough industry is there, near the truth.
    release = _new_release(one, "2026-W41")
    grocer = release[(release.industry == "grocer") & (release.size_band == ALL_SIZES)]
    assert grocer.published.all()
    exact = one[one.industry == "grocer"]["atv"].median()
    median = float(grocer[grocer.kpi == "atv"]["median"].iloc[0])
    assert median == pytest.approx(exact, rel=0.25) and median != exact
    # The small cells where the former release leaked are suppressed, saying nothing.
    cafe = release[release.industry == "cafe"]
    assert not cafe.published.any()
    assert cafe.suppressed_reason.nunique() == 1 and cafe.stores_band.isna().all()


def test_band_holding_the_same_stores_as_all_repeats_its_numbers() -> None:
    # Two cells of the same stores must not give two independent noise draws to average.
    one, _ = _periods()
    release = _new_release(one[one.industry == "grocer"].assign(floor_area_m2=500.0), "W")
    cols = ["p25", "median", "p75"]
    every = release[release.size_band == ALL_SIZES].set_index("kpi")[cols]
    band = release[release.size_band == "L"].set_index("kpi")[cols]
    pd.testing.assert_frame_equal(every, band)


def test_a_changed_input_draws_fresh_noise() -> None:
    # Period versus period on quantiles: one more store must not shift the noise by a
    # predictable amount (independent draws), so the difference hides the store.
    one, _ = _periods()
    grocer = one[one.industry == "grocer"]
    a = _new_release(grocer, "W1")
    b = _new_release(
        pd.concat([grocer, grocer.iloc[[0]].assign(store_id="x", tenant_id="third")]), "W2"
    )
    cols = ["p25", "median", "p75"]
    noise = []
    for release, frame in ((a, grocer), (b, pd.concat([grocer, grocer.iloc[[0]]]))):
        cells = release[release.published & (release.size_band == ALL_SIZES)].set_index("kpi")
        exact = frame[cells.index].quantile([0.25, 0.5, 0.75]).T.to_numpy()
        noise.append(cells[cols].to_numpy() - exact)
    # Not the same shift (rounding aside) in any KPI: differencing does not cancel it.
    assert (np.abs(noise[0] - noise[1]).max(axis=1) > 1e-3).all()
