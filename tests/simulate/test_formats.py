"""The written files follow FORMATS.md exactly (parsed here independently of the writer)."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from tenpo.simulate import Chain, Manifest
from tenpo.simulate.catalog import is_valid_jan13

SALES_HEADER = [
    "レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名",
    "数量", "単価", "値引額", "金額", "税率区分", "合計金額",
]  # fmt: skip
MASTER_HEADER = ["レジ番号", "店舗コード", "店舗名", "適用開始日", "適用終了日"]


def read_cp932_csv(path: Path) -> tuple[bytes, list[list[str]]]:
    raw = path.read_bytes()
    text = raw.decode("cp932")
    return raw, list(csv.reader(io.StringIO(text, newline="")))


def nfkc_int(text: str) -> int:
    return int(unicodedata.normalize("NFKC", text).replace(",", "") or "0")


def test_manifest_lists_every_file(small_out: Manifest) -> None:
    on_disk = {
        p.relative_to(small_out.out_dir).as_posix()
        for p in small_out.out_dir.rglob("*")
        if p.is_file()
    }
    listed = [e.path for e in small_out.entries]
    assert len(listed) == len(set(listed))
    assert on_disk == set(listed) | {"manifest.json"}
    loaded = Manifest.load(small_out.out_dir)
    assert loaded.entries == small_out.entries
    sources = {e.source for e in small_out.entries}
    assert sources == {
        "chain", "pos_vendor_a_master", "pos_vendor_a", "pos_vendor_b", "iot",
        "visitor_events", "truth",
    }  # fmt: skip
    # Masters come before any sales of their tenant.
    order = [e.source for e in small_out.entries]
    assert order.index("pos_vendor_a_master") < order.index("pos_vendor_a")


def test_chain_json_has_the_contract_fields(small_out: Manifest, small_chain: Chain) -> None:
    doc = json.loads((small_out.out_dir / "chain.json").read_text(encoding="utf-8"))
    assert set(doc) == {"tenants", "stores", "devices", "registers", "initiatives"}
    assert [t["id"] for t in doc["tenants"]] == ["t1", "t2"]
    assert [t["pos_vendor"] for t in doc["tenants"]] == ["vendor_a", "vendor_b"]
    for store in doc["stores"]:
        assert set(store) == {
            "tenant_id", "code", "name", "industry", "floor_area_m2", "timezone",
            "opening_hours", "region", "archetype", "potential",
        }  # fmt: skip
        assert re.fullmatch(r"S\d{3}", store["code"])
        assert store["timezone"] == "Asia/Tokyo"
        assert set(store["opening_hours"]) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
        for hours in store["opening_hours"].values():
            assert hours is None or (len(hours) == 2 and hours[0] < hours[1])
    for device in doc["devices"]:
        assert set(device) == {"tenant_id", "device_id", "store_code", "kind", "lines", "zones"}
        assert device["kind"] in {"people_counter", "tof_camera", "rgb_camera"}
        if device["kind"] == "people_counter":
            assert device["lines"] == ["entrance", "passby"]
            assert device["device_id"] == "pc-" + device["store_code"].lower()
    counters = {
        (d["tenant_id"], d["store_code"]) for d in doc["devices"] if d["kind"] == "people_counter"
    }
    assert counters == {(s["tenant_id"], s["code"]) for s in doc["stores"]}
    for reg in doc["registers"]:
        assert set(reg) == {
            "tenant_id", "vendor", "register_code", "store_code", "valid_from", "valid_to"
        }  # fmt: skip
        if reg["vendor"] == "vendor_a":
            assert re.fullmatch(r"\d{4}", reg["register_code"])


def test_vendor_a_master(small_out: Manifest, small_chain: Chain) -> None:
    (entry,) = small_out.by_source("pos_vendor_a_master")
    raw, rows = read_cp932_csv(small_out.path(entry))
    assert raw.count(b"\r\n") == raw.count(b"\n") == len(rows)
    assert rows[0] == MASTER_HEADER
    codes = [r[0] for r in rows[1:]]
    assert all(re.fullmatch(r"\d{4}", c) for c in codes)
    # The register that moves (8 days ≥ 7) has two rows: closed at the old store, open at the new.
    moved = [c for c in set(codes) if codes.count(c) == 2]
    assert len(moved) == 1
    old, new = (r for r in rows[1:] if r[0] == moved[0])
    assert old[4] != "" and new[4] == ""
    last_old = datetime.strptime(old[4], "%Y/%m/%d").date()
    assert datetime.strptime(new[3], "%Y/%m/%d").date() == last_old + timedelta(days=1)
    assert old[1] != new[1]


def _vendor_a_receipts(small_out: Manifest) -> dict[tuple[str, str, str], list[list[str]]]:
    receipts: dict[tuple[str, str, str], list[list[str]]] = defaultdict(list)
    for entry in small_out.by_source("pos_vendor_a"):
        raw, rows = read_cp932_csv(small_out.path(entry))
        assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
        assert rows[0] == SALES_HEADER
        for row in rows[1:]:
            assert len(row) == 13
            day = entry.business_date.isoformat() if entry.business_date else ""
            receipts[(day, unicodedata.normalize("NFKC", row[0]), row[1])].append(row)
    return receipts


def test_vendor_a_sales_lines_and_totals(small_out: Manifest) -> None:
    receipts = _vendor_a_receipts(small_out)
    kinds: set[str] = set()
    for (day, register, number), lines in receipts.items():
        assert re.fullmatch(r"\d{4}", register) and re.fullmatch(r"\d{6}", number)
        kind = lines[0][3]
        kinds.add(kind)
        assert {line[3] for line in lines} == {kind}
        assert kind in {"売上", "返品", "取消"}
        when = datetime.strptime(lines[0][2], "%Y/%m/%d %H:%M:%S")
        assert when.date().isoformat() == day
        assert [nfkc_int(line[4]) for line in lines] == list(range(1, len(lines) + 1))
        total = 0
        for line in lines:
            qty, price, discount, amount = (nfkc_int(line[i]) for i in (7, 8, 9, 10))
            assert is_valid_jan13(line[5])
            assert line[11] in {"標準", "軽減", "非課税"}
            assert discount >= 0 and price > 0
            if kind == "返品":
                assert qty < 0 and amount == -(price * abs(qty) - discount)
            else:
                assert qty > 0 and amount == price * qty - discount
            total += amount
        assert {nfkc_int(line[12]) for line in lines} == {total}
    assert kinds == {"売上", "返品", "取消"}


def test_vendor_a_exercises_quoting_and_width(small_out: Manifest) -> None:
    text = "".join(
        small_out.path(e).read_bytes().decode("cp932") for e in small_out.by_source("pos_vendor_a")
    )
    assert re.search(r'"-?\d{1,3}(,\d{3})+"', text), "a quoted thousands separator"
    assert re.search(r"[０-９]", text), "full-width digits"
    names = {row[6] for rows in _vendor_a_receipts(small_out).values() for row in rows}
    assert any("," in n for n in names) and any(re.search(r"[ｦ-ﾟ]", n) for n in names)
    assert any("①" in n or "㈱" in n for n in names)


def _money(value: Any) -> Decimal:
    assert isinstance(value, str | int | Decimal) and not isinstance(value, bool)
    return Decimal(str(value))


def _rate(value: Any) -> Decimal:
    rate = _money(value)
    return rate / 100 if rate > 1 else rate


def test_vendor_b_receipts(small_out: Manifest) -> None:
    entries = small_out.by_source("pos_vendor_b")
    assert entries
    styles: set[str] = set()
    types: set[str] = set()
    for entry in entries:
        doc = json.loads(small_out.path(entry).read_text(encoding="utf-8"), parse_float=Decimal)
        assert list(doc) == ["receipts"]
        ids = [r["receiptId"] for r in doc["receipts"]]
        assert len(ids) == len(set(ids))
        for r in doc["receipts"]:
            assert set(r) == {
                "storeCode", "registerId", "receiptId", "transactedAt", "type", "items",
                "subtotal", "tax", "total",
            }  # fmt: skip
            assert r["storeCode"] == entry.store_code
            at = datetime.fromisoformat(r["transactedAt"])
            assert r["transactedAt"].endswith("+09:00") and at.date() == entry.business_date
            types.add(r["type"])
            by_rate: dict[Decimal, Decimal] = defaultdict(Decimal)
            for item in r["items"]:
                assert set(item) == {"sku", "name", "qty", "unitPrice", "discount", "taxRate"}
                assert isinstance(item["qty"], int) and item["qty"] > 0  # RETURN too
                assert is_valid_jan13(item["sku"])
                form = "str" if isinstance(item["taxRate"], str) else "number"
                styles.add(form + (">1" if _money(item["taxRate"]) > 1 else ""))
                amount = item["qty"] * _money(item["unitPrice"]) - _money(item["discount"])
                assert amount >= 0
                by_rate[_rate(item["taxRate"])] += amount
            subtotal = _money(r["subtotal"])
            assert subtotal == sum(by_rate.values())
            tax = sum(
                (s * rate).to_integral_value(rounding=ROUND_FLOOR) for rate, s in by_rate.items()
            )
            assert _money(r["tax"]) == tax
            assert _money(r["total"]) == subtotal + tax
    assert types == {"SALE", "RETURN", "VOID"}
    # Both taxRate forms (fraction and percentage) and both value types occur.
    assert {"str>1", "number"} <= styles


def test_vendor_b_prices_have_decimals(small_out: Manifest) -> None:
    text = "".join(small_out.path(e).read_text() for e in small_out.by_source("pos_vendor_b"))
    assert re.search(r'"unitPrice":"\d+\.\d\d"', text)
    assert re.search(r'"unitPrice":\d+\.\d+', text), "money as a JSON number too"


def test_device_events(small_out: Manifest, small_chain: Chain) -> None:
    last_seq: dict[str, int] = {}
    kinds = {d.device_id: d for d in small_chain.devices if d.tenant_id == "t1"}
    intervals: set[int] = set()
    saw_track = False
    for entry in small_out.by_source("iot"):
        doc = json.loads(small_out.path(entry).read_text(encoding="utf-8"))
        assert list(doc) == ["events"]
        for event in doc["events"]:
            assert event["v"] == 1 and event["device_id"] == entry.device_id
            assert event["seq"] > last_seq.get(f"{entry.tenant_id}/{entry.device_id}", 0)
            last_seq[f"{entry.tenant_id}/{entry.device_id}"] = event["seq"]
            if event["type"] == "count":
                start = datetime.fromisoformat(event["interval_start"])
                end = datetime.fromisoformat(event["interval_end"])
                assert event["interval_start"].endswith("+09:00")
                intervals.add(int((end - start).total_seconds() // 60))
                assert event["in"] >= 0 and event["out"] >= 0
                device = kinds.get(event["device_id"])
                if device is not None and entry.tenant_id == "t1":
                    assert event["line"] in device.lines + device.zones
            elif event["type"] == "heartbeat":
                assert set(event) == {
                    "v", "device_id", "seq", "type", "ts", "status", "firmware", "battery"
                }  # fmt: skip
                assert datetime.fromisoformat(event["ts"]).minute % 15 == 0
            else:
                assert event["type"] == "track"
                saw_track = True
                assert event["points"] and set(event["points"][0]) == {"ts", "x", "y", "zone"}
                times = [datetime.fromisoformat(p["ts"]) for p in event["points"]]
                assert times == sorted(times)
    assert intervals <= {1, 15} and 15 in intervals
    tof = any(d.kind == "tof_camera" for d in small_chain.devices)
    assert saw_track == tof


def test_visitor_events(small_out: Manifest) -> None:
    entries = small_out.by_source("visitor_events")
    assert entries
    for entry in entries:
        open_tracks: dict[str, str] = {}
        previous = None
        for line in small_out.path(entry).read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            assert set(event) == {"camera_id", "person_id", "event", "ts", "quality", "track_id"}
            assert event["camera_id"] == entry.device_id and event["camera_id"].startswith("cam-")
            ts = datetime.fromisoformat(event["ts"])
            assert ts.utcoffset() == timedelta(hours=9) and ts.date() == entry.business_date
            assert previous is None or previous <= ts
            previous = ts
            assert 0 < event["quality"] <= 1
            if event["event"] == "entry":
                open_tracks[event["track_id"]] = event["person_id"]
            else:
                assert open_tracks.pop(event["track_id"]) == event["person_id"]
        assert not open_tracks, "every entry has its exit"


def test_closed_days_have_no_files(small_chain: Chain, small_out: Manifest) -> None:
    for store in small_chain.stores:
        closed = [d for d in small_chain.dates if store.hours_on(d) is None]
        written = {
            e.business_date
            for e in small_out.entries
            if e.store_code == store.code and e.tenant_id == store.tenant_id
        }
        assert not set(closed) & written
        assert isinstance(next(iter(written)), date)
