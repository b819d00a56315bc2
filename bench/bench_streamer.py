"""Streamer throughput: landed objects → raw tables, rows/s, three ways.

* ``streamer_throughput``: ~2,000 small vendor-B JSON objects (4 receipts each), loaded by the
  batching streamer (``streamer_batch_objects`` objects per batch, one Parquet part per
  table/tenant/date) vs the naive approach (the same streamer with a batch of one object, so
  one Parquet file per object and table); target 3x the naive rate.
* ``streamer_vendor_b``: store-day sized vendor-B bodies (400 receipts, as the simulator and
  the demo send them); floor (issue 13) 100,000 rows/s.
* ``streamer_demo_mix``: the demo's sources of a simulated chain (POS vendor A CSV + master,
  vendor B JSON, device events, visitor events) landed as the demo lands them; floor (issue
  13) 300,000 rows/s. Baselines: the same objects loaded one per batch.

Landing is set-up, not measured. Best of RUNS for each batched arm; ``cpu_rows_per_s`` is the
best of RUNS in rows per CPU-second of the process (every thread) while loading, steadier than wall
time on a shared machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from bench._common import report
from tenpo.bus import OBJECT_REGISTERED, EventBus, open_bus
from tenpo.bus.sqlite import SqliteBus
from tenpo.control.directory import StaticDirectory, StoreRef
from tenpo.core.ids import content_id, utcnow
from tenpo.core.settings import Settings
from tenpo.lake import Lake, ObjectRegistered, landing_key, open_lake
from tenpo.pos import VendorBPreEtl
from tenpo.streamer import BatchStats, Streamer

OBJECTS = 2000
NAIVE_OBJECTS = 300  # a rate is a rate: the naive arm runs on a subset to stay short
BATCH = 200  # the default streamer_batch_objects
RECEIPTS_PER_OBJECT = 4
BIG_OBJECTS = 40  # store-day sized bodies, as the simulator writes them
BIG_RECEIPTS = 400
BIG_NAIVE_OBJECTS = 10
MIX_STORES, MIX_DAYS = 10, 7
RUNS = 2
TENANTS = ("t1", "t2")
STORES = 5
DAYS = 7
JST = timezone(timedelta(hours=9))
RATES = {8: "8.000", 10: "10"}


def vendor_b_body(
    rng: random.Random, store: str, day: date, seq: int, receipts_per_object: int = 4
) -> bytes:
    """One valid vendor-B body (``{"receipts": [...]}``) with amounts excluding tax."""
    receipts = []
    for r in range(receipts_per_object):
        items = []
        by_rate: dict[int, Decimal] = {}
        for _ in range(rng.randint(1, 4)):
            rate = rng.choice((8, 10))
            qty = rng.randint(1, 3)
            price = Decimal(rng.randint(80, 2500))
            by_rate[rate] = by_rate.get(rate, Decimal(0)) + qty * price
            items.append(
                {
                    "sku": f"49{rng.randint(10**10, 10**11 - 1)}",
                    "name": "商品",
                    "qty": qty,
                    "unitPrice": str(price),
                    "discount": "0",
                    "taxRate": RATES[rate],
                }
            )
        subtotal = sum(by_rate.values(), Decimal(0))
        tax = sum((v * rate // 100 for rate, v in by_rate.items()), Decimal(0))
        at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=JST) + timedelta(
            seconds=seq * 7 + r
        )
        receipts.append(
            {
                "storeCode": store,
                "registerId": "R1",
                "receiptId": f"B-{seq:06d}-{r:04d}",
                "transactedAt": at.isoformat(),
                "type": "SALE",
                "items": items,
                "subtotal": str(subtotal),
                "tax": str(tax),
                "total": str(subtotal + tax),
            }
        )
    return json.dumps({"receipts": receipts}, ensure_ascii=False).encode()


def _directory() -> StaticDirectory:
    return StaticDirectory(
        stores=[
            StoreRef(store_id=f"{t}-s{i}", tenant_id=t, code=f"S{i:03d}")
            for t in TENANTS
            for i in range(STORES)
        ]
    )


def _land_all(lake: Lake, bus: EventBus, objects: int, receipts: int = RECEIPTS_PER_OBJECT) -> None:
    """Put ``objects`` vendor-B bodies in landing/ and announce them, as LandingZone does.

    Set-up only, not measured: files are written without fsync and events published in one
    transaction when the bus can, so that the benchmark's time goes to the streamer.
    """
    rng = random.Random(42)
    start = date(2026, 10, 5)
    events: list[tuple[str, dict[str, object]]] = []
    for seq in range(objects):
        tenant = TENANTS[seq % len(TENANTS)]
        day = start + timedelta(days=seq % DAYS)
        data = vendor_b_body(rng, f"S{rng.randrange(STORES):03d}", day, seq, receipts)
        object_id = content_id(data)
        key = landing_key("pos_vendor_b", tenant, day, object_id, "json")
        lake.filesystem.makedirs(lake.path(key).rsplit("/", 1)[0], exist_ok=True)
        lake.filesystem.pipe_file(lake.path(key), data)
        event = ObjectRegistered(
            key=key,
            source="pos_vendor_b",
            tenant_id=tenant,
            business_date=day,
            object_id=object_id,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type="application/json",
            registered_at=utcnow(),
        )
        events.append((key, event.model_dump(mode="json")))
    if isinstance(bus, SqliteBus):
        bus.publish_many(OBJECT_REGISTERED, events)
    else:
        for key, payload in events:
            bus.publish(OBJECT_REGISTERED, payload, event_id=key)


def _arm(
    root: Path, objects: int, batch: int, receipts: int = RECEIPTS_PER_OBJECT
) -> tuple[float, BatchStats, float]:
    """Land ``objects`` objects, then load them with ``batch`` objects per batch: rows/s,
    the totals, and rows per CPU-second of this process (every thread) while loading."""
    cfg = Settings(data_dir=root, streamer_batch_objects=batch, bus_ack_wait_s=60.0)
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    _land_all(lake, bus, objects, receipts)
    streamer = Streamer(cfg, lake, bus, _directory(), {"pos_vendor_b": VendorBPreEtl()})
    cpu = time.process_time()
    began = time.perf_counter()
    last = began

    def on_batch(_stats: BatchStats) -> None:
        nonlocal last
        last = time.perf_counter()

    stats = streamer.run_until_idle(0.3, on_batch=on_batch)
    cpu = time.process_time() - cpu
    streamer.close()
    bus.close()
    if stats.objects != objects or stats.rejects:
        raise RuntimeError(f"expected {objects} clean objects, got {stats}")
    return stats.total_rows / (last - began), stats, stats.total_rows / cpu


def _demo_mix(root: Path, batch: int, run: int = 0) -> tuple[float, BatchStats, float]:
    """The demo's sources (POS A and B, device events, visitor events) of a simulated chain,
    landed as the demo sends them, then loaded: rows/s, the totals, rows per CPU-second."""
    from tenpo.control import ControlPlane
    from tenpo.flow import register_chain, source_files
    from tenpo.lake import LandingZone
    from tenpo.simulate import simulate
    from tenpo.simulate.config import SimConfig

    sim = root / "sim"
    if not sim.exists():
        simulate(
            SimConfig(seed=7, tenants=2, stores_per_tenant=MIX_STORES // 2, days=MIX_DAYS), sim
        )
    cfg = Settings(
        data_dir=root / f"mix-{batch}-{run}", streamer_batch_objects=batch, bus_ack_wait_s=60.0
    )
    control = ControlPlane.open(cfg.control_db_url)
    register_chain(control, json.loads((sim / "chain.json").read_text(encoding="utf-8")))
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    landing = LandingZone(lake, bus, timezone=cfg.default_timezone)
    files = source_files(sim)
    if batch == 1:
        files = [f for f in files if f[0] == "pos_vendor_a_master"] + files[1 :: len(files) // 40]
    for source, tenant, path in files:
        landing.land(source, tenant, path.read_bytes(), path.suffix.lstrip("."))
    streamer = Streamer(cfg, lake, bus, control.directory())
    cpu = time.process_time()
    began = time.perf_counter()
    last = began

    def on_batch(_stats: BatchStats) -> None:
        nonlocal last
        last = time.perf_counter()

    stats = streamer.run_until_idle(0.3, on_batch=on_batch)
    cpu = time.process_time() - cpu
    streamer.close()
    bus.close()
    control.dispose()
    if stats.rejects:
        raise RuntimeError(f"the demo's sources should load clean, got {stats}")
    return stats.total_rows / (last - began), stats, stats.total_rows / cpu


def main() -> None:
    """Run the arms in temporary data dirs; report ``streamer_throughput`` (small vendor-B
    objects, batched vs one object per batch), ``streamer_vendor_b`` (store-day sized vendor-B
    bodies) and ``streamer_demo_mix`` (the demo's sources), best of RUNS each."""
    logging.getLogger("tenpo").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="tenpo-bench-streamer-"))
    try:
        batched, stats, _ = max(
            (_arm(root / f"batched{i}", OBJECTS, batch=BATCH) for i in range(RUNS)),
            key=lambda r: r[0],
        )
        naive, naive_stats, _ = _arm(root / "naive", NAIVE_OBJECTS, batch=1)
        big_runs = [_arm(root / f"big{i}", BIG_OBJECTS, BATCH, BIG_RECEIPTS) for i in range(RUNS)]
        big, big_stats, _ = max(big_runs, key=lambda r: r[0])
        big_naive, _, _ = _arm(root / "big-naive", BIG_NAIVE_OBJECTS, 1, BIG_RECEIPTS)
        mix_runs = [_demo_mix(root, BATCH, i) for i in range(RUNS)]
        mix, mix_stats, _ = max(mix_runs, key=lambda r: r[0])
        mix_naive, _, _ = _demo_mix(root, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(
        "streamer_throughput",
        value=batched,
        unit="rows/s",
        baseline=naive,
        target=3.0,
        objects=OBJECTS,
        rows=stats.total_rows,
        parts=stats.parts,
        naive_objects=NAIVE_OBJECTS,
        naive_parts=naive_stats.parts,
        batch_objects=BATCH,
    )
    report(
        "streamer_vendor_b",
        value=big,
        unit="rows/s",
        baseline=big_naive,
        target=1.0,
        floor=100_000.0,
        objects=BIG_OBJECTS,
        receipts_per_object=BIG_RECEIPTS,
        rows=big_stats.total_rows,
        cpu_rows_per_s=round(max(r[2] for r in big_runs)),
        baseline_is="the same objects, one per batch",
    )
    report(
        "streamer_demo_mix",
        value=mix,
        unit="rows/s",
        baseline=mix_naive,
        target=1.0,
        floor=300_000.0,
        stores=MIX_STORES,
        days=MIX_DAYS,
        objects=mix_stats.objects,
        rows=mix_stats.total_rows,
        rows_by_table=mix_stats.rows,
        cpu_rows_per_s=round(max(r[2] for r in mix_runs)),
        baseline_is="a sample of the same objects, one per batch",
    )


if __name__ == "__main__":
    main()
