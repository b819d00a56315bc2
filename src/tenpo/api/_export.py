"""Export of KPI answers as CSV or Parquet (one flat row per store and period).

The format comes from ``format=json|csv|parquet`` or, when absent, from the ``Accept`` header.
Money keeps two decimals (CSV text, Parquet ``decimal128(18, 2)``); ratios are floats.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tenpo.api.models import KpiRow

ExportFormat = Literal["json", "csv", "parquet"]
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": PARQUET_TYPES[0],
}

_MONEY = pa.decimal128(18, 2)
COLUMNS: list[tuple[str, pa.DataType]] = [
    ("store_id", pa.string()),
    ("business_date", pa.date32()),
    ("period_end", pa.date32()),
    ("hour", pa.int8()),
    ("days", pa.int32()),
    ("net_sales", _MONEY),
    ("net_sales_incl_tax", _MONEY),
    ("transactions", pa.int64()),
    ("units", pa.int64()),
    ("atv", pa.float64()),
    ("upt", pa.float64()),
    ("visitors", pa.int64()),
    ("passersby", pa.int64()),
    ("capture_rate", pa.float64()),
    ("conversion_rate", pa.float64()),
    ("sales_per_visitor", pa.float64()),
    ("has_pos", pa.bool_()),
    ("has_counter", pa.bool_()),
    ("flags", pa.string()),
    ("utc_offset_s", pa.int32()),  # at grain hour; last, so older readers' columns keep places
    ("device_flags", pa.string()),
]
SCHEMA = pa.schema(COLUMNS)


def negotiate(fmt: ExportFormat | None, accept: str | None) -> ExportFormat:
    """The answer's format: ``fmt`` when given, else the first known type in ``Accept``."""
    if fmt is not None:
        return fmt
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == "text/csv":
            return "csv"
        if media in PARQUET_TYPES:
            return "parquet"
        if media in ("application/json", "*/*"):
            return "json"
    return "json"


def _records(rows: Sequence[tuple[str, KpiRow]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for store_id, r in rows:
        out.append(
            {
                "store_id": store_id,
                "business_date": r.business_date,
                "period_end": r.period_end,
                "hour": r.hour,
                "utc_offset_s": r.utc_offset_s,
                "days": r.days,
                "net_sales": None if r.net_sales is None else Decimal(r.net_sales),
                "net_sales_incl_tax": None
                if r.net_sales_incl_tax is None
                else Decimal(r.net_sales_incl_tax),
                "transactions": r.transactions,
                "units": r.units,
                "atv": r.atv,
                "upt": r.upt,
                "visitors": r.visitors,
                "passersby": r.passersby,
                "capture_rate": r.capture_rate,
                "conversion_rate": r.conversion_rate,
                "sales_per_visitor": r.sales_per_visitor,
                "has_pos": r.has_pos,
                "has_counter": r.has_counter,
                "flags": ";".join(r.flags),
                "device_flags": ";".join(r.device_flags),
            }
        )
    return out


def to_csv(rows: Sequence[tuple[str, KpiRow]]) -> bytes:
    """UTF-8 CSV with a header row; empty cells for nulls; money with two decimals."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    for record in _records(rows):
        writer.writerow([_cell(record[name]) for name, _ in COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_parquet(rows: Sequence[tuple[str, KpiRow]]) -> bytes:
    """A Parquet file (zstd) with :data:`SCHEMA`."""
    table = pa.Table.from_pylist(_records(rows), schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())
