"""Corrected re-sends: the latest received version of a transaction replaces the earlier one."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tenpo.bus.memory import MemoryBus
from tenpo.control.directory import StaticDirectory, StoreRef
from tenpo.core.settings import Settings
from tenpo.lake import LandingZone, open_lake
from tenpo.pos import VendorBPreEtl
from tenpo.streamer import Streamer, read_table
from tenpo.warehouse import Warehouse

DAY = date(2026, 10, 5)


def receipt(receipt_id: str, *items: tuple[int, str]) -> dict[str, Any]:
    """A vendor B sale of ``(qty, unit price)`` items at 10 %."""
    subtotal = sum(q * Decimal(p) for q, p in items)
    tax = int(subtotal * Decimal("0.1"))
    return {
        "storeCode": "T01", "registerId": "R1", "receiptId": receipt_id,
        "transactedAt": "2026-10-05T12:00:00+09:00", "type": "SALE",
        "items": [
            {"sku": f"sku{i}", "name": f"item {i}", "qty": q, "unitPrice": p, "taxRate": "10"}
            for i, (q, p) in enumerate(items)
        ],
        "subtotal": str(subtotal), "tax": str(tax), "total": str(subtotal + tax),
    }  # fmt: skip


@pytest.mark.parametrize("one_batch", [False, True], ids=["separate-batches", "one-batch"])
def test_second_file_corrects_the_first_end_to_end(settings: Settings, one_batch: bool) -> None:
    lake = open_lake(settings.lake_root)
    bus = MemoryBus(ack_wait=0.3)
    landing = LandingZone(lake, bus)
    directory = StaticDirectory(stores=[StoreRef("s-01", "t1", "T01")])
    streamer = Streamer(
        settings, lake, bus, directory, {"pos_vendor_b": VendorBPreEtl()}, fetch_timeout=0.05
    )
    try:
        first = [receipt("A", (2, "500"), (1, "300")), receipt("B", (1, "1000"))]
        landing.land("pos_vendor_b", "t1", json.dumps(first).encode(), "json", day=DAY)
        if not one_batch:
            streamer.run_until_idle(0.2)
        # The register re-sends receipt A corrected: one line, 2 × 500 only.
        fix = [receipt("A", (2, "500"))]
        landing.land("pos_vendor_b", "t1", json.dumps(fix).encode(), "json", day=DAY)
        streamer.run_until_idle(0.2)
    finally:
        streamer.close()
    # Both versions are kept as received in the raw files...
    assert read_table(lake, "raw_pos_transactions").num_rows == 3
    with Warehouse(lake) as wh:
        tx = wh.to_arrow(wh.table("raw_pos_transactions")).sort_by("transaction_id").to_pylist()
        lines = wh.to_arrow(wh.table("raw_pos_lines", dates=[DAY])).to_pylist()
        # net_sales as the KPI defines it (mart_store_daily's own job is exercised in tests/jobs).
        daily = wh.sql(
            "SELECT sum(total_excl_tax) AS net_sales, sum(total_incl_tax) AS net_sales_incl_tax,"
            " count(*) AS transactions FROM raw_pos_transactions WHERE kind IN ('sale', 'return')"
        ).to_pylist()
    # ... but read once, as the latest version: the transaction and all its lines.
    assert [(t["transaction_id"], t["total_excl_tax"]) for t in tx] == [
        ("R1-A", Decimal(1000)),
        ("R1-B", Decimal(1000)),
    ]
    assert sorted((ln["transaction_id"], ln["line_no"], ln["amount_excl_tax"]) for ln in lines) == [
        ("R1-A", 1, Decimal(1000)),
        ("R1-B", 1, Decimal(1000)),
    ]
    assert tx[0]["received_at"] > tx[1]["received_at"]
    (row,) = daily
    assert row["net_sales"] == Decimal(2000) and row["transactions"] == 2
    assert row["net_sales_incl_tax"] == Decimal(2200)
