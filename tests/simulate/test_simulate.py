"""Config validation, determinism, planted archetypes, repeat visitors, timing and the CLI."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.simulate import Chain, SimConfig, daily_truth, simulate, simulate_chain
from tenpo.simulate.catalog import build_catalogs, is_valid_jan13, jan_check_digit
from tenpo.simulate.initiatives import lever_lifts
from tenpo.simulate.profiles import LOCATIONS, top_quartile_execution
from tenpo.simulate.truth import TARGET_KPIS


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- config -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stores": 4, "stores_per_tenant": 2}, "either `stores` or `stores_per_tenant`"),
        ({"tenants": 3, "stores": 2}, "must be at least `tenants`"),
        ({"days": 0}, "greater than or equal to 1"),
        ({"industries": ("cafe", "bakery")}, "industries"),
        ({"industries": ("cafe", "cafe")}, "lists an industry twice"),
        ({"seed": "7"}, "valid integer"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_is_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_store_counts() -> None:
    assert SimConfig(tenants=3, stores=10).store_counts() == [4, 3, 3]
    assert SimConfig(tenants=2, stores_per_tenant=4).store_counts() == [4, 4]
    assert SimConfig().store_counts() == [5, 5]


def test_jan_codes() -> None:
    assert jan_check_digit("490123456789") == 4  # FORMATS.md's 4901234567894
    assert is_valid_jan13("4901234567894") and not is_valid_jan13("4901234567895")
    with pytest.raises(ValueError, match="12 digits"):
        jan_check_digit("49012")
    catalogs = build_catalogs(__import__("numpy").random.default_rng(0))
    jans = [s.jan for skus in catalogs.values() for s in skus]
    assert len(jans) == len(set(jans)) and all(is_valid_jan13(j) for j in jans)
    rates = {s.tax_pct for skus in catalogs.values() for s in skus}
    assert rates == {0, 8, 10}
    for skus in catalogs.values():
        for s in skus:
            s.name.encode("cp932")
            assert s.price_incl > 0 and s.price_excl_sen > 0


# -- determinism --------------------------------------------------------------------------
def test_same_seed_same_bytes(tmp_path: Path) -> None:
    config = SimConfig(seed=5, stores=4, days=3, traffic_scale=0.2)
    simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first == second
    simulate(config.model_copy(update={"seed": 6}), tmp_path / "c")
    third = tree(tmp_path / "c")
    assert third["pos/vendor_a/t1/master.csv"] != first["pos/vendor_a/t1/master.csv"] or (
        third["truth/daily_kpis.csv"] != first["truth/daily_kpis.csv"]
    )


@pytest.mark.slow
def test_parallel_writing_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenpo.simulate import write_chain, writers

    monkeypatch.setattr(writers, "PARALLEL_MIN_STORE_DAYS", 0)
    chain = simulate_chain(SimConfig(seed=5, stores=4, days=3, traffic_scale=0.2))
    write_chain(chain, tmp_path / "one")
    manifest = write_chain(chain, tmp_path / "two", workers=2)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    assert [e.path for e in manifest.entries][:3] == [
        "chain.json",
        "pos/vendor_a/t1/master.csv",
        "pos/vendor_a/t1/sales_20261005.csv",
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_streaming_a_date_at_a_time_gives_the_same_bytes(tmp_path: Path, workers: int) -> None:
    from tenpo.simulate import simulate_to_dir, write_chain

    # Cameras everywhere: repeat visitors carry state from one date to the next.
    config = SimConfig(seed=5, stores=4, days=4, traffic_scale=0.2, rgb_camera_share=1.0)
    write_chain(simulate_chain(config), tmp_path / "whole")
    manifest = simulate_to_dir(config, tmp_path / "streamed", workers=workers)
    whole, streamed = tree(tmp_path / "whole"), tree(tmp_path / "streamed")
    assert whole.keys() == streamed.keys()
    assert [k for k in whole if whole[k] != streamed[k]] == []
    assert len(manifest.entries) == len(whole) - 1  # manifest.json lists the others


# -- planted structure ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_chain() -> Chain:
    """Enough stores for every location type several times (no files written)."""
    return simulate_chain(
        SimConfig(seed=2, tenants=2, stores=40, days=7, traffic_scale=0.25, rgb_camera_share=1.0)
    )


def _per_store(chain: Chain) -> dict[tuple[str, str], dict[str, float]]:
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in daily_truth(chain):
        s = sums[(row.tenant_id, row.store_code)]
        s["net_sales"] += float(row.net_sales)
        s["transactions"] += row.transactions
        s["visitors"] += row.visitors
        s["passersby"] += row.passersby
        s["unique"] += row.unique_visitors or 0
        s["repeat"] += row.repeat_visitors or 0
    return sums


def test_context_and_execution_are_planted(wide_chain: Chain) -> None:
    """Location types set traffic and the demand shape; execution sets how far each lever
    is from its context's frontier, and the store's potential follows from it alone."""
    sums = _per_store(wide_chain)
    by_loc: dict[str, list[dict[str, float]]] = defaultdict(list)
    for store in wide_chain.stores:
        by_loc[store.archetype].append(sums[(store.tenant_id, store.code)])
    assert set(by_loc) == set(LOCATIONS)
    assert all(0.0 < e <= 1.0 for s in wide_chain.stores for e in s.execution)
    passby = {loc: sum(s["passersby"] for s in rows) / len(rows) for loc, rows in by_loc.items()}
    assert passby["station"] > passby["mall"] > passby["suburban"]
    for store in wide_chain.stores:
        ratios = {k: store.achievable_ratio(k) for k in TARGET_KPIS}
        assert all(r >= 1.0 for r in ratios.values())
        assert ratios["net_sales"] == pytest.approx(
            ratios["capture_rate"] * ratios["conversion_rate"] * ratios["atv"]
        )
        assert store.potential == pytest.approx(ratios["net_sales"], abs=1e-4)
    # The worst-run capture has the most headroom: 1/e against the top quartile's execution.
    worst = min(wide_chain.stores, key=lambda s: s.execution[0])
    assert worst.achievable_ratio("capture_rate") == pytest.approx(
        top_quartile_execution() / worst.execution[0]
    )


def test_repeat_visitors_also_across_stores(wide_chain: Chain) -> None:
    visited: dict[tuple[str, int], set[str]] = defaultdict(set)
    for sd in wide_chain.days:
        for p in set(sd.traffic.person.tolist()):
            visited[(sd.tenant_id, p)].add(sd.store_code)
    assert any(len(stores) > 1 for stores in visited.values())
    rows = daily_truth(wide_chain)
    assert sum(r.repeat_visitors or 0 for r in rows) > 0
    assert all(r.repeat_visitors == 0 for r in rows if r.business_date == date(2026, 10, 5))


def test_stores_differ_in_size_industry_and_hours(wide_chain: Chain) -> None:
    stores = wide_chain.stores
    assert {s.industry for s in stores} == {"apparel", "drugstore", "supermarket", "cafe"}
    assert len({s.floor_area_m2 for s in stores}) > 20
    assert any(None in s.opening_hours.values() for s in stores), "some close on a weekday"
    cafes = [s for s in stores if s.industry == "cafe"]
    markets = [s for s in stores if s.industry == "supermarket"]
    assert max(s.floor_area_m2 for s in cafes) < min(s.floor_area_m2 for s in markets)


def test_receipts_follow_opening_hours(wide_chain: Chain) -> None:
    for sd in wide_chain.days[:50]:
        ts = sd.sales.receipt_ts
        assert ts.min() >= sd.open_minute * 60 - 90
        assert ts.max() <= sd.close_minute * 60 + 20 * 60
        assert (sd.traffic.exit_s > sd.traffic.entry_s).all()


# -- timing -------------------------------------------------------------------------------
def test_twenty_stores_for_a_week_is_quick(tmp_path: Path) -> None:
    started = time.perf_counter()
    manifest = simulate(SimConfig(seed=1, stores=20, days=7), tmp_path)
    elapsed = time.perf_counter() - started
    assert len(manifest.entries) > 200
    # ≈ 20/3000 of the 100-store month (measured at ≈ 45 s CPU); generous for loaded CI.
    assert elapsed < 30, f"20 stores × 7 days took {elapsed:.1f} s"


# -- CLI -----------------------------------------------------------------------------------
def test_cli_writes_files_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["simulate", "--out", str(out), "--stores", "2", "--days", "2", "--start",
         "2026-11-02", "--seed", "3", "--workers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Simulated 2 tenants, 2 stores, 2 days" in result.output
    assert (out / "manifest.json").is_file()
    assert (out / "pos" / "vendor_a" / "t1" / "sales_20261102.csv").is_file()


def test_cli_rejects_bad_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--stores", "1"])
    assert result.exit_code == 2
    assert "`stores` (1) must be at least `tenants` (2)" in " ".join(result.output.split())


def test_initiatives_are_planted_with_room_for_controls() -> None:
    config = SimConfig(seed=5, tenants=2, stores=24, days=42, initiatives_per_tenant=4)
    chain = simulate_chain(config.model_copy(update={"traffic_scale": 0.05}))
    assert chain.initiatives
    for tenant in chain.tenants:
        mine = [i for i in chain.initiatives if i.tenant_id == tenant.id]
        treated = [c for i in mine for c in i.store_codes]
        assert len(treated) == len(set(treated)) <= 12 // 2  # half the stores stay controls
        for i in mine:
            assert (i.start - chain.dates[0]).days >= 21  # a pre-period of half the dates
            assert i.end <= chain.dates[-1] and 7 <= (i.end - i.start).days + 1 <= 28
            assert 0.03 <= i.true_effect <= 0.12
            assert len({chain.store(tenant.id, c).industry for c in i.store_codes}) == 1
    i = chain.initiatives[0]
    assert lever_lifts([i], i.tenant_id, i.store_codes[0], i.start)
    lifts = lever_lifts([i], i.tenant_id, i.store_codes[0], i.start)
    assert max(lifts.values()) == pytest.approx(1 + i.true_effect)
    assert lever_lifts(
        [i], i.tenant_id, i.store_codes[0], i.end + timedelta(days=1)
    ) == dict.fromkeys(("capture", "conversion", "basket"), 1.0)


def test_stores_in_daylight_saving_zones(tmp_path: Path) -> None:
    """dst_store_share puts stores in London, New York and Auckland in turn; their devices'
    clocks tick in elapsed time, so London's 25 Oct 2026 (25 hours) has 100 heartbeats, each
    an instant of its own with the offset in force, and receipts carry that day's offsets."""
    import json
    from datetime import UTC, datetime

    config = SimConfig(
        seed=3, tenants=1, stores=4, days=3, start_date=date(2026, 10, 24),
        dst_store_share=0.75, rgb_camera_share=0.0, tof_camera_share=0.0,
    )  # fmt: skip
    simulate(config, tmp_path)
    chain = json.loads((tmp_path / "chain.json").read_text(encoding="utf-8"))
    zones = [s["timezone"] for s in chain["stores"]]
    assert zones == ["Asia/Tokyo", "Europe/London", "America/New_York", "Pacific/Auckland"]
    london = chain["stores"][1]["code"]
    device = next(d["device_id"] for d in chain["devices"] if d["store_code"] == london)

    def heartbeats(day: str) -> list[str]:
        body = json.loads((tmp_path / f"iot/t1/{device}_{day}.json").read_text())
        return [e["ts"] for e in body["events"] if e["type"] == "heartbeat"]

    for day, n, offsets in (
        ("20261024", 96, {"+01:00"}), ("20261025", 100, {"+01:00", "+00:00"}),
        ("20261026", 96, {"+00:00"}),
    ):  # fmt: skip
        beats = heartbeats(day)
        instants = [datetime.fromisoformat(ts).astimezone(UTC) for ts in beats]
        assert len(beats) == n and len(set(instants)) == n
        assert {ts[-6:] for ts in beats} == offsets
        assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(instants))
    assert heartbeats("20261025")[4:9] == [
        "2026-10-25T01:00:00+01:00", "2026-10-25T01:15:00+01:00", "2026-10-25T01:30:00+01:00",
        "2026-10-25T01:45:00+01:00", "2026-10-25T01:00:00+00:00",
    ]  # fmt: skip
    # Tokyo's files keep +09:00; New York is still on EDT (−04:00) until 1 Nov.
    tokyo = next(d["device_id"] for d in chain["devices"] if d["store_code"] == "S001")
    assert '+09:00"' in (tmp_path / f"iot/t1/{tokyo}_20261025.json").read_text()
    ny_code = chain["stores"][2]["code"]
    ny = next(d["device_id"] for d in chain["devices"] if d["store_code"] == ny_code)
    ny_events = json.loads((tmp_path / f"iot/t1/{ny}_20261025.json").read_text())["events"]
    assert {e.get("ts", e.get("interval_start"))[-6:] for e in ny_events} == {"-04:00"}


@pytest.mark.parametrize("start", ["9999-12-31", "0001-01-01"])
def test_cli_rejects_a_start_outside_the_business_years(tmp_path: Path, start: str) -> None:
    """--start 9999-12-31 was a traceback (an OverflowError in the holiday calendar)."""
    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path), "--stores", "2", "--days", "1", "--start", start]
    )
    assert result.exit_code == 2, result.output
    assert "invalid simulation settings: start_date" in result.output
