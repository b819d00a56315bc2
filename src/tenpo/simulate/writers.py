"""Write a simulated chain as the sources would send it (FORMATS.md), plus the ground truth.

Layout under ``out_dir``::

    chain.json                                      tenants, stores, devices, registers
    pos/vendor_a/{tenant}/master.csv                POS master (CP932, CRLF)
    pos/vendor_a/{tenant}/sales_{YYYYMMDD}.csv      all stores of the tenant (CP932, CRLF)
    pos/vendor_b/{tenant}/{store}_{YYYYMMDD}.json   {"receipts": [...]} (UTF-8)
    iot/{tenant}/{device_id}_{YYYYMMDD}.json        {"events": [...]} counters and ToF
    video/{tenant}/{camera_id}_{YYYYMMDD}.jsonl     visitor events (analyzer output)
    truth/daily_kpis.csv, truth/daily_kpis.parquet, truth/stores.csv, truth/staff.csv
    truth/targets.csv                               actual vs achievable per store and lever
    truth/initiatives.csv                           planted initiatives and their true effect
    manifest.json                                   every file with tenant, source, date

Files are written only for store-days a store was open. Presentation quirks that FORMATS.md
allows (full-width digits, thousands separators, mixed number styles in vendor B) come from
a generator seeded by the config seed, so output stays byte-identical for a config.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tenpo.pos.vendors import vendor_a
from tenpo.simulate.config import SimConfig
from tenpo.simulate.engine import iter_store_days, simulate_master
from tenpo.simulate.model import (
    RETURN,
    SALE,
    TAX_PCTS,
    VOID,
    Chain,
    Device,
    IntArray,
    Sku,
    StoreDay,
    day_offsets,
)
from tenpo.simulate.text import Block, Table
from tenpo.simulate.truth import DailyTruth, daily_truth, target_truth

__all__ = ["Manifest", "ManifestEntry", "simulate_to_dir", "write_chain"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

VENDOR_A_SALES_HEADER = vendor_a.SALES_COLUMNS
VENDOR_A_MASTER_HEADER = vendor_a.MASTER_COLUMNS
TRUTH_COLUMNS = (
    "tenant_id", "store_code", "business_date", "net_sales", "net_sales_incl_tax",
    "transactions", "units", "visitors", "visitors_counted", "passersby", "passersby_counted",
    "unique_visitors", "repeat_visitors", "median_dwell_s",
)  # fmt: skip

_KIND_A = {SALE: "売上", RETURN: "返品", VOID: "取消"}
_KIND_B = {SALE: "SALE", RETURN: "RETURN", VOID: "VOID"}
_RATE_A = ("非課税", "軽減", "標準")
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_KIND_A_TABLE = Table([_KIND_A[k] for k in (SALE, RETURN, VOID)], "cp932")
_KIND_B_TABLE = Table([_KIND_B[k] for k in (SALE, RETURN, VOID)])
_EVENT_TABLE = Table(["entry", "exit"])
_COUNTER_LINES = Table(["entrance", "passby"])
_VENDOR_A_COLUMNS = (
    "register", "number", "ts", "kind", "line_no", "sku", "qty", "discount", "amount", "total",
)  # fmt: skip
_CHUNK_ROWS = 65_536  # vendor A lines formatted at a time (bounds memory, not speed)
_HEARTBEAT_EVERY_MIN = 15
# Below this many store-days, starting worker processes costs more than it saves.
PARALLEL_MIN_STORE_DAYS = 400
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


def write_chain(
    chain: Chain, out_dir: Path, on_progress: Progress | None = None, workers: int = 1
) -> Manifest:
    """Write every source file and the ground truth of ``chain`` under ``out_dir``.

    ``workers`` > 1 writes tenants in parallel processes when the chain is big enough to pay
    for starting them (same bytes as with one worker); ``on_progress(done, total)`` then
    counts tenants instead of business dates.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    w = _Writer(chain, out_dir)
    w.chain_json()
    w.masters()
    if workers > 1 and len(chain.tenants) > 1 and len(chain.days) >= PARALLEL_MIN_STORE_DAYS:
        parts = [_tenant_chain(chain, t.id) for t in chain.tenants]
        context = multiprocessing.get_context("spawn")
        results: dict[int, list[ManifestEntry]] = {}
        with ProcessPoolExecutor(min(workers, len(parts)), mp_context=context) as pool:
            futures = {pool.submit(_write_dates, part, out_dir): i for i, part in enumerate(parts)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_progress is not None:
                    on_progress(len(results), len(parts))
        dated = [e for i in range(len(parts)) for e in results[i]]
        dated.sort(key=lambda e: e.business_date or date.min)  # stable: tenant order kept
        w.entries.extend(dated)
    else:
        w.entries.extend(_write_dates(chain, out_dir, on_progress))
    w.truth()
    manifest = Manifest(out_dir, w.entries)
    _write_bytes(
        out_dir / "manifest.json",
        (json.dumps(manifest.to_json(), ensure_ascii=False, indent=1) + "\n").encode(),
    )
    log.debug("wrote %d files to %s", len(w.entries), out_dir)
    return manifest


def simulate_to_dir(
    config: SimConfig, out_dir: Path, on_progress: Progress | None = None, workers: int = 1
) -> Manifest:
    """Simulate ``config``'s chain and write it under ``out_dir`` a date at a time: the same
    files as ``write_chain(simulate_chain(config), out_dir)``, in memory bounded by one
    date's store-days (per worker) instead of the whole chain.

    ``workers`` > 1 simulates and writes tenants in parallel processes;
    ``on_progress(done, total)`` then counts tenants, else business dates.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    master = simulate_master(config)
    w = _Writer(master, out_dir)
    w.chain_json()
    w.masters()
    tenant_ids = [t.id for t in master.tenants]
    parts: list[tuple[list[ManifestEntry], list[DailyTruth]]]
    if workers > 1 and len(tenant_ids) > 1:
        context = multiprocessing.get_context("spawn")
        results: dict[int, tuple[list[ManifestEntry], list[DailyTruth]]] = {}
        with ProcessPoolExecutor(min(workers, len(tenant_ids)), mp_context=context) as pool:
            futures = {
                pool.submit(_stream_tenants, config, out_dir, [t]): i
                for i, t in enumerate(tenant_ids)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_progress is not None:
                    on_progress(len(results), len(tenant_ids))
        parts = [results[i] for i in range(len(tenant_ids))]
    else:
        parts = [_stream_tenants(config, out_dir, tenant_ids, on_progress)]
    order = {t: i for i, t in enumerate(tenant_ids)}
    dated = [e for entries, _ in parts for e in entries]
    dated.sort(key=lambda e: e.business_date or date.min)  # stable: tenant order kept
    w.entries.extend(dated)
    rows = [r for _, truth in parts for r in truth]
    rows.sort(key=lambda r: (r.business_date, order[r.tenant_id]))  # chain.days order
    w.truth(rows)
    manifest = Manifest(out_dir, w.entries)
    _write_bytes(
        out_dir / "manifest.json",
        (json.dumps(manifest.to_json(), ensure_ascii=False, indent=1) + "\n").encode(),
    )
    return manifest


def _stream_tenants(
    config: SimConfig,
    out_dir: Path,
    tenant_ids: list[str],
    on_progress: Progress | None = None,
) -> tuple[list[ManifestEntry], list[DailyTruth]]:
    """Simulate and write the dated files of ``tenant_ids``, a date at a time; their manifest
    entries and truth rows."""
    master = simulate_master(config)
    w = _Writer(master, out_dir)
    last_seen: dict[str, dict[int, int]] = {}
    rows: list[DailyTruth] = []
    for i, (day, store_days) in enumerate(iter_store_days(config, set(tenant_ids))):
        w.business_date(day, store_days)
        rows += daily_truth(dataclasses.replace(master, days=store_days), last_seen)
        if on_progress is not None:
            on_progress(i + 1, len(master.dates))
    return w.entries, rows


def _tenant_chain(chain: Chain, tenant_id: str) -> Chain:
    """The part of ``chain`` one tenant's files need (catalogs and staff stay whole)."""
    return Chain(
        config=chain.config,
        tenants=[t for t in chain.tenants if t.id == tenant_id],
        stores=[s for s in chain.stores if s.tenant_id == tenant_id],
        devices=[d for d in chain.devices if d.tenant_id == tenant_id],
        registers=[r for r in chain.registers if r.tenant_id == tenant_id],
        catalogs=chain.catalogs,
        staff=chain.staff,
        days=[d for d in chain.days if d.tenant_id == tenant_id],
        dates=chain.dates,
    )


def _write_dates(
    chain: Chain, out_dir: Path, on_progress: Progress | None = None
) -> list[ManifestEntry]:
    """Write the per-date files (POS, devices, video) of ``chain``; their manifest entries."""
    w = _Writer(chain, out_dir)
    by_date: dict[date, list[StoreDay]] = {}
    for sd in chain.days:
        by_date.setdefault(sd.day, []).append(sd)
    for i, day in enumerate(chain.dates):
        w.business_date(day, by_date.get(day, []))
        if on_progress is not None:
            on_progress(i + 1, len(chain.dates))
    return w.entries


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _yen(sen: int) -> str:
    """A sen amount as a decimal string of yen: 12963 → "129.63", 100 → "1.00"."""
    sign = "-" if sen < 0 else ""
    sen = abs(sen)
    return f"{sign}{sen // 100}.{sen % 100:02d}"


def _csv_field(value: str) -> str:
    """One field as the csv module writes it (quoted when it holds a comma, quote or newline)."""
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="").writerow([value])
    return buf.getvalue()


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
        # Seeds use the tenant number of the id ("t3" → 3): same in a one-tenant part.
        self.tenant_index = {t.id: int(t.id[1:]) for t in chain.tenants}
        self.devices: dict[tuple[str, str], list[Device]] = {}
        for d in chain.devices:
            self.devices.setdefault((d.tenant_id, d.store_code), []).append(d)
        self.industry = {(s.tenant_id, s.code): s.industry for s in chain.stores}
        self.zone = {(s.tenant_id, s.code): s.timezone for s in chain.stores}
        self._minute_cache: dict[tuple[date, str], Table] = {}
        self._beat_cache: dict[tuple[str, date, str], tuple[IntArray, IntArray, Table]] = {}
        self._catalogs: dict[str, _Catalog] = {}
        self._dirs: set[Path] = set()

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.chain.config.seed, 100, *keys])

    def _add(self, rel: str, data: bytes, source: str, content_type: str, **meta: Any) -> None:
        path = self.out / rel
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        path.write_bytes(data)
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
            "initiatives": [
                {
                    "tenant_id": i.tenant_id,
                    "initiative_id": i.initiative_id,
                    "name": i.name,
                    "kind": i.kind,
                    "store_codes": list(i.store_codes),
                    "start": i.start.isoformat(),
                    "end": i.end.isoformat(),
                    "kpi": i.kpi,
                }
                for i in c.initiatives
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
                self.vendor_b_sales(mine)
            counters = [
                (device, sd)
                for sd in mine
                for device in self.devices.get((sd.tenant_id, sd.store_code), [])
                if device.kind == "people_counter"
            ]
            # Counters and cameras are formatted together; files are written store by store,
            # in the same order as before.
            cameras = [
                (device, sd)
                for sd in mine
                for device in self.devices.get((sd.tenant_id, sd.store_code), [])
                if device.kind == "rgb_camera"
            ]
            files = self.counter_events(counters) if counters else []
            counted = {d.device_id: f for (d, _), f in zip(counters, files, strict=True)}
            files = self.visitor_events(cameras) if cameras else []
            filmed = {d.device_id: f for (d, _), f in zip(cameras, files, strict=True)}
            for sd in mine:
                for device in self.devices.get((sd.tenant_id, sd.store_code), []):
                    if device.kind == "people_counter":
                        self._add_events(device, sd, counted[device.device_id])
                    elif device.kind == "tof_camera":
                        self.tof_events(device, sd)
                    else:
                        self._add_video(device, sd, filmed[device.device_id])

    def vendor_a_sales(self, tenant_id: str, day: date, store_days: list[StoreDay]) -> None:
        """One CSV of every store's lines; each register exports its receipts in number order."""
        prefix = day.strftime("%Y/%m/%d ")
        columns: dict[str, list[IntArray]] = {k: [] for k in _VENDOR_A_COLUMNS}
        codes: list[str] = []  # register codes of the day, indexed by the "register" column
        for sd in store_days:
            industry = self.industry[(sd.tenant_id, sd.store_code)]
            price = self._catalog(industry).price_incl
            s = sd.sales
            sign = np.where(s.receipt_kind == RETURN, -1, 1)
            line_sign = sign[s.line_receipt]
            amount = (price[s.line_sku] * s.line_qty - s.line_discount_incl) * line_sign
            total = np.zeros(s.receipt_count, dtype=np.int64)
            np.add.at(total, s.line_receipt, amount)
            number = np.zeros(s.receipt_count, dtype=np.int64)
            for r in range(len(s.registers)):
                mask = s.receipt_register == r
                number[mask] = np.arange(1, int(mask.sum()) + 1)
            # Registers export their own receipts: order by register, then receipt number.
            o = np.lexsort(
                (np.arange(len(s.line_receipt)), number[s.line_receipt],
                 s.receipt_register[s.line_receipt])
            )  # fmt: skip
            rec = s.line_receipt[o]
            for key, values in (
                ("register", s.receipt_register[rec] + len(codes)),
                ("number", number[rec]),
                ("ts", s.receipt_ts[rec]),
                ("kind", s.receipt_kind[rec]),
                ("line_no", _line_numbers(s.line_receipt)[o]),
                ("sku", self._catalog(industry).offset + s.line_sku[o]),
                ("qty", (s.line_qty * line_sign)[o]),
                ("discount", s.line_discount_incl[o]),
                ("amount", amount[o]),
                ("total", total[rec]),
            ):
                columns[key].append(values)
            codes.extend(s.registers)
        data = [",".join(VENDOR_A_SALES_HEADER).encode("cp932"), b"\r\n"]
        n = sum(len(v) for v in columns["sku"])
        rate = self.chain.config.quirk_rate
        picked, choice = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if n and rate != 0:
            rng = self._rng(1, self.tenant_index[tenant_id], day.toordinal())
            picked = np.flatnonzero(rng.random(n) < rate)
            choice = rng.integers(0, 4, len(picked))
        merged = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in columns.items()}
        for begin in range(0, n, _CHUNK_ROWS):  # bounded memory on a big tenant-day
            end = min(n, begin + _CHUNK_ROWS)
            inside = (picked >= begin) & (picked < end)
            part = {k: v[begin:end] for k, v in merged.items()}
            data.append(
                self._vendor_a_rows(part, codes, prefix, picked[inside] - begin, choice[inside])
            )
        rel = f"pos/vendor_a/{tenant_id}/sales_{day:%Y%m%d}.csv"
        self._add(
            rel, b"".join(data), "pos_vendor_a", "text/csv; charset=shift_jis",
            tenant_id=tenant_id, business_date=day,
        )  # fmt: skip

    def _vendor_a_rows(
        self,
        c: dict[str, IntArray],
        codes: list[str],
        prefix: str,
        picked: IntArray,
        choice: IntArray,
    ) -> bytes:
        """Vendor A CSV lines (CP932, CRLF) of the columns ``c``, with the presentation quirks
        FORMATS.md allows at rows ``picked``: full-width digits in the register code (choice
        0), the quantity (1) or the line number, or a thousands separator in the amount (2)
        or the total (3) when it has four digits or more ("1,280", quoted)."""
        cat = self._all_skus()
        register = Table(codes).pick(c["register"])
        qty, line_no = Block.ints(c["qty"]), Block.ints(c["line_no"])
        amount, total = Block.ints(c["amount"]), Block.ints(c["total"])
        fixed: dict[str, list[tuple[int, str]]] = {"register": [], "qty": [], "line_no": []}
        fixed |= {"amount": [], "total": []}
        for i, q in zip(picked.tolist(), choice.tolist(), strict=True):
            if q == 0:
                fixed["register"].append((i, codes[int(c["register"][i])].translate(_FULL_WIDTH)))
            elif q == 1:
                fixed["qty"].append((i, str(int(c["qty"][i])).translate(_FULL_WIDTH)))
            else:
                col = "amount" if q == 2 else "total"
                value = int(c[col][i])
                if abs(value) >= 1000:
                    fixed[col].append((i, _csv_field(f"{value:,}")))
                else:
                    fixed["line_no"].append((i, str(int(c["line_no"][i])).translate(_FULL_WIDTH)))
        blocks = {"register": register, "qty": qty, "line_no": line_no}
        blocks |= {"amount": amount, "total": total}
        for key, changes in fixed.items():
            if changes:
                rows, texts = zip(*changes, strict=True)
                blocks[key] = blocks[key].replace(list(rows), Block.of(texts, "cp932"))
        discount = Block.where(
            c["discount"] != 0, Block.ints(c["discount"]), Block.literal(len(c["discount"]), b"")
        )
        return Block.hcat(
            blocks["register"], ",", Block.ints(c["number"], 6), ",", prefix,
            _hms().pick(c["ts"]), ",", _KIND_A_TABLE.pick(c["kind"]), ",", blocks["line_no"],
            ",", cat.jan.pick(c["sku"]), ",", cat.name_csv.pick(c["sku"]), ",", blocks["qty"],
            ",", cat.price_incl_text.pick(c["sku"]), ",", discount, ",", blocks["amount"], ",",
            cat.rate_a.pick(c["sku"]), ",", blocks["total"], "\r\n",
        ).tobytes()  # fmt: skip

    def vendor_b_sales(self, store_days: list[StoreDay]) -> None:
        """One JSON per store-day; the receipts of all ``store_days`` (one tenant, one date)
        are formatted in one pass and cut into files."""
        cat = self._all_skus()
        stores = len(store_days)
        receipts = np.array([sd.sales.receipt_count for sd in store_days], dtype=np.int64)
        store = np.repeat(np.arange(stores), receipts)
        first_receipt = np.cumsum(receipts) - receipts
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("as_number", "rate_style", "register", "ts", "kind", "zone")
        }
        lines: dict[str, list[np.ndarray]] = {k: [] for k in ("receipt", "sku", "qty", "disc")}
        registers: list[str] = []
        zones: list[str] = []
        for i, sd in enumerate(store_days):
            s = sd.sales
            rng = self._rng(
                2, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
            )
            cols["as_number"].append(rng.random(s.receipt_count) < 0.3)
            cols["rate_style"].append(rng.integers(0, 4, s.receipt_count))
            cols["register"].append(s.receipt_register + len(registers))
            registers.extend(s.registers)
            cols["ts"].append(s.receipt_ts)
            cols["kind"].append(s.receipt_kind)
            zone = self.zone[(sd.tenant_id, sd.store_code)]
            if zone not in zones:
                zones.append(zone)
            cols["zone"].append(np.full(s.receipt_count, zones.index(zone), dtype=np.int64))
            industry = self.industry[(sd.tenant_id, sd.store_code)]
            lines["receipt"].append(s.line_receipt + first_receipt[i])
            lines["sku"].append(s.line_sku + self._catalog(industry).offset)
            lines["qty"].append(s.line_qty)
            lines["disc"].append(s.line_discount_excl_sen)
        c = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in cols.items()}
        li = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in lines.items()}
        n = len(store)
        as_number = c["as_number"].astype(bool)
        # Per receipt and tax class: subtotal in sen and the vendor's tax in yen.
        amounts = cat.price_excl_sen[li["sku"]] * li["qty"] - li["disc"]
        by_rate = np.zeros((n, 3), dtype=np.int64)
        np.add.at(by_rate, (li["receipt"], cat.tax_class[li["sku"]]), amounts)
        subtotal = by_rate.sum(axis=1)
        tax = (by_rate * np.asarray(TAX_PCTS) // 10_000).sum(axis=1)
        day = store_days[0].day
        ymd = f"{day:%Y%m%d}"
        ends = np.zeros(stores, dtype=np.int64)
        buf = np.zeros(0, np.uint8)
        if n:
            number = as_number[li["receipt"]]
            skus = len(cat.skus)
            count = len(li["receipt"])
            first = np.r_[True, li["receipt"][1:] != li["receipt"][:-1]] if count else []
            items = Block.hcat(
                Block.where(first, Block.literal(count, b""), Block.literal(count, b",")),
                cat.b_head.pick(li["sku"]), Block.ints(li["qty"]),
                cat.b_price.pick(number * skus + li["sku"]),
                _money_json(li["disc"], number),
                cat.b_rate.pick(c["rate_style"][li["receipt"]] * skus + li["sku"]),
            )  # fmt: skip
            tax_json = Block.where(
                as_number, Block.ints(tax), Block.hcat('"', Block.ints(tax), '"')
            )
            offsets = Table([o for z in zones for o in day_offsets(z, day)[0]])
            local = np.arange(n) - first_receipt[store]
            last = local == receipts[store] - 1
            codes = Table([f'{{"storeCode":"{sd.store_code}","registerId":"' for sd in store_days])
            heads = Block.hcat(
                codes.pick(store), Table(registers).pick(c["register"]),
                f'","receiptId":"B-{ymd}-', Block.ints(local + 1, 6),
                f'","transactedAt":"{day.isoformat()}T', _hms().pick(c["ts"]),
                offsets.pick(c["zone"] * 26 + c["ts"] // 3600),
                '","type":"', _KIND_B_TABLE.pick(c["kind"]), '","items":[',
            )  # fmt: skip
            tails = Block.hcat(
                '],"subtotal":', _money_json(subtotal, as_number), ',"tax":', tax_json,
                ',"total":', _money_json(subtotal + 100 * tax, as_number), "}",
                Block.where(last, Block.literal(n, b""), Block.literal(n, b",\n")),
            )  # fmt: skip
            counts = np.bincount(li["receipt"], minlength=n)
            buf, row_end = Block.hcat(heads, items.grouped(counts), tails).render()
            ends = np.concatenate([[0], row_end])[np.cumsum(receipts)]
        begin = 0
        for sd, end in zip(store_days, ends.tolist(), strict=True):
            data = b'{"receipts":[\n' + buf[begin:end].tobytes() + b"\n]}\n"
            begin = end
            rel = f"pos/vendor_b/{sd.tenant_id}/{sd.store_code}_{ymd}.json"
            self._add(
                rel, data, "pos_vendor_b", "application/json",
                tenant_id=sd.tenant_id, business_date=sd.day, store_code=sd.store_code,
            )  # fmt: skip

    def _catalog(self, industry: str) -> _Catalog:
        """The catalog of an industry as tables (built once per writer)."""
        cat = self._catalogs.get(industry)
        if cat is None:
            offset = sum(len(v) for k, v in self.chain.catalogs.items() if k < industry)
            cat = self._catalogs[industry] = _Catalog(self.chain.catalogs[industry], offset)
        return cat

    def _all_skus(self) -> _Catalog:
        """Every industry's SKUs in one catalog (industries in name order: ``_Catalog.offset``)."""
        cat = self._catalogs.get("")
        if cat is None:
            skus = [s for k in sorted(self.chain.catalogs) for s in self.chain.catalogs[k]]
            cat = self._catalogs[""] = _Catalog(skus, 0)
        return cat

    # -- devices ------------------------------------------------------------------------
    def _offsets(self, sd: StoreDay) -> Table:
        """The store's UTC offset per wall-clock hour of the date (``model.day_offsets``)."""
        return _offset_table(self.zone[(sd.tenant_id, sd.store_code)], sd.day)

    def _minute_ts(self, day: date, zone: str) -> Table:
        """ISO timestamps of every wall-clock minute of ``day`` in ``zone`` (index 1440+ rolls
        into the next day), each with the offset in force then."""
        cached = self._minute_cache.get((day, zone))
        if cached is None:
            offsets = day_offsets(zone, day)[0]
            cached = Table([_ts(day, m, offsets) for m in range(25 * 60)])
            if any(d != day for d, _ in self._minute_cache):
                self._minute_cache = {}  # dates are written in order: keep one date's
            self._minute_cache[(day, zone)] = cached
        return cached

    def _emit(self, device: Device, sd: StoreDay, events: list[_Events]) -> None:
        """Number events in time order (then by kind, then as listed) and write the file."""
        ms = np.concatenate([e.ms for e in events])
        kind = np.concatenate([np.broadcast_to(e.order, len(e.ms)) for e in events])
        order = np.lexsort((np.arange(len(ms)), kind, ms))
        n = len(order)
        key = (device.tenant_id, device.device_id)
        first = self.seq.get(key, 0) + 1
        self.seq[key] = first + n - 1
        body = b""
        if n:
            tails = Block.vcat([e.tails for e in events]).take(order)
            heads = Block.hcat(
                f'{{"v":1,"device_id":"{device.device_id}","seq":',
                Block.ints(np.arange(first, first + n)),
                ",",
            )
            seps = Block.where(
                np.arange(n) == n - 1, Block.literal(n, b""), Block.literal(n, b",\n")
            )
            body = Block.hcat(heads, tails, seps).tobytes()
        data = b'{"events":[\n' + body + b"\n]}\n"
        rel = f"iot/{device.tenant_id}/{device.device_id}_{sd.day:%Y%m%d}.json"
        self._add(
            rel, data, "iot", "application/json",
            tenant_id=device.tenant_id, business_date=sd.day,
            store_code=device.store_code, device_id=device.device_id,
        )  # fmt: skip

    def _beat_table(
        self, device: Device, sd: StoreDay
    ) -> tuple[tuple[str, date, str], tuple[IntArray, IntArray, Table]]:
        """A heartbeat every 15 minutes of the day: elapsed ms, wall minute and JSON of each
        (cached per zone, date and firmware).

        The device's clock ticks in elapsed time: a local date with a daylight-saving change
        has 92 or 100 heartbeats (none in the skipped hour, the repeated hour twice)."""
        zone = self.zone[(device.tenant_id, device.store_code)]
        firmware = _FIRMWARE.get(device.kind, "1.0.0")
        key = (zone, sd.day, firmware)
        cached = self._beat_cache.get(key)
        if cached is None:
            seconds = day_offsets(zone, sd.day)[1]
            if seconds[0] == seconds[24]:  # no change that day: wall clock = elapsed time
                offsets = day_offsets(zone, sd.day)[0]
                beats = [
                    (m, m, _ts(sd.day, m, offsets)) for m in range(0, 24 * 60, _HEARTBEAT_EVERY_MIN)
                ]
            else:
                beats = _elapsed_beats(zone, sd.day)
            texts = Table(
                [
                    f'"type":"heartbeat","ts":"{stamp}","status":"ok",'
                    f'"firmware":"{firmware}","battery":{round(0.97 - 0.1 * elapsed / 1440, 2)}}}'
                    for elapsed, _, stamp in beats
                ]
            )
            elapsed_ms = np.array([b[0] * 60_000 for b in beats], dtype=np.int64)
            wall = np.array([b[1] for b in beats], dtype=np.int64)
            if any(d != sd.day for _, d, _ in self._beat_cache):
                self._beat_cache = {}  # dates are written in order: keep one date's
            cached = self._beat_cache[key] = (elapsed_ms, wall, texts)
        return key, cached

    def _heartbeats(self, device: Device, sd: StoreDay) -> _Events:
        """The device's heartbeats of the date (it is never offline)."""
        elapsed_ms, _, texts = self._beat_table(device, sd)[1]
        return _Events(elapsed_ms, 1, texts.pick(np.arange(len(texts))))

    def counter_events(self, pairs: list[tuple[Device, StoreDay]]) -> list[bytes]:
        """Entrance and passby counts per interval (1 or 15 min) and heartbeats of people
        counters (one tenant, one date): formatted in one pass, cut into one file each (the
        files' bytes, in the order of ``pairs``)."""
        day = pairs[0][1].day
        zones: list[str] = []
        beat_keys: list[tuple[str, date, str]] = []
        ev: dict[str, list[np.ndarray]] = {
            k: [] for k in ("ms", "order", "device", "text", "line", "begin", "end", "in", "out")
        }
        beats: dict[str, list[np.ndarray]] = {k: [] for k in ("ms", "device", "index")}
        for d, (device, sd) in enumerate(pairs):
            t = sd.traffic
            step = device.interval_minutes
            start = t.window_start - t.window_start % step
            pad_front = t.window_start - start
            span = pad_front + t.window_minutes
            n = -(-span // step)
            pad = n * step - span

            zone = self.zone[(device.tenant_id, device.store_code)]
            if zone not in zones:
                zones.append(zone)
            z = zones.index(zone) * 25 * 60
            shift = np.asarray(_shift_minutes(zone, sd.day), dtype=np.int64)
            begin = start + np.arange(n, dtype=np.int64) * step
            keep = np.ones(n, dtype=bool)
            for b, e in t.offline:
                keep &= ~((b < begin + step) & (begin < e))
            begin = begin[keep]
            ms = (begin + step + shift[begin // 60]) * 60_000  # elapsed, as heartbeats
            for order, (ins, outs) in enumerate(
                (
                    (_binned(t.entry_s, start, step, n), _binned(t.exit_s, start, step, n)),
                    (
                        _per_interval(t.passby_in, pad_front, pad, n, step),
                        _per_interval(t.passby_out, pad_front, pad, n, step),
                    ),
                )
            ):
                k = len(begin)
                ev["ms"].append(ms)
                ev["order"].append(np.full(k, order * 2, np.int64))
                ev["device"].append(np.full(k, d, np.int64))
                ev["line"].append(np.full(k, order, np.int64))
                ev["begin"].append(begin + z)
                ev["end"].append(begin + step + z)
                ev["in"].append(ins[keep])
                ev["out"].append(outs[keep])
            key, (beat_ms, wall, _) = self._beat_table(device, sd)
            if key not in beat_keys:
                beat_keys.append(key)
            kept = np.ones(len(wall), dtype=bool)
            for b, e in t.offline:
                kept &= ~((b <= wall) & (wall < e))
            beats["ms"].append(beat_ms[kept])
            beats["device"].append(np.full(int(kept.sum()), d, np.int64))
            beats["index"].append(np.flatnonzero(kept) + 1_000_000 * beat_keys.index(key))
        c = {k: np.concatenate(v) for k, v in ev.items() if v}
        hb = {k: np.concatenate(v) for k, v in beats.items()}
        # Heartbeats first, then counts: within a device, ties in time keep this order.
        tables = [self._beat_cache[k][2] for k in beat_keys]
        beat_texts, bases = Table.concat(tables)
        which = hb["index"] // 1_000_000
        hb_rows = beat_texts.pick(bases[which] + hb["index"] % 1_000_000)
        ts = Table.concat([self._minute_ts(day, z) for z in zones])[0]
        counts = Block.hcat(
            '"type":"count","line":"', _COUNTER_LINES.pick(c["line"]), '","interval_start":"',
            ts.pick(c["begin"]), '","interval_end":"', ts.pick(c["end"]), '","in":',
            Block.ints(c["in"]), ',"out":', Block.ints(c["out"]), "}",
        )  # fmt: skip
        ms = np.concatenate([hb["ms"], c["ms"]])
        kinds = np.concatenate([np.ones(len(hb["ms"]), np.int64), c["order"]])
        owner = np.concatenate([hb["device"], c["device"]])
        o = np.lexsort((np.arange(len(ms)), kinds, ms, owner))
        tails = Block.vcat([hb_rows, counts]).take(o)
        owner = owner[o]
        per_device = np.bincount(owner, minlength=len(pairs))
        first_row = np.cumsum(per_device) - per_device
        rank = np.arange(len(o)) - first_row[owner]
        first_seq = np.zeros(len(pairs), dtype=np.int64)
        for d, (dev, _) in enumerate(pairs):
            key2 = (dev.tenant_id, dev.device_id)
            first_seq[d] = self.seq.get(key2, 0) + 1
            self.seq[key2] = int(first_seq[d] + per_device[d] - 1)
        heads = Table([f'{{"v":1,"device_id":"{dev.device_id}","seq":' for dev, _ in pairs])
        last = rank == per_device[owner] - 1
        buf, row_end = Block.hcat(
            heads.pick(owner), Block.ints(first_seq[owner] + rank), ",", tails,
            Block.where(last, Block.literal(len(o), b""), Block.literal(len(o), b",\n")),
        ).render()  # fmt: skip
        ends = np.concatenate([[0], row_end])[np.cumsum(per_device)]
        files, begin_at = [], 0
        for end in ends.tolist():
            files.append(b'{"events":[\n' + buf[begin_at:end].tobytes() + b"\n]}\n")
            begin_at = end
        return files

    def _add_events(self, device: Device, sd: StoreDay, data: bytes) -> None:
        rel = f"iot/{device.tenant_id}/{device.device_id}_{sd.day:%Y%m%d}.json"
        self._add(
            rel, data, "iot", "application/json",
            tenant_id=device.tenant_id, business_date=sd.day,
            store_code=device.store_code, device_id=device.device_id,
        )  # fmt: skip

    def tof_events(self, device: Device, sd: StoreDay) -> None:
        """Tracks of the visitors crossing the ToF camera's field (≈30 %), plus zone counts."""
        t = sd.traffic
        rng = self._rng(
            3, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
        )
        zones = device.zones
        tracked = np.flatnonzero(rng.random(len(t.entry_s)) < 0.3)
        # Ties in time sort by track id: its number must not outgrow its five digits.
        assert len(tracked) < 100_000, "more ToF tracks in a day than track ids have digits"
        n_points = rng.integers(3, 7, len(tracked))
        total = int(n_points.sum())
        track_of = np.repeat(np.arange(len(tracked)), n_points)
        u = rng.random(total)
        u = u[np.lexsort((u, track_of))]  # ascending within each track
        entry = t.entry_s[tracked][track_of]
        dwell = (t.exit_s - t.entry_s)[tracked][track_of]
        ms = ((entry + u * dwell) * 1000).astype(np.int64)
        zone = rng.integers(0, len(zones), total)
        # x.round(2) is rint(x * 100) / 100, whose repr is the decimal of rint(x * 100)
        xs = np.rint(rng.uniform(0.0, 12.0, total) * 100).astype(np.int64)
        ys = np.rint(rng.uniform(0.0, 8.0, total) * 100).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(n_points)])
        last_ms = ms[bounds[1:] - 1] if total else np.zeros(0, np.int64)
        ymd = f"{sd.day:%Y%m%d}"
        events = [self._heartbeats(device, sd)]
        if len(tracked):
            points = Block.hcat(
                Block.where(
                    np.r_[True, track_of[1:] != track_of[:-1]],
                    Block.literal(total, b""), Block.literal(total, b","),
                ),
                f'{{"ts":"{sd.day.isoformat()}T', _hms().pick(ms // 1000), ".",
                Block.ints(ms % 1000, 3), self._offsets(sd).pick(ms // 3_600_000), '","x":',
                Block.decimals(xs, 2), ',"y":', Block.decimals(ys, 2), ',"zone":"',
                Table(zones).pick(zone), '"}',
            )  # fmt: skip
            k = len(tracked)
            heads = Block.hcat(
                f'"type":"track","track_id":"{ymd}-',
                Block.ints(np.arange(1, k + 1), 5),
                '","points":[',
            )
            tails = Block.hcat(heads, points.grouped(n_points), "]}")
            events.append(_Events(last_ms, 2, tails))
        # Zone counts per 15 minutes: a track enters a zone where a run of its points in
        # that zone starts, and leaves it when the next run starts (or at its last point).
        if total:
            first_of_track = np.r_[True, track_of[1:] != track_of[:-1]]
            run_start = first_of_track | np.r_[True, zone[1:] != zone[:-1]]
            starts = np.flatnonzero(run_start)
            following = np.r_[starts[1:], total]
            same_track = following < total
            same_track[same_track] = track_of[following[same_track]] == track_of[starts[same_track]]
            track_end = bounds[1:] - 1
            end_ms = np.where(
                same_track, ms[np.minimum(following, total - 1)], ms[track_end[track_of[starts]]]
            )
            slots = 24 * 4
            zone_in = np.zeros((len(zones), slots), dtype=np.int64)
            zone_out = np.zeros((len(zones), slots), dtype=np.int64)
            np.add.at(zone_in, (zone[starts], ms[starts] // 900_000), 1)
            np.add.at(zone_out, (zone[starts], np.minimum(end_ms // 900_000, slots - 1)), 1)
            ts = self._minute_ts(sd.day, self.zone[(device.tenant_id, device.store_code)])
            used = np.flatnonzero((zone_in + zone_out).sum(axis=0))
            slot = np.repeat(used, len(zones))  # slot by slot, each zone in turn
            z = np.tile(np.arange(len(zones)), len(used))
            begin = slot * 15
            tails = Block.hcat(
                '"type":"count","line":"', Table(zones).pick(z), '","interval_start":"',
                ts.pick(begin), '","interval_end":"', ts.pick(begin + 15), '","in":',
                Block.ints(zone_in[z, slot]), ',"out":', Block.ints(zone_out[z, slot]), "}",
            )  # fmt: skip
            events.append(_Events((begin + 15) * 60_000, 3 + z, tails))
        self._emit(device, sd, events)

    def visitor_events(self, pairs: list[tuple[Device, StoreDay]]) -> list[bytes]:
        """What the video analyzer reports: entry and exit of each person, staff included,
        for the cameras of one tenant on one date, formatted in one pass (the files' bytes, in
        the order of ``pairs``)."""
        day = pairs[0][1].day
        tenant = pairs[0][1].tenant_id
        zones: list[str] = []
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("camera", "person", "event", "sec", "zone", "quality", "local")
        }
        customers: list[np.ndarray] = []
        staff: list[str] = []
        rows = np.zeros(len(pairs), dtype=np.int64)
        customer_at = 0
        staff_at: list[int] = []
        for d, (_, sd) in enumerate(pairs):
            t = sd.traffic
            rng = self._rng(
                4, self.tenant_index[sd.tenant_id], int(sd.store_code[1:]), sd.day.toordinal()
            )
            n = len(t.person) + len(t.staff_index)
            seconds = np.concatenate([t.entry_s, t.staff_entry_s, t.exit_s, t.staff_exit_s])
            is_exit = np.repeat(np.array([0, 1]), n)
            order = np.lexsort((is_exit, seconds))
            quality = np.rint(rng.uniform(0.55, 0.99, 2 * n) * 1000).astype(np.int64)[order]
            if n == 0:
                staff_at.append(len(staff))
                continue
            local = order % n
            # customers are rows [0, len(person)) of the day's people, staff the rest
            is_staff = local >= len(t.person)
            staff_at.append(len(staff))
            person = np.where(is_staff, local - len(t.person), local + customer_at)
            cols["person"].append(np.where(is_staff, -1 - person, person))
            customers.append(t.person)
            customer_at += len(t.person)
            staff += [self.chain.staff[i].person_id for i in t.staff_index.tolist()]
            zone = self.zone[(sd.tenant_id, sd.store_code)]
            if zone not in zones:
                zones.append(zone)
            cols["camera"].append(np.full(2 * n, d, np.int64))
            cols["event"].append(order // n)
            cols["sec"].append(seconds[order])
            cols["zone"].append(np.full(2 * n, zones.index(zone), np.int64))
            cols["quality"].append(quality)
            cols["local"].append(local)
            rows[d] = 2 * n
        if not rows.sum():
            return [b""] * len(pairs)
        c = {k: np.concatenate(v) for k, v in cols.items()}
        camera = c["camera"]
        # staff rows: −1 − (index within the camera's staff) → a global staff row
        base = np.asarray(staff_at, dtype=np.int64)[camera]
        staff_row = np.where(c["person"] < 0, -1 - c["person"] + base, 0)
        customer_row = np.where(c["person"] >= 0, c["person"], 0)
        all_customers = np.concatenate(customers) if customers else np.zeros(0, np.int64)
        people = Block.where(
            c["person"] >= 0,
            Block.hcat(f"{tenant}-p", Block.ints(all_customers[customer_row], 7)),
            Table(staff or [""]).pick(staff_row),
        )
        offsets = Table([o for z in zones for o in day_offsets(z, day)[0]])
        heads = Table([f'{{"camera_id":"{dev.device_id}","person_id":"' for dev, _ in pairs])
        sec = c["sec"]
        buf, row_end = Block.hcat(
            heads.pick(camera), people, '","event":"', _EVENT_TABLE.pick(c["event"]),
            f'","ts":"{day.isoformat()}T', _hms().pick(sec),
            offsets.pick(c["zone"] * 26 + sec // 3600), '","quality":',
            Block.decimals(c["quality"], 3), f',"track_id":"{day:%Y%m%d}-',
            Block.ints(c["local"] + 1, 5), '"}\n',
        ).render()  # fmt: skip
        ends = np.concatenate([[0], row_end])[np.cumsum(rows)]
        starts = np.concatenate([[0], ends[:-1]])
        return [buf[a:b].tobytes() for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def _add_video(self, device: Device, sd: StoreDay, data: bytes) -> None:
        cam = device.device_id
        rel = f"video/{sd.tenant_id}/{cam}_{sd.day:%Y%m%d}.jsonl"
        self._add(
            rel, data, "visitor_events", "application/x-ndjson",
            tenant_id=sd.tenant_id, business_date=sd.day, store_code=sd.store_code,
            device_id=cam,
        )  # fmt: skip

    # -- ground truth --------------------------------------------------------------------
    def truth(self, rows: list[DailyTruth] | None = None) -> None:
        if rows is None:
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
        targets = [
            (t.tenant_id, t.store_code, t.kpi, _num(t.actual), _num(t.achievable))
            for t in target_truth(self.chain, rows)
        ]
        data = _csv_bytes(
            ("tenant_id", "store_code", "kpi", "actual", "achievable"), targets, "utf-8"
        )
        self._add("truth/targets.csv", data.replace(b"\r\n", b"\n"), "truth", "text/csv")
        initiatives = [
            (
                i.tenant_id,
                i.initiative_id,
                " ".join(i.store_codes),
                i.start.isoformat(),
                i.end.isoformat(),
                i.kpi,
                f"{i.true_effect:.3f}",
            )  # fmt: skip
            for i in self.chain.initiatives
        ]
        columns = ("tenant_id", "initiative_id", "store_codes", "start", "end", "kpi")
        data = _csv_bytes((*columns, "true_effect"), initiatives, "utf-8")
        self._add("truth/initiatives.csv", data.replace(b"\r\n", b"\n"), "truth", "text/csv")
        staff = [(m.tenant_id, m.store_code, m.person_id) for m in self.chain.staff]
        data = _csv_bytes(("tenant_id", "store_code", "person_id"), staff, "utf-8")
        self._add("truth/staff.csv", data.replace(b"\r\n", b"\n"), "truth", "text/csv")


def _num(value: float | None) -> str:
    """A truth figure in CSV: 6 significant digits, empty when unknown."""
    return "" if value is None else f"{value:.6g}"


def _line_numbers(line_receipt: np.ndarray) -> IntArray:
    """1-based position of each line within its receipt (lines grouped by receipt)."""
    n = len(line_receipt)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, line_receipt[1:] != line_receipt[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.asarray(np.arange(n) - first + 1, dtype=np.int64)


def _json(value: str | int | float) -> str:
    return json.dumps(value)


def _money(sen: int, as_number: bool) -> str | int | float:
    """Vendor B money: a decimal string, or a JSON number (int when whole yen)."""
    if not as_number:
        return _yen(sen) if sen else "0"
    return sen // 100 if sen % 100 == 0 else sen / 100


def _per_interval(per_minute: IntArray, pad_front: int, pad: int, n: int, step: int) -> IntArray:
    """Per-minute counts summed over ``n`` intervals of ``step`` minutes (zeros padded
    before and after the window)."""
    full = np.concatenate([np.zeros(pad_front, np.int64), per_minute, np.zeros(pad, np.int64)])
    return np.asarray(full.reshape(n, step).sum(axis=1), dtype=np.int64)


def _binned(seconds: IntArray, start: int, step: int, n: int) -> IntArray:
    """How many of ``seconds`` fall in each of ``n`` intervals of ``step`` minutes from minute
    ``start``."""
    index = (seconds // 60 - start) // step
    return np.bincount(index, minlength=n)[:n]


def _money_json(sen: IntArray, as_number: np.ndarray) -> Block:
    """``_json(_money(sen, as_number))`` row by row."""
    sen = np.asarray(sen, dtype=np.int64)
    n = len(sen)
    whole = sen % 100 == 0
    number = Block.where(whole, Block.ints(sen // 100), Block.decimals(sen, 2))
    a = np.abs(sen)
    sign = Block.where(sen < 0, Block.literal(n, b"-"), Block.literal(n, b""))
    text = Block.hcat('"', sign, Block.ints(a // 100), ".", Block.ints(a % 100, 2), '"')
    text = Block.where(sen == 0, Block.literal(n, b'"0"'), text)
    return Block.where(np.asarray(as_number, dtype=bool), number, text)


@functools.cache
def _hms() -> Table:
    """ "HH:MM:SS" of every second of a day."""
    return Table([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(24 * 3600)])


@functools.lru_cache(maxsize=64)
def _offset_table(zone: str, day: date) -> Table:
    """The UTC offset of each wall-clock hour of ``day`` in ``zone`` (``model.day_offsets``)."""
    return Table(day_offsets(zone, day)[0])


@dataclass
class _Events:
    """Device events of one kind: sort time (elapsed ms), kind order, and the JSON after
    ``"seq":n,``."""

    ms: IntArray
    order: int | IntArray
    tails: Block


class _Catalog:
    """An industry's SKUs as the writers look them up (``offset``: its first SKU's index in
    all industries' SKUs, industries in name order)."""

    def __init__(self, skus: list[Sku], offset: int) -> None:
        self.skus = skus
        self.offset = offset
        self.price_incl = np.array([k.price_incl for k in skus], dtype=np.int64)
        self.price_excl_sen = np.array([k.price_excl_sen for k in skus], dtype=np.int64)
        self.tax_class = np.array([k.tax_class for k in skus], dtype=np.int64)
        self.jan = Table([k.jan for k in skus])
        self.name_csv = Table([_csv_field(k.name) for k in skus], "cp932")
        self.price_incl_text = Table([str(k.price_incl) for k in skus])
        self.rate_a = Table([_RATE_A[k.tax_class] for k in skus], "cp932")
        # Vendor B items: head by SKU, unit price by (as number) × SKUs + SKU, tax rate by
        # rate style × SKUs + SKU.
        self.b_head = Table(
            [
                f'{{"sku":"{k.jan}","name":{json.dumps(k.name, ensure_ascii=False)},"qty":'
                for k in skus
            ]
        )
        self.b_price = Table(
            [
                f',"unitPrice":{_json(_money(k.price_excl_sen, number))},"discount":'
                for number in (False, True)
                for k in skus
            ]
        )
        self.b_rate = Table(
            [
                f',"taxRate":{_json(_tax_rate(k.tax_pct, style))}}}'
                for style in range(4)
                for k in skus
            ]
        )


def _tax_rate(pct: int, style: int) -> str | int | float:
    """Vendor B's taxRate in one of its styles: "8.000", "8", 0.08, "0.08"."""
    if style == 0:
        return f"{pct}.000"
    if style == 1:
        return str(pct)
    if style == 2:
        return pct / 100 if pct else 0
    return f"{pct / 100:.2f}"


def _ts(day: date, minute: int, offsets: tuple[str, ...]) -> str:
    """Local ISO timestamp of a wall-clock minute of the business date (24:00 rolls to the
    next day), with the offset of its hour."""
    offset = offsets[minute // 60]
    if minute >= 24 * 60:
        day, minute = day + timedelta(days=1), minute - 24 * 60
    return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00{offset}"


def _shift_minutes(zone: str, day: date) -> list[int]:
    """Per wall-clock hour: elapsed minutes since local midnight minus wall minutes (0 on a
    day without a daylight-saving change; ±60 after the change)."""
    seconds = day_offsets(zone, day)[1]
    return [(seconds[0] - s) // 60 for s in seconds]


def _elapsed_beats(zone: str, day: date) -> list[tuple[int, int, str]]:
    """(elapsed minute, wall minute, ISO timestamp) every 15 minutes of elapsed time from
    local midnight to the next one, on a date whose UTC offset changes."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    beats = []
    for elapsed in range(0, int((end - start).total_seconds()) // 60, _HEARTBEAT_EVERY_MIN):
        local = (start + timedelta(minutes=elapsed)).astimezone(tz)
        beats.append((elapsed, local.hour * 60 + local.minute, local.isoformat()))
    return beats


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
    import pyarrow as pa  # here: worker processes never need it
    import pyarrow.parquet as pq

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
