"""Simulator throughput: a chain simulated and written as the scale harness does it.

``simulate``: ``simulate_to_dir`` of STORES × DAYS (2 tenants, workers = min(4, CPUs), as
``tenpo bench scale``) in MB of source files per CPU-second (all processes: the machine is
shared and wall time is noisy; ``wall_s`` and ``wall_floor_met`` are reported too). Floor
(issue 13): 700 × 30 in ≤ 120 s; as a rate, the chain's bytes in 120 s on each worker's
own core. Baseline, measured in the same run: a minimal
per-record writer (stdlib ``json.dumps`` of a dict per receipt and per event,
``csv.writer`` per vendor-A line: files written without formatting a column at a time) on
one date of 40 stores, in MB per CPU-second of a process that simulates nothing (the
simulator's figure includes simulating). Peak RSS is reported too.

``TENPO_BENCH_SIM_STORES`` / ``TENPO_BENCH_SIM_DAYS`` change the size (default 700 × 30).
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench._common import report
from tenpo.simulate import SimConfig, simulate_to_dir
from tenpo.simulate.engine import iter_store_days, simulate_master
from tenpo.simulate.model import Chain, StoreDay

START = date(2026, 10, 5)
FLOOR_S = 120.0
SAMPLE_STORES = 40


def _cpu_s() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def reference_bytes(chain: Chain, store_days: list[StoreDay]) -> int:
    """Write ``store_days`` record by record (stdlib, no tables); the bytes made."""
    catalogs = chain.catalogs
    industry = {(s.tenant_id, s.code): s.industry for s in chain.stores}
    vendor = {t.id: t.pos_vendor for t in chain.tenants}
    total = 0
    for sd in store_days:
        skus = catalogs[industry[(sd.tenant_id, sd.store_code)]]
        s = sd.sales
        lines = list(
            zip(s.line_receipt.tolist(), s.line_sku.tolist(), s.line_qty.tolist(), strict=True)
        )
        if vendor[sd.tenant_id] == "vendor_a":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            for rec, sku, qty in lines:
                k = skus[sku]
                w.writerow([s.receipt_register[rec], rec, s.receipt_ts[rec], k.jan, k.name, qty])
            total += len(buf.getvalue().encode("cp932"))
        else:
            items: dict[int, list[dict[str, object]]] = {}
            for rec, sku, qty in lines:
                k = skus[sku]
                items.setdefault(rec, []).append(
                    {"sku": k.jan, "name": k.name, "qty": qty, "unitPrice": k.price_excl_sen / 100}
                )
            body = [
                json.dumps({"receiptId": r, "ts": int(ts), "items": items.get(r, [])})
                for r, ts in enumerate(s.receipt_ts.tolist())
            ]
            total += len(",\n".join(body).encode())
        t = sd.traffic
        events = [
            json.dumps({"v": 1, "seq": i, "type": "count", "in": a, "out": b})
            for i, (a, b) in enumerate(
                zip(t.passby_in.tolist(), t.passby_out.tolist(), strict=True)
            )
        ]
        events += [
            json.dumps({"person_id": int(p), "event": "entry", "ts": int(x)})
            for p, x in zip(t.person.tolist(), t.entry_s.tolist(), strict=True)
        ]
        total += len(",\n".join(events).encode())
    return total


def main() -> None:
    stores = int(os.environ.get("TENPO_BENCH_SIM_STORES", "700"))
    days = int(os.environ.get("TENPO_BENCH_SIM_DAYS", "30"))
    config = SimConfig(
        seed=7, tenants=2, stores_per_tenant=stores // 2, days=days, start_date=START
    )
    # Baseline: one date of SAMPLE_STORES stores, written record by record.
    sample = SimConfig(
        seed=7, tenants=2, stores_per_tenant=SAMPLE_STORES // 2, days=1, start_date=START
    )
    chain = simulate_master(sample)
    _, store_days = next(iter_store_days(sample))
    began = time.process_time()
    made = reference_bytes(chain, store_days)
    reference_mb_s = made / 1e6 / (time.process_time() - began)
    workers = min(4, os.cpu_count() or 1)

    out = Path(tempfile.mkdtemp(prefix="tenpo-bench-sim-"))
    try:
        cpu0, began = _cpu_s(), time.perf_counter()
        simulate_to_dir(config, out / "sim", workers=workers)
        wall = time.perf_counter() - began
        cpu = _cpu_s() - cpu0
        files = [p for p in (out / "sim").rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    report(
        "simulate",
        size / 1e6 / cpu,
        "MB per CPU-s",
        baseline=reference_mb_s,
        target=1.0,
        # 700 x 30 in 120 s on the harness's workers, each with a core of its own
        floor=size / 1e6 / (FLOOR_S * min(workers, os.cpu_count() or 1)),
        stores=stores,
        days=days,
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        floor_wall_s=FLOOR_S,
        wall_floor_met=wall <= FLOOR_S,
        workers=workers,
        files=len(files),
        bytes=size,
        peak_rss_mib={"main": own.ru_maxrss // 1024, "worker": kids.ru_maxrss // 1024},
        load_avg=round(os.getloadavg()[0], 1),
    )


if __name__ == "__main__":
    main()
