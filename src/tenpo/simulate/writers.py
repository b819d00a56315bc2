"""Write a simulated chain as the sources would send it (FORMATS.md), plus the ground truth.

Layout under ``out_dir``::

    chain.json                                      tenants, stores, devices, registers
    pos/vendor_a/{tenant}/master.csv                POS master (CP932, CRLF)
    pos/vendor_a/{tenant}/sales_{YYYYMMDD}.csv      all stores of the tenant (CP932, CRLF)
    pos/vendor_b/{tenant}/{store}_{YYYYMMDD}.json   {"receipts": [...]} (UTF-8)
    iot/{tenant}/{device_id}_{YYYYMMDD}.json        {"events": [...]} counters and ToF
    video/{tenant}/{camera_id}_{YYYYMMDD}.jsonl     visitor events (analyzer output)
    truth/daily_kpis.csv, truth/daily_kpis.parquet, truth/stores.csv, truth/staff.csv
    manifest.json                                   every file with tenant, source, date

Files are written only for store-days a store was open. Presentation quirks that FORMATS.md
allows (full-width digits, thousands separators, mixed number styles in vendor B) come from
a generator seeded by the config seed, so output stays byte-identical for a config.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tenpo.simulate.model import (
    RETURN,
    SALE,
    TAX_PCTS,
    UTC_OFFSET,
    VOID,
    Chain,
    Device,
    StoreDay,
)
from tenpo.simulate.truth import DailyTruth, daily_truth

__all__ = ["Manifest", "ManifestEntry", "write_chain"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

VENDOR_A_SALES_HEADER = (
    "レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名",
    "数量", "単価", "値引額", "金額", "税率区分", "合計金額",
)  # fmt: skip
VENDOR_A_MASTER_HEADER = ("レジ番号", "店舗コード", "店舗名", "適用開始日", "適用終了日")
TRUTH_COLUMNS = (
    "tenant_id", "store_code", "business_date", "net_sales", "net_sales_incl_tax",
    "transactions", "units", "visitors", "visitors_counted", "passersby", "passersby_counted",
    "unique_visitors", "repeat_visitors", "median_dwell_s",
)  # fmt: skip

_KIND_A = {SALE: "売上", RETURN: "返品", VOID: "取消"}
_KIND_B = {SALE: "SALE", RETURN: "RETURN", VOID: "VOID"}
_RATE_A = ("非課税", "軽減", "標準")
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_HMS = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(24 * 3600)]
_HEARTBEAT_EVERY_MIN = 15
_FIRMWARE = {"people_counter": "2.4.1", "tof_camera": "1.8.0"}


@dataclass(frozen=True)
class ManifestEntry:
    """One written file: ``path`` is relative to the output folder, with ``/``."""

    path: str
    # chain | pos_vendor_a_master | pos_vendor_a | pos_vendor_b | iot | visitor_events | truth
    source: str
    content_type: str
    tenant_id: str | None = None
    business_date: date | None = None
    store_code: str | None = None
    device_id: str | None = None


@dataclass
class Manifest:
    """Every file of a simulation, in sending order (chain and masters first, then by date)."""

    out_dir: Path
    entries: list[ManifestEntry] = field(default_factory=list)

    def by_source(self, source: str) -> list[ManifestEntry]:
        """Entries of one source, in order."""
        return [e for e in self.entries if e.source == source]

    def path(self, entry: ManifestEntry) -> Path:
        """Absolute path of an entry's file."""
        return self.out_dir / entry.path

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (as written to manifest.json; the folder itself is left out)."""
        files = []
        for e in self.entries:
            row = {k: v for k, v in asdict(e).items() if v is not None}
            if e.business_date is not None:
                row["business_date"] = e.business_date.isoformat()
            files.append(row)
        return {"version": 1, "files": files}

    @classmethod
    def load(cls, out_dir: Path) -> Manifest:
        """Read ``out_dir/manifest.json``."""
        doc = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        entries = []
        for row in doc["files"]:
            day = row.get("business_date")
            entries.append(
                ManifestEntry(**{**row, "business_date": date.fromisoformat(day) if day else None})
            )
        return cls(out_dir, entries)


def write_chain(chain: Chain, out_dir: Path, on_progress: Progress | None = None) -> Manifest:
    """Write every source file and the ground truth of ``chain`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    w = _Writer(chain, out_dir)
    w.chain_json()
    w.masters()
    by_date: dict[date, list[StoreDay]] = {}
    for sd in chain.days:
        by_date.setdefault(sd.day, []).append(sd)
    for i, day in enumerate(chain.dates):
        w.business_date(day, by_date.get(day, []))
        if on_progress is not None:
            on_progress(i + 1, len(chain.dates))
    w.truth()
    manifest = Manifest(out_dir, w.entries)
    _write_bytes(
        out_dir / "manifest.json",
        (json.dumps(manifest.to_json(), ensure_ascii=False, indent=1) + "\n").encode(),
    )
    log.info("wrote %d files to %s", len(w.entries), out_dir)
    return manifest


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _yen(sen: int) -> str:
    """A sen amount as a decimal string of yen: 12963 → "129.63", 100 → "1.00"."""
    sign = "-" if sen < 0 else ""
    sen = abs(sen)
    return f"{sign}{sen // 100}.{sen % 100:02d}"


def _csv_bytes(header: Iterable[str], rows: Iterable[Iterable[object]], encoding: str) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


class _Writer:
    def __init__(self, chain: Chain, out_dir: Path) -> None:
        self.chain = chain
        self.out = out_dir
        self.entries: list[ManifestEntry] = []
        self.seq: dict[tuple[str, str], int] = {}
        self.vendor = {t.id: t.pos_vendor for t in chain.tenants}
        self.tenant_index = {t.id: i for i, t in enumerate(chain.tenants)}
        self.devices: dict[tuple[str, str], list[Device]] = {}
        for d in chain.devices:
            self.devices.setdefault((d.tenant_id, d.store_code), []).append(d)
        self.industry = {(s.tenant_id, s.code): s.industry for s in chain.stores}

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.chain.config.seed, 100, *keys])

    def _add(self, rel: str, data: bytes, source: str, content_type: str, **meta: Any) -> None:
        _write_bytes(self.out / rel, data)
        self.entries.append(ManifestEntry(rel, source, content_type, **meta))

    # -- master data -------------------------------------------------------------------
    def chain_json(self) -> None:
        c = self.chain
        doc = {
            "tenants": [
                {"id": t.id, "name": t.name, "pos_vendor": t.pos_vendor} for t in c.tenants
            ],
            "stores": [
                {
                    "tenant_id": s.tenant_id,
                    "code": s.code,
                    "name": s.name,
                    "industry": s.industry,
                    "floor_area_m2": s.floor_area_m2,
                    "timezone": s.timezone,
                    "opening_hours": {
                        k: (list(v) if v is not None else None) for k, v in s.opening_hours.items()
                    },
                    "region": s.region,
                    "archetype": s.archetype,
                    "potential": s.potential,
                }
                for s in c.stores
            ],
            "devices": [
                {
                    "tenant_id": d.tenant_id,
                    "device_id": d.device_id,
                    "store_code": d.store_code,
                    "kind": d.kind,
                    "lines": list(d.lines),
                    "zones": list(d.zones),
                }
                for d in c.devices
            ],
            "registers": [
                {
                    "tenant_id": r.tenant_id,
                    "vendor": r.vendor,
                    "register_code": r.register_code,
                    "store_code": r.store_code,
                    "valid_from": r.valid_from.isoformat(),
                    "valid_to": r.valid_to.isoformat() if r.valid_to else None,
                }
                for r in c.registers
            ],
        }
        data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()
        self._add("chain.json", data, "chain", "application/json")

    def masters(self) -> None:
        names = {(s.tenant_id, s.code): s.name for s in self.chain.stores}
        for t in self.chain.tenants:
            if t.pos_vendor != "vendor_a":
                continue
            rows = [
                (
                    r.register_code,
                    r.store_code,
                    names[(t.id, r.store_code)],
                    r.valid_from.strftime("%Y/%m/%d"),
                    r.valid_to.strftime("%Y/%m/%d") if r.valid_to else "",
                )
                for r in self.chain.registers
                if r.tenant_id == t.id
            ]
            data = _csv_bytes(VENDOR_A_MASTER_HEADER, rows, "cp932")
            rel = f"pos/vendor_a/{t.id}/master.csv"
            self._add(
                rel, data, "pos_vendor_a_master", "text/csv; charset=shift_jis", tenant_id=t.id
            )

    # -- one business date ------------------------------------------------------------
    def business_date(self, day: date, store_days: list[StoreDay]) -> None:
        for t in self.chain.tenants:
            mine = [sd for sd in store_days if sd.tenant_id == t.id]
            if not mine:
                continue
            if t.pos_vendor == "vendor_a":
                self.vendor_a_sales(t.id, day, mine)
            else:
                for sd in mine:
                    self.vendor_b_sales(sd)
            for sd in mine:
                for device in self.devices.get((sd.tenant_id, sd.store_code), []):
                    if device.kind == "people_counter":
                        self.counter_events(device, sd)
                    elif device.kind == "tof_camera":
                        self.tof_events(device, sd)
                    else:
                        self.visitor_events(device, sd)

    def vendor_a_sales(self, tenant_id: str, day: date, store_days: list[StoreDay]) -> None:
        rows: list[list[str]] = []
        prefix = day.strftime("%Y/%m/%d ")
        for sd in store_days:
            skus = self.chain.catalogs[self.industry[(sd.tenant_id, sd.store_code)]]
            jan = [s.jan for s in skus]
            name = [s.name for s in skus]
            price = np.array([s.price_incl for s in skus], dtype=np.int64)
            rate = [_RATE_A[s.tax_class] for s in skus]
            price_str = [str(s.price_incl) for s in skus]
            s = sd.sales
            kind = s.receipt_kind
            sign = np.where(kind == RETURN, -1, 1)
            line_sign = sign[s.line_receipt]
            amount = (price[s.line_sku] * s.line_qty - s.line_discount_incl) * line_sign
            total = np.zeros(s.receipt_count, dtype=np.int64)
            np.add.at(total, s.line_receipt, amount)
            number = np.zeros(s.receipt_count, dtype=np.int64)
            for r in range(len(s.registers)):
                mask = s.receipt_register == r
                number[mask] = np.arange(1, int(mask.sum()) + 1)
            head = [
                (
                    s.registers[reg],
                    f"{num:06d}",
                    prefix + _HMS[ts],
                    _KIND_A[k],
                    str(tot),
                )
                for reg, num, ts, k, tot in zip(
                    s.receipt_register.tolist(),
                    number.tolist(),
                    s.receipt_ts.tolist(),
                    kind.tolist(),
                    total.tolist(),
                    strict=True,
                )
            ]
            # Registers export their own receipts: order by register, then receipt number.
            line_order = np.lexsort((np.arange(len(s.line_receipt)), number[s.line_receipt],
                                     s.receipt_register[s.line_receipt]))  # fmt: skip
            line_no = np.asarray(_line_numbers(s.line_receipt), dtype=np.int64)
            o = line_order
            qty = s.line_qty * line_sign
            rows.extend(
                [
                    *head[rec][:4], str(ln), jan[sku], name[sku], str(q), price_str[sku],
                    str(d) if d else "", str(a), rate[sku], head[rec][4],
                ]
                for rec, ln, sku, q, d, a in zip(
                    s.line_receipt[o].tolist(), line_no[o].tolist(), s.line_sku[o].tolist(),
                    qty[o].tolist(), s.line_discount_incl[o].tolist(), amount[o].tolist(),
                    strict=True,
                )
            )  # fmt: skip
        self._quirks(rows, self._rng(1, self.tenant_index[tenant_id], day.toordinal()))
        data = _csv_bytes(VENDOR_A_SALES_HEADER, rows, "cp932")
        rel = f"pos/vendor_a/{tenant_id}/sales_{day:%Y%m%d}.csv"
        self._add(
            rel, data, "pos_vendor_a", "text/csv; charset=shift_jis",
            tenant_id=tenant_id, business_date=day,
        )  # fmt: skip

    def _quirks(self, rows: list[list[str]], rng: np.random.Generator) -> None:
        """Full-width digits and thousands separators in a few fields (FORMATS.md allows both)."""
        rate = self.chain.config.quirk_rate
        if not rows or rate == 0:
            return
        picked = np.flatnonzero(rng.random(len(rows)) < rate)
        choice = rng.integers(0, 4, len(picked))
        for i, c in zip(picked.tolist(), choice.tolist(), strict=True):
            row = rows[i]
            if c == 0:  # register code in full-width digits: "０００１"
                row[0] = row[0].translate(_FULL_WIDTH)
            elif c == 1:  # quantity in full-width digits
                row[7] = row[7].translate(_FULL_WIDTH)
            else:  # a thousands separator in the amount or the total
                col = 10 if c == 2 else 12
                value = int(row[col])
                if abs(value) >= 1000:
                    row[col] = f"{value:,}"
                else:
                    row[4] = row[4].translate(_FULL_WIDTH)

    def vendor_b_sales(self, sd: StoreDay) -> None:
        skus = self.chain.catalogs[self.industry[(sd.tenant_id, sd.store_code)]]
        s = sd.sales
        rng = self._rng(
            2, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
        )
        as_number = (rng.random(s.receipt_count) < 0.3).tolist()
        rate_style = rng.integers(0, 4, s.receipt_count).tolist()
        # JSON fragments per SKU, in both money styles and every taxRate style.
        item_head = [
            f'{{"sku":"{k.jan}","name":{json.dumps(k.name, ensure_ascii=False)},"qty":'
            for k in skus
        ]
        price = [[_json(_money(k.price_excl_sen, n)) for k in skus] for n in (False, True)]
        rate = [[_json(_tax_rate(k.tax_pct, style)) for k in skus] for style in range(4)]
        zero = ('"0"', "0")
        # Per receipt and tax class: subtotal in sen and the vendor's tax in yen.
        tax_class = np.array([k.tax_class for k in skus], dtype=np.int64)
        amounts = np.array([k.price_excl_sen for k in skus], dtype=np.int64)[s.line_sku]
        amounts = amounts * s.line_qty - s.line_discount_excl_sen
        by_rate = np.zeros((s.receipt_count, 3), dtype=np.int64)
        np.add.at(by_rate, (s.line_receipt, tax_class[s.line_sku]), amounts)
        subtotal = by_rate.sum(axis=1).tolist()
        tax = (by_rate * np.asarray(TAX_PCTS) // 10_000).sum(axis=1).tolist()
        bounds = np.searchsorted(s.line_receipt, np.arange(s.receipt_count + 1)).tolist()
        line_sku = s.line_sku.tolist()
        line_qty = s.line_qty.tolist()
        line_disc = s.line_discount_excl_sen.tolist()
        ymd = f"{sd.day:%Y%m%d}"
        iso = sd.day.isoformat()
        receipts = []
        for r, (reg, ts, kind) in enumerate(
            zip(
                s.receipt_register.tolist(), s.receipt_ts.tolist(), s.receipt_kind.tolist(),
                strict=True,
            )
        ):  # fmt: skip
            number = as_number[r]
            prices, rates = price[number], rate[rate_style[r]]
            items = ",".join(
                f'{item_head[k]}{line_qty[i]},"unitPrice":{prices[k]},"discount":'
                f"{_json(_money(line_disc[i], number)) if line_disc[i] else zero[number]},"
                f'"taxRate":{rates[k]}}}'
                for i in range(bounds[r], bounds[r + 1])
                for k in (line_sku[i],)
            )
            sub, tx = subtotal[r], tax[r]
            tax_json = str(tx) if number else f'"{tx}"'
            receipts.append(
                f'{{"storeCode":"{sd.store_code}","registerId":"{s.registers[reg]}",'
                f'"receiptId":"B-{ymd}-{r + 1:06d}","transactedAt":"{iso}T{_HMS[ts]}{UTC_OFFSET}",'
                f'"type":"{_KIND_B[kind]}","items":[{items}],'
                f'"subtotal":{_json(_money(sub, number))},"tax":{tax_json},'
                f'"total":{_json(_money(sub + 100 * tx, number))}}}'
            )
        data = '{"receipts":[\n' + ",\n".join(receipts) + "\n]}\n"
        rel = f"pos/vendor_b/{sd.tenant_id}/{sd.store_code}_{ymd}.json"
        self._add(
            rel, data.encode(), "pos_vendor_b", "application/json",
            tenant_id=sd.tenant_id, business_date=sd.day, store_code=sd.store_code,
        )  # fmt: skip

    # -- devices ------------------------------------------------------------------------
    def _next_seq(self, device: Device) -> int:
        key = (device.tenant_id, device.device_id)
        self.seq[key] = self.seq.get(key, 0) + 1
        return self.seq[key]

    def _emit(self, device: Device, sd: StoreDay, events: list[tuple[int, int, str]]) -> None:
        """Number ``(sort_ms, order, json_tail)`` events in time order and write the file."""
        events.sort()
        head = f'{{"v":1,"device_id":"{device.device_id}","seq":'
        body = ",\n".join(f"{head}{self._next_seq(device)},{tail}" for _, _, tail in events)
        data = f'{{"events":[\n{body}\n]}}\n'.encode()
        rel = f"iot/{device.tenant_id}/{device.device_id}_{sd.day:%Y%m%d}.json"
        self._add(
            rel, data, "iot", "application/json",
            tenant_id=device.tenant_id, business_date=sd.day,
            store_code=device.store_code, device_id=device.device_id,
        )  # fmt: skip

    def _heartbeats(
        self, device: Device, sd: StoreDay, offline: list[tuple[int, int]]
    ) -> list[tuple[int, int, str]]:
        out = []
        firmware = _FIRMWARE.get(device.kind, "1.0.0")
        for minute in range(0, 24 * 60, _HEARTBEAT_EVERY_MIN):
            if any(b <= minute < e for b, e in offline):
                continue
            battery = round(0.97 - 0.1 * minute / (24 * 60), 2)
            ts = _ts(sd.day, minute)
            tail = (
                f'"type":"heartbeat","ts":"{ts}","status":"ok",'
                f'"firmware":"{firmware}","battery":{battery}}}'
            )
            out.append((minute * 60_000, 1, tail))
        return out

    def counter_events(self, device: Device, sd: StoreDay) -> None:
        t = sd.traffic
        step = device.interval_minutes
        start = t.window_start - t.window_start % step
        pad_front = t.window_start - start
        span = pad_front + t.window_minutes
        n = -(-span // step)
        pad = n * step - span

        def per_interval(per_minute: np.ndarray) -> list[int]:
            full = np.concatenate(
                [np.zeros(pad_front, np.int64), per_minute, np.zeros(pad, np.int64)]
            )
            return full.reshape(n, step).sum(axis=1).tolist()

        def binned(seconds: np.ndarray) -> list[int]:
            index = (seconds // 60 - start) // step
            return np.bincount(index, minlength=n)[:n].tolist()

        lines = {
            "entrance": (binned(t.entry_s), binned(t.exit_s)),
            "passby": (per_interval(t.passby_in), per_interval(t.passby_out)),
        }
        events = self._heartbeats(device, sd, t.offline)
        for k in range(n):
            begin = start + k * step
            end = begin + step
            if any(b < end and begin < e for b, e in t.offline):
                continue
            ts_begin, ts_end = _ts(sd.day, begin), _ts(sd.day, end)
            for order, (line, (ins, outs)) in enumerate(lines.items()):
                tail = (
                    f'"type":"count","line":"{line}","interval_start":"{ts_begin}",'
                    f'"interval_end":"{ts_end}","in":{ins[k]},"out":{outs[k]}}}'
                )
                events.append((end * 60_000, order * 2, tail))
        self._emit(device, sd, events)

    def tof_events(self, device: Device, sd: StoreDay) -> None:
        """Tracks of the visitors crossing the ToF camera's field (≈30 %), plus zone counts."""
        t = sd.traffic
        rng = self._rng(
            3, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
        )
        zones = device.zones
        tracked = np.flatnonzero(rng.random(len(t.entry_s)) < 0.3)
        events = self._heartbeats(device, sd, [])
        zone_in: dict[tuple[str, int], int] = {}
        zone_out: dict[tuple[str, int], int] = {}
        ymd = f"{sd.day:%Y%m%d}"
        for k, v in enumerate(tracked.tolist()):
            entry, exit_ = int(t.entry_s[v]), int(t.exit_s[v])
            n_points = int(rng.integers(3, 7))
            times = np.sort(rng.uniform(entry, exit_, n_points))
            zone_of = rng.integers(0, len(zones), n_points)
            xs = rng.uniform(0.0, 12.0, n_points).round(2)
            ys = rng.uniform(0.0, 8.0, n_points).round(2)
            points = []
            previous: str | None = None
            for ms, z, x, y in zip(
                (times * 1000).astype(np.int64).tolist(), zone_of.tolist(), xs.tolist(),
                ys.tolist(), strict=True,
            ):  # fmt: skip
                zone = zones[z]
                if zone != previous:
                    slot = ms // 60_000 // 15
                    zone_in[(zone, slot)] = zone_in.get((zone, slot), 0) + 1
                    if previous is not None:
                        zone_out[(previous, slot)] = zone_out.get((previous, slot), 0) + 1
                    previous = zone
                points.append(f'{{"ts":"{_ts_ms(sd.day, ms)}","x":{x},"y":{y},"zone":"{zone}"}}')
            last_slot = int(times[-1]) // 60 // 15
            if previous is not None:
                zone_out[(previous, last_slot)] = zone_out.get((previous, last_slot), 0) + 1
            tail = f'"type":"track","track_id":"{ymd}-{k + 1:05d}","points":[{",".join(points)}]}}'
            events.append((int(times[-1] * 1000), 2, tail))
        for slot in sorted({s for _, s in zone_in} | {s for _, s in zone_out}):
            begin, end = slot * 15, slot * 15 + 15
            for order, zone in enumerate(zones):
                ins, outs = zone_in.get((zone, slot), 0), zone_out.get((zone, slot), 0)
                tail = (
                    f'"type":"count","line":"{zone}","interval_start":"{_ts(sd.day, begin)}",'
                    f'"interval_end":"{_ts(sd.day, end)}","in":{ins},"out":{outs}}}'
                )
                events.append((end * 60_000, 3 + order, tail))
        self._emit(device, sd, events)

    def visitor_events(self, device: Device, sd: StoreDay) -> None:
        """What the video analyzer reports: entry and exit of each person, staff included."""
        t = sd.traffic
        rng = self._rng(
            4, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
        )
        people = [self.chain.person_id(sd.tenant_id, p) for p in t.person.tolist()]
        people += [self.chain.staff[i].person_id for i in t.staff_index.tolist()]
        entries = t.entry_s.tolist() + t.staff_entry_s.tolist()
        exits = t.exit_s.tolist() + t.staff_exit_s.tolist()
        quality = rng.uniform(0.55, 0.99, (len(people), 2)).round(3).tolist()
        iso = sd.day.isoformat()
        ymd = f"{sd.day:%Y%m%d}"
        events: list[tuple[int, int, str]] = []
        cam = device.device_id
        for k, (pid, entry, exit_, q) in enumerate(
            zip(people, entries, exits, quality, strict=True)
        ):
            track = f"{ymd}-{k + 1:05d}"
            for order, (event, sec, qual) in enumerate(
                (("entry", entry, q[0]), ("exit", exit_, q[1]))
            ):
                events.append(
                    (
                        sec,
                        order,
                        f'{{"camera_id":"{cam}","person_id":"{pid}","event":"{event}",'
                        f'"ts":"{iso}T{_HMS[sec]}{UTC_OFFSET}","quality":{qual},"track_id":"{track}"}}',
                    )
                )
        events.sort()
        data = "".join(line + "\n" for _, _, line in events).encode()
        rel = f"video/{sd.tenant_id}/{cam}_{ymd}.jsonl"
        self._add(
            rel, data, "visitor_events", "application/x-ndjson",
            tenant_id=sd.tenant_id, business_date=sd.day, store_code=sd.store_code, device_id=cam,
        )  # fmt: skip

    # -- ground truth --------------------------------------------------------------------
    def truth(self) -> None:
        rows = daily_truth(self.chain)
        csv_rows = [_truth_row(r) for r in rows]
        data = _csv_bytes(TRUTH_COLUMNS, csv_rows, "utf-8").replace(b"\r\n", b"\n")
        self._add("truth/daily_kpis.csv", data, "truth", "text/csv")
        self._add("truth/daily_kpis.parquet", _truth_parquet(rows), "truth", "application/parquet")
        stores = [
            (s.tenant_id, s.code, s.archetype, f"{s.potential:.2f}") for s in self.chain.stores
        ]
        data = _csv_bytes(("tenant_id", "store_code", "archetype", "potential"), stores, "utf-8")
        self._add("truth/stores.csv", data.replace(b"\r\n", b"\n"), "truth", "text/csv")
        staff = [(m.tenant_id, m.store_code, m.person_id) for m in self.chain.staff]
        data = _csv_bytes(("tenant_id", "store_code", "person_id"), staff, "utf-8")
        self._add("truth/staff.csv", data.replace(b"\r\n", b"\n"), "truth", "text/csv")


def _line_numbers(line_receipt: np.ndarray) -> list[int]:
    """1-based position of each line within its receipt (lines grouped by receipt)."""
    n = len(line_receipt)
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, line_receipt[1:] != line_receipt[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    return (np.arange(n) - first + 1).tolist()


def _json(value: str | int | float) -> str:
    return json.dumps(value)


def _money(sen: int, as_number: bool) -> str | int | float:
    """Vendor B money: a decimal string, or a JSON number (int when whole yen)."""
    if not as_number:
        return _yen(sen) if sen else "0"
    return sen // 100 if sen % 100 == 0 else sen / 100


def _tax_rate(pct: int, style: int) -> str | int | float:
    """Vendor B's taxRate in one of its styles: "8.000", "8", 0.08, "0.08"."""
    if style == 0:
        return f"{pct}.000"
    if style == 1:
        return str(pct)
    if style == 2:
        return pct / 100 if pct else 0
    return f"{pct / 100:.2f}"


def _ts(day: date, minute: int) -> str:
    """Local ISO timestamp of a minute of the business date (24:00 rolls to the next day)."""
    if minute >= 24 * 60:
        day, minute = day + timedelta(days=1), minute - 24 * 60
    return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00{UTC_OFFSET}"


def _ts_ms(day: date, ms: int) -> str:
    return f"{day.isoformat()}T{_HMS[ms // 1000]}.{ms % 1000:03d}{UTC_OFFSET}"


def _truth_row(r: DailyTruth) -> tuple[str, ...]:
    def opt(v: object) -> str:
        return "" if v is None else str(v)

    return (
        r.tenant_id,
        r.store_code,
        r.business_date.isoformat(),
        f"{r.net_sales:.2f}",
        f"{r.net_sales_incl_tax:.2f}",
        str(r.transactions),
        str(r.units),
        str(r.visitors),
        str(r.visitors_counted),
        str(r.passersby),
        str(r.passersby_counted),
        opt(r.unique_visitors),
        opt(r.repeat_visitors),
        opt(r.median_dwell_s),
    )


def _truth_parquet(rows: list[DailyTruth]) -> bytes:
    money = pa.decimal128(18, 2)
    schema = pa.schema(
        [
            ("tenant_id", pa.string()),
            ("store_code", pa.string()),
            ("business_date", pa.date32()),
            ("net_sales", money),
            ("net_sales_incl_tax", money),
            ("transactions", pa.int64()),
            ("units", pa.int64()),
            ("visitors", pa.int64()),
            ("visitors_counted", pa.int64()),
            ("passersby", pa.int64()),
            ("passersby_counted", pa.int64()),
            ("unique_visitors", pa.int64()),
            ("repeat_visitors", pa.int64()),
            ("median_dwell_s", pa.decimal128(12, 1)),
        ]
    )
    q = Decimal("0.01")
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for r in rows:
        for name in schema.names:
            value = getattr(r, name)
            if name in ("net_sales", "net_sales_incl_tax"):
                value = value.quantize(q)
            elif name == "median_dwell_s" and value is not None:
                value = value.quantize(Decimal("0.1"))
            columns[name].append(value)
    table = pa.table(columns, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())
