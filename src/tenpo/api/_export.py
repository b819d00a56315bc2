"""Export of KPI answers as CSV or Parquet (one flat row per store and period).

The format comes from ``format=json|csv|parquet`` or, when absent, from the ``Accept`` header.
The KPI columns are the warehouse schema's (:data:`tenpo.warehouse.schemas.SALES_TRAFFIC_KPIS`),
in its order and types: money keeps two decimals (CSV text, Parquet ``decimal128(18, 2)``);
ratios are floats. The daily mart's PersonID KPIs and quality columns
(:data:`~tenpo.warehouse.schemas.VIDEO_KPIS`, :data:`~tenpo.warehouse.schemas.DAILY_QUALITY`)
come last, after ``device_flags``, so the columns of older exports keep their places.
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
from tenpo.datamart.kpis import MONEY_KPIS
from tenpo.warehouse.schemas import DAILY_QUALITY, SALES_TRAFFIC_KPIS, VIDEO_KPIS

ExportFormat = Literal["json", "csv", "parquet"]
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": PARQUET_TYPES[0],
}

COLUMNS: list[tuple[str, pa.DataType]] = [
    ("store_id", pa.string()),
    ("business_date", pa.date32()),
    ("period_end", pa.date32()),
    ("hour", pa.int8()),
    ("days", pa.int32()),
    *SALES_TRAFFIC_KPIS,  # the warehouse schema's KPI columns, in its order and types
    ("flags", pa.string()),
    (
        "utc_offset_s",
        pa.int32(),
    ),  # at grain hour; after flags, so older readers' columns keep places
    ("device_flags", pa.string()),
    *VIDEO_KPIS,  # the daily mart's own columns, last: older readers' columns keep places
    *DAILY_QUALITY,
]
SCHEMA = pa.schema(COLUMNS)
_LISTS = frozenset({"flags", "device_flags"})
"""Columns holding a list in the JSON answer: ``;``-joined in the export."""


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
        record: dict[str, object] = {"store_id": store_id}
        for name, _ in COLUMNS[1:]:
            value = getattr(r, name)
            if name in _LISTS:
                value = ";".join(value)
            elif name in MONEY_KPIS and value is not None:
                value = Decimal(value)
            record[name] = value
        out.append(record)
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
