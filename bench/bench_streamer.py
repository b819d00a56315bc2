"""Streamer throughput: landed vendor-B objects → raw tables, batched vs one file per object.

Lands ~2,000 vendor-B JSON objects (FORMATS.md; a few receipts each) in two fresh data
dirs, then loads one with the batching streamer (``streamer_batch_objects`` objects per
batch, one Parquet part per table/tenant/date) and the other with the naive approach: the
same streamer, parser, ledger and bus with a batch of one object, so one Parquet file per
object and table. Reports rows/s of each; the target is 3x the naive rate.
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
TENANTS = ("t1", "t2")
STORES = 5
DAYS = 7
JST = timezone(timedelta(hours=9))
RATES = {8: "8.000", 10: "10"}


def vendor_b_body(rng: random.Random, store: str, day: date, seq: int) -> bytes:
    """One valid vendor-B body (``{"receipts": [...]}``) with amounts excluding tax."""
    receipts = []
    for r in range(RECEIPTS_PER_OBJECT):
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
                "receiptId": f"B-{seq:06d}-{r}",
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


def _land_all(lake: Lake, bus: EventBus, objects: int) -> None:
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
        data = vendor_b_body(rng, f"S{rng.randrange(STORES):03d}", day, seq)
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


def _arm(root: Path, objects: int, batch: int) -> tuple[float, BatchStats]:
    """Land ``objects`` objects, then load them with ``batch`` objects per batch: rows/s."""
    cfg = Settings(data_dir=root, streamer_batch_objects=batch, bus_ack_wait_s=60.0)
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    _land_all(lake, bus, objects)
    streamer = Streamer(cfg, lake, bus, _directory(), {"pos_vendor_b": VendorBPreEtl()})
    began = time.perf_counter()
    last = began

    def on_batch(_stats: BatchStats) -> None:
        nonlocal last
        last = time.perf_counter()

    stats = streamer.run_until_idle(0.3, on_batch=on_batch)
    streamer.close()
    bus.close()
    if stats.objects != objects or stats.rejects:
        raise RuntimeError(f"expected {objects} clean objects, got {stats}")
    return stats.total_rows / (last - began), stats


def main() -> None:
    """Run both arms in temporary data dirs and report ``streamer_throughput``."""
    logging.getLogger("tenpo").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="tenpo-bench-streamer-"))
    try:
        batched, stats = _arm(root / "batched", OBJECTS, batch=BATCH)
        naive, naive_stats = _arm(root / "naive", NAIVE_OBJECTS, batch=1)
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


if __name__ == "__main__":
    main()
