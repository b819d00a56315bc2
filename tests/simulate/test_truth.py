"""Ground truth: hand-checked arithmetic, and agreement with what the files say."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tenpo.simulate import (
    Chain,
    Device,
    Manifest,
    Sales,
    SimConfig,
    Sku,
    StaffMember,
    Store,
    StoreDay,
    Tenant,
    Traffic,
    daily_truth,
    simulate_chain,
    write_chain,
)
from tenpo.simulate.model import RETURN, SALE, VOID
from tenpo.simulate.truth import vendor_a_tax, vendor_b_tax


def a(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def test_vendor_tax_rules_by_hand() -> None:
    assert vendor_a_tax(1080, 8) == 80
    assert vendor_a_tax(140, 8) == 10  # 140·8/108 = 10.37
    assert vendor_a_tax(270, 10) == 24  # 24.54
    assert vendor_a_tax(-270, 10) == -24  # the sign of S, floor of |S|
    assert vendor_a_tax(500, 0) == 0
    assert vendor_b_tax(25926, 8) == 20  # floor(259.26 · 0.08 = 20.74), as in FORMATS.md
    assert vendor_b_tax(24545, 10) == 24


# -- a hand-made chain: one store, two days ---------------------------------------------
SKUS = [
    Sku("4901777000011", "緑茶 525ml", 140, 12963, 1),  # 8 %
    Sku("4902102000022", "ノート Ａ５", 270, 24545, 2),  # 10 %
]


def _store() -> Store:
    hours = ("10:00", "20:00")
    week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return Store(
        tenant_id="t1", code="S001", name="本町店", industry="drugstore", floor_area_m2=200,
        region="東京都", opening_hours=dict.fromkeys(week, hours),
        archetype="standard", potential=1.1, passersby_per_day=1000, capture_rate=0.1,
        conversion_rate=0.5, basket_lines=2, price_tilt=0, dwell_median_s=600, regular_share=0.3,
    )  # fmt: skip


def _day(day: date, persons: list[int], staff: bool) -> StoreDay:
    n = len(persons)
    entry = a(*(36_000 + 100 * i for i in range(n)))
    exits = entry + a(*(600 + 300 * i for i in range(n)))
    traffic = Traffic(
        window_start=540,
        passby_in=np.r_[a(3, 4), np.zeros(718, np.int64)],
        passby_out=np.r_[a(5), np.zeros(719, np.int64)],
        entry_s=entry,
        exit_s=exits,
        person=a(*persons),
        staff_index=a(0) if staff else a(),
        staff_entry_s=a(34_000) if staff else a(),
        staff_exit_s=a(60_000) if staff else a(),
    )
    # Sale: tea + notebook = 410 incl.; return: one notebook; void: two teas.
    sales = Sales(
        registers=("0001",),
        receipt_ts=a(36_500, 36_600, 36_700),
        receipt_kind=a(SALE, RETURN, VOID),
        receipt_register=a(0, 0, 0),
        line_receipt=a(0, 0, 1, 2),
        line_sku=a(0, 1, 1, 0),
        line_qty=a(1, 1, 1, 2),
        line_discount_incl=a(0, 0, 0, 0),
        line_discount_excl_sen=a(0, 0, 0, 0),
    )
    return StoreDay("t1", "S001", day, 600, 1200, traffic, sales)


def _hand_chain(vendor: str, second_day: date) -> Chain:
    day1 = date(2026, 10, 5)
    return Chain(
        config=SimConfig(stores=1, tenants=1, days=1),
        tenants=[Tenant("t1", "㈱テスト", vendor)],
        stores=[_store()],
        devices=[
            Device("t1", "pc-s001", "S001", "people_counter", ("entrance", "passby")),
            Device("t1", "cam-s001", "S001", "rgb_camera"),
        ],
        registers=[],
        catalogs={"drugstore": SKUS},
        staff=[StaffMember("t1", "S001", "t1-s0001")],
        days=[_day(day1, [5, 6], staff=True), _day(second_day, [5, 7, 7], staff=True)],
        dates=[day1, second_day],
    )


def test_truth_vendor_a_by_hand() -> None:
    first, second = daily_truth(_hand_chain("vendor_a", date(2026, 10, 6)))
    # Sale: 8 % S=140 → tax 10, excl 130; 10 % S=270 → tax 24, excl 246.
    # Return: 10 % S=−270 → tax −24, excl −246. Void: nothing.
    assert first.net_sales == Decimal(130)
    assert first.net_sales_incl_tax == Decimal(140)
    assert first.transactions == 0  # one sale − one return
    assert first.units == 1  # 2 − 1, the void's two teas excluded
    assert first.visitors == first.visitors_counted == 2  # staff not counted
    assert first.passersby == first.passersby_counted == 12
    assert first.unique_visitors == 2 and first.repeat_visitors == 0
    assert first.median_dwell_s == Decimal(750)  # median of 600 and 900 (staff excluded)
    assert second.unique_visitors == 2  # persons 5 and 7 (7 came twice)
    assert second.repeat_visitors == 1  # person 5 was here the day before
    # 7's two stays (36 100-37 000 s, 36 200-37 400 s) overlap: one visit of 1300 s.
    assert second.median_dwell_s == Decimal(950)  # median of 600 and 1300


def test_truth_vendor_b_by_hand() -> None:
    first, _ = daily_truth(_hand_chain("vendor_b", date(2026, 10, 6)))
    # Sale: 129.63 (8 %, tax 10) + 245.45 (10 %, tax 24); return: −245.45 and −24.
    assert first.net_sales == Decimal("129.63")
    assert first.net_sales_incl_tax == Decimal("139.63")
    assert first.transactions == 0 and first.units == 1


def test_repeat_window_is_180_days() -> None:
    day1 = date(2026, 10, 5)
    inside = daily_truth(_hand_chain("vendor_a", day1 + timedelta(days=180)))
    outside = daily_truth(_hand_chain("vendor_a", day1 + timedelta(days=181)))
    assert inside[1].repeat_visitors == 1
    assert outside[1].repeat_visitors == 0


def test_no_camera_means_no_person_kpis() -> None:
    chain = _hand_chain("vendor_a", date(2026, 10, 6))
    chain.devices = [d for d in chain.devices if d.kind != "rgb_camera"]
    row = daily_truth(chain)[0]
    assert row.unique_visitors is None and row.repeat_visitors is None
    assert row.median_dwell_s is None and row.visitors == 2


# -- the truth agrees with what the written files say ---------------------------------
def _truth_rows(out: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    text = (out / "truth" / "daily_kpis.csv").read_text(encoding="utf-8")
    return {
        (r["tenant_id"], r["store_code"], r["business_date"]): r
        for r in csv.DictReader(io.StringIO(text))
    }


def _n(text: str) -> int:
    return int(unicodedata.normalize("NFKC", text).replace(",", "") or "0")


def _vendor_a_kpis(manifest: Manifest) -> dict[tuple[str, str, str], list[Decimal]]:
    """[net_sales, incl, transactions, units] per store-date from vendor A's CSV and master."""
    (master_entry,) = manifest.by_source("pos_vendor_a_master")
    master = list(csv.reader(io.StringIO(manifest.path(master_entry).read_bytes().decode("cp932"))))
    assignments = [
        (r[0], r[1], datetime.strptime(r[3], "%Y/%m/%d").date(),
         datetime.strptime(r[4], "%Y/%m/%d").date() if r[4] else date.max)
        for r in master[1:]
    ]  # fmt: skip
    out: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for entry in manifest.by_source("pos_vendor_a"):
        assert entry.business_date is not None
        rows = list(csv.reader(io.StringIO(manifest.path(entry).read_bytes().decode("cp932"))))
        receipts: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
        for row in rows[1:]:
            receipts[(unicodedata.normalize("NFKC", row[0]), row[1])].append(row)
        for (register, _), lines in receipts.items():
            (store,) = [
                s for code, s, lo, hi in assignments
                if code == register and lo <= entry.business_date <= hi
            ]  # fmt: skip
            kpi = out[("t1", store, entry.business_date.isoformat())]
            kind = lines[0][3]
            if kind == "取消":
                continue
            kpi[2] += 1 if kind == "売上" else -1
            by_rate: dict[str, int] = defaultdict(int)
            for line in lines:
                by_rate[line[11]] += _n(line[10])
                kpi[3] += _n(line[7])
            for label, s in by_rate.items():
                r = {"標準": 10, "軽減": 8, "非課税": 0}[label]
                tax = abs(s) * r // (100 + r) * (1 if s >= 0 else -1)
                kpi[0] += s - tax
                kpi[1] += s
    return out


def _vendor_b_kpis(manifest: Manifest) -> dict[tuple[str, str, str], list[Decimal]]:
    out: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for entry in manifest.by_source("pos_vendor_b"):
        assert entry.business_date is not None and entry.store_code is not None
        kpi = out[("t2", entry.store_code, entry.business_date.isoformat())]
        doc = json.loads(manifest.path(entry).read_text(), parse_float=Decimal)
        for r in doc["receipts"]:
            if r["type"] == "VOID":
                continue
            sign = 1 if r["type"] == "SALE" else -1
            kpi[0] += sign * Decimal(str(r["subtotal"]))
            kpi[1] += sign * Decimal(str(r["total"]))
            kpi[2] += sign
            kpi[3] += sign * sum(i["qty"] for i in r["items"])
    return out


def test_truth_matches_the_pos_files(small_out: Manifest) -> None:
    truth = _truth_rows(small_out.out_dir)
    from_files = {**_vendor_a_kpis(small_out), **_vendor_b_kpis(small_out)}
    assert set(from_files) == set(truth)
    for key, (net, incl, transactions, units) in from_files.items():
        row = truth[key]
        assert Decimal(row["net_sales"]) == net, key
        assert Decimal(row["net_sales_incl_tax"]) == incl, key
        assert int(row["transactions"]) == transactions and int(row["units"]) == units, key
        assert row["net_sales"] == f"{Decimal(row['net_sales']):.2f}"  # exact decimal string


def test_truth_matches_counters_and_video(small_out: Manifest) -> None:
    truth = _truth_rows(small_out.out_dir)
    staff_text = (small_out.out_dir / "truth" / "staff.csv").read_text(encoding="utf-8")
    staff = {r["person_id"] for r in csv.DictReader(io.StringIO(staff_text))}
    assert staff
    for entry in small_out.by_source("iot"):
        if not (entry.device_id or "").startswith("pc-"):
            continue
        events = json.loads(small_out.path(entry).read_text())["events"]
        row = truth[(entry.tenant_id or "", entry.store_code or "", str(entry.business_date))]
        entrance = sum(e["in"] for e in events if e.get("line") == "entrance")
        passby = sum(e["in"] + e["out"] for e in events if e.get("line") == "passby")
        assert entrance == int(row["visitors"]) == int(row["visitors_counted"])
        assert passby == int(row["passersby"]) == int(row["passersby_counted"])
    seen: dict[str, dict[str, date]] = defaultdict(dict)
    video = sorted(small_out.by_source("visitor_events"), key=lambda e: e.business_date or date.min)
    repeats = 0
    for day in sorted({e.business_date for e in video if e.business_date}):
        today: list[tuple[str, str]] = []
        for entry in (e for e in video if e.business_date == day):
            lines = small_out.path(entry).read_text().splitlines()
            people = {json.loads(x)["person_id"] for x in lines} - staff
            assert any(json.loads(x)["person_id"] in staff for x in lines), "staff are on camera"
            row = truth[(entry.tenant_id or "", entry.store_code or "", day.isoformat())]
            assert int(row["unique_visitors"]) == len(people)
            tenant = entry.tenant_id or ""
            repeat = sum(1 for p in people if p in seen[tenant])
            assert int(row["repeat_visitors"]) == repeat
            repeats += repeat
            today.extend((tenant, p) for p in people)
        for tenant, p in today:
            seen[tenant][p] = day
    assert repeats > 0, "repeat visitors are present"


def test_offline_counters_report_less(tmp_path: Path) -> None:
    config = SimConfig(seed=3, stores=2, days=3, traffic_scale=0.3, device_gap_rate=1.0)
    chain = simulate_chain(config)
    rows = daily_truth(chain)
    assert all(r.visitors_counted <= r.visitors for r in rows)
    assert any(r.visitors_counted < r.visitors for r in rows)
    assert any(r.passersby_counted < r.passersby for r in rows)
    manifest = write_chain(chain, tmp_path)
    by_key = {(r.tenant_id, r.store_code, r.business_date): r for r in rows}
    for entry in manifest.by_source("iot"):
        if (entry.device_id or "").startswith("pc-"):
            events = json.loads(manifest.path(entry).read_text())["events"]
            row = by_key[(entry.tenant_id, entry.store_code, entry.business_date)]
            assert (
                sum(e["in"] for e in events if e.get("line") == "entrance") == row.visitors_counted
            )


def test_truth_files_agree(small_out: Manifest) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(small_out.out_dir / "truth" / "daily_kpis.parquet")
    csv_rows = _truth_rows(small_out.out_dir)
    assert table.num_rows == len(csv_rows)
    first = table.slice(0, 1).to_pylist()[0]
    row = csv_rows[(first["tenant_id"], first["store_code"], first["business_date"].isoformat())]
    assert first["net_sales"] == Decimal(row["net_sales"])
    stores = (small_out.out_dir / "truth" / "stores.csv").read_text().splitlines()
    assert stores[0] == "tenant_id,store_code,archetype,potential" and len(stores) == 7


def test_target_truth_is_actual_times_the_execution_gap(
    small_out: Manifest, small_chain: Chain
) -> None:
    rows = list(csv.DictReader((small_out.out_dir / "truth" / "targets.csv").open()))
    assert list(rows[0]) == ["tenant_id", "store_code", "kpi", "actual", "achievable"]
    assert len(rows) == 5 * len(small_chain.stores)
    by_store: dict[tuple[str, str], dict[str, dict[str, str]]] = defaultdict(dict)
    for r in rows:
        by_store[(r["tenant_id"], r["store_code"])][r["kpi"]] = r
    truth = daily_truth(small_chain)
    for (tenant, code), kpis in by_store.items():
        mine = [t for t in truth if (t.tenant_id, t.store_code) == (tenant, code)]
        sales = sum(float(t.net_sales) for t in mine)
        tx = sum(t.transactions for t in mine)
        assert float(kpis["net_sales"]["actual"]) == pytest.approx(sales / len(mine), rel=1e-5)
        assert float(kpis["atv"]["actual"]) == pytest.approx(sales / tx, rel=1e-5)
        store = small_chain.store(tenant, code)
        for kpi, r in kpis.items():
            ratio = float(r["achievable"]) / float(r["actual"])
            assert ratio == pytest.approx(store.achievable_ratio(kpi), rel=1e-4)


def test_truth_uses_memory_not_files(small_chain: Chain) -> None:
    # Changing the in-memory sales changes the truth: it is computed from the chain.
    rows = daily_truth(small_chain)
    sd = small_chain.days[0]
    doubled = replace(sd, sales=replace(sd.sales, line_qty=sd.sales.line_qty * 2))
    chain = replace(small_chain, days=[doubled])
    (row,) = daily_truth(chain)
    assert row.units == 2 * rows[0].units
    assert rows[0].net_sales > 0 and row.net_sales > rows[0].net_sales


def test_overlapping_stays_of_one_person_are_one_visit() -> None:
    from tenpo.simulate.truth import merged_dwell

    person = np.array([7, 5, 7, 7, 5, 9])
    entry = np.array([100, 100, 150, 400, 100, 0])
    exit_ = np.array([200, 130, 300, 450, 160, 10])
    # 7: 100-200 and 150-300 overlap → 200 s, then 400-450 → 50 s; 5: same second → 60 s.
    assert sorted(merged_dwell(person, entry, exit_).tolist()) == [10, 50, 60, 200]
    assert merged_dwell(person[:0], entry[:0], exit_[:0]).tolist() == []
