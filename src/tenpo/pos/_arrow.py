"""Column-wise Arrow building for the POS Pre-ETLs.

Converting Python ``Decimal`` or aware ``datetime`` objects one by one costs ~10 µs each in
PyArrow; the parsers instead keep money as integer cents and instants as epoch microseconds
and build the columns from those integers, which is two orders of magnitude faster and exact.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_ONE_US = timedelta(microseconds=1)


def money_from_cents(cents: list[int], money_type: pa.DataType) -> pa.Array:
    """A ``decimal128(p, 2)`` array whose unscaled values are ``cents`` (exact, no floats)."""
    n = len(cents)
    low = np.asarray(cents, dtype=np.int64)
    words = np.empty((n, 2), dtype=np.int64)
    words[:, 0] = low
    words[:, 1] = low >> 63  # sign extension to the high 64 bits of the 128-bit integer
    return pa.Array.from_buffers(money_type, n, [None, pa.py_buffer(words.tobytes())])


def micros(ts: datetime) -> int:
    """Epoch microseconds of an aware instant, or of a naive wall-clock time taken as is."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // _ONE_US


def day_number(day: date) -> int:
    """Days since 1970-01-01 (Arrow ``date32``)."""
    return day.toordinal() - _EPOCH_DAY


def timestamps(values: list[int], ts_type: pa.DataType) -> pa.Array:
    """A timestamp array from epoch microseconds."""
    return pa.array(values, pa.int64()).cast(ts_type)


def dates(values: list[int]) -> pa.Array:
    """A ``date32`` array from day numbers."""
    return pa.array(values, pa.int32()).cast(pa.date32())


def table(schema: pa.Schema, columns: dict[str, Any]) -> pa.Table:
    """A table in exactly ``schema``: Arrow arrays are used as built, lists typed by the schema."""
    arrays = []
    for fld in schema:
        col = columns[fld.name]
        arrays.append(col if isinstance(col, pa.Array) else pa.array(col, fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class PosColumns:
    """Column lists of ``raw_pos_transactions`` (``tx``) and ``raw_pos_lines`` (``ln``).

    Money columns hold integer cents, ``tax_rate`` whole percents (= cents of the rate),
    ``ts``/``ts_local`` epoch microseconds and ``business_date`` day numbers.
    """

    def __init__(self) -> None:
        self.tx: dict[str, list[Any]] = {f.name: [] for f in RAW_POS_TRANSACTIONS}
        self.ln: dict[str, list[Any]] = {f.name: [] for f in RAW_POS_LINES}

    def tables(self) -> dict[str, pa.Table]:
        """Both tables in exactly their warehouse schemas."""
        tx: dict[str, Any] = dict(self.tx)
        ln: dict[str, Any] = dict(self.ln)
        for col in ("total_excl_tax", "total_tax", "total_incl_tax"):
            tx[col] = money_from_cents(tx[col], RAW_POS_TRANSACTIONS.field(col).type)
        for col in ("unit_price_excl_tax", "amount_excl_tax", "tax", "amount_incl_tax", "tax_rate"):
            ln[col] = money_from_cents(ln[col], RAW_POS_LINES.field(col).type)
        for col in ("ts", "ts_local"):
            tx[col] = timestamps(tx[col], RAW_POS_TRANSACTIONS.field(col).type)
        tx["business_date"] = dates(tx["business_date"])
        ln["business_date"] = dates(ln["business_date"])
        return {
            "raw_pos_transactions": table(RAW_POS_TRANSACTIONS, tx),
            "raw_pos_lines": table(RAW_POS_LINES, ln),
        }
