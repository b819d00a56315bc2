"""Row factories in the raw-table contract, and the hand-checked KPI fixture."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tenpo.warehouse.schemas import RAW_IOT_COUNTS, RAW_POS_TRANSACTIONS

DAY = date(2026, 11, 2)
NEXT_DAY = DAY + timedelta(days=1)


def pos_row(
    store: str,
    transaction_id: str,
    kind: str,
    excl: str,
    incl: str,
    items: int,
    *,
    tenant: str = "t1",
    day: date = DAY,
    source: str = "obj-1",
) -> dict[str, Any]:
    """One ``raw_pos_transactions`` row (amounts as decimal strings, signed as in tenpo)."""
    ts = datetime(day.year, day.month, day.day, 1, 30, tzinfo=UTC)
    return {
        "tenant_id": tenant,
        "store_id": store,
        "register_id": "R1",
        "transaction_id": transaction_id,
        "business_date": day,
        "ts": ts,
        "ts_local": ts.replace(tzinfo=None) + timedelta(hours=9),
        "kind": kind,
        "total_excl_tax": Decimal(excl),
        "total_tax": Decimal(incl) - Decimal(excl),
        "total_incl_tax": Decimal(incl),
        "item_count": items,
        "vendor": "vendor_a",
        "source_object_id": source,
    }


def count_row(
    store: str,
    line: str,
    count_in: int,
    *,
    count_out: int = 0,
    tenant: str = "t1",
    day: date = DAY,
    device: str = "pc-1",
    minute: int = 0,
    source: str = "obj-c",
) -> dict[str, Any]:
    """One ``raw_iot_counts`` row: a one-minute interval at 10:00+minute local time."""
    start = datetime(day.year, day.month, day.day, 1, minute, tzinfo=UTC)
    return {
        "tenant_id": tenant,
        "store_id": store,
        "device_id": device,
        "line": line,
        "business_date": day,
        "interval_start": start,
        "interval_end": start + timedelta(minutes=1),
        "count_in": count_in,
        "count_out": count_out,
        "seq": minute,
        "source_object_id": source,
    }


def pos_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table in the raw_pos_transactions schema."""
    return pa.Table.from_pylist(rows, schema=RAW_POS_TRANSACTIONS)


def counts_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table in the raw_iot_counts schema."""
    return pa.Table.from_pylist(rows, schema=RAW_IOT_COUNTS)


def fixture_pos() -> pa.Table:
    """S1: two sales, a return, a void. S2: POS only. S3 has no POS (counter only)."""
    return pos_table(
        [
            pos_row("S1", "1", "sale", "1000.00", "1100", 3),
            pos_row("S1", "2", "sale", "500.50", "550", 2),
            pos_row("S1", "3", "return", "-200.00", "-220", -1),
            pos_row("S1", "4", "void", "999.00", "1099", 5),
            pos_row("S2", "1", "sale", "300.00", "324", 1),
            pos_row("S2", "2", "sale", "450.00", "486", 4),
            # S1 again the next day, to show dates are separate groups.
            pos_row("S1", "5", "sale", "80.00", "88", 1, day=NEXT_DAY),
        ]
    )


def fixture_counts() -> pa.Table:
    """S1: 16 entering over two intervals, 200 passing by, a zone line; S3: a zero-visitor day."""
    return counts_table(
        [
            count_row("S1", "entrance", 10, count_out=4, minute=0),
            count_row("S1", "entrance", 6, count_out=9, minute=1),
            count_row("S1", "passby", 120, count_out=95, device="pc-2", minute=0),
            count_row("S1", "passby", 80, count_out=70, device="pc-2", minute=1),
            count_row("S1", "cosmetics", 50, device="pc-3"),
            count_row("S3", "entrance", 0, device="pc-9"),
            count_row("S3", "passby", 40, device="pc-10"),
        ]
    )


def on_day(rows: pa.Table, day: date) -> pa.Table:
    """The rows of ``rows`` whose business_date is ``day``."""
    return rows.filter(pc.equal(rows["business_date"], pa.scalar(day, pa.date32())))
