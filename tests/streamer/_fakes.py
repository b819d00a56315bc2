"""A tiny JSON Pre-ETL for streamer tests (the real POS/IoT adapters are tested elsewhere).

Format of a ``test_json`` object::

    {"receipts": [{"store": "S1", "id": "T1", "date": "2026-10-05", "total": "100"}, ...]}

Each receipt becomes one ``raw_pos_transactions`` row; a receipt missing a field is a reject
with its 1-based index; bytes that are not JSON reject the whole object.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from tenpo.control.directory import Directory
from tenpo.core.preetl import ParseResult, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.warehouse.schemas import RAW_POS_TRANSACTIONS

SOURCE = "test_json"
TABLE = "raw_pos_transactions"


class JsonPreEtl:
    """``test_json`` objects → ``raw_pos_transactions``."""

    source = SOURCE

    def __init__(self, tenant_override: str | None = None) -> None:
        self.tenant_override = tenant_override
        self.calls = 0

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        self.calls += 1
        try:
            body = json.loads(data)
            receipts = body["receipts"]
        except (ValueError, KeyError, TypeError) as exc:
            return ParseResult(rejects=[Reject(TABLE, f"not a test_json body: {exc}")])
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        for i, r in enumerate(receipts, start=1):
            try:
                day = date.fromisoformat(r["date"])
                total = Decimal(r["total"])
                store, txn = str(r["store"]), str(r["id"])
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                rejects.append(Reject(TABLE, f"bad receipt: {exc!r}", record=r, line=i))
                continue
            ts = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC)
            rows.append(
                {
                    "tenant_id": self.tenant_override or event.tenant_id,
                    "store_id": store,
                    "register_id": "R1",
                    "transaction_id": txn,
                    "business_date": day,
                    "ts": ts,
                    "ts_local": ts.replace(tzinfo=None),
                    "kind": "sale",
                    "total_excl_tax": total,
                    "total_tax": Decimal("0"),
                    "total_incl_tax": total,
                    "item_count": 1,
                    "vendor": "test",
                    "source_object_id": event.object_id,
                }
            )
        table = pa.Table.from_pylist(rows, schema=RAW_POS_TRANSACTIONS)
        return ParseResult(tables={TABLE: table}, rejects=rejects)


class ExplodingPreEtl:
    """A Pre-ETL with a bug: it raises instead of rejecting."""

    source = "exploding"

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        raise RuntimeError("boom in the parser")


def body(*receipts: tuple[str, str, str, str]) -> bytes:
    """A ``test_json`` body from (store, id, date, total) tuples."""
    return json.dumps(
        {"receipts": [{"store": s, "id": i, "date": d, "total": t} for s, i, d, t in receipts]}
    ).encode()
