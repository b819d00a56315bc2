"""Screening derived rows before a partition write: one bad row never stops the partition.

A mart (or datamart export) row that breaks the table's contract — a null key column, a key
that several rows share, a business date outside the dates being written, a non-finite float
(ratios are null, never NaN or ±inf) — is set aside with its reason; every other row is written.
:func:`screen_rows` is the pure split, :func:`quarantine_rows` keeps the rejects in the lake's
quarantine zone (``quarantine/{table}/tenant={t}/date={d}/rows.jsonl``), one file per
partition, replaced at every write of that partition like the partition itself (so a rerun
that no longer rejects anything removes the file).

Rows that share a key are all rejected, not all but one: nothing says which of them is right,
and keeping an arbitrary one would make a rerun's result depend on row order.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tenpo.lake.base import Lake
from tenpo.lake.keys import parse_partition, quarantine_key

__all__ = ["QUARANTINE_OBJECT", "Screened", "quarantine_rows", "screen_rows"]

log = logging.getLogger(__name__)

QUARANTINE_OBJECT = "rows"
"""Object id of a derived table's quarantine file in each (tenant, date) partition."""

_NO_TENANT = "_none"


@dataclass(frozen=True)
class Screened:
    """The rows to write, and the rejected ones with one reason each (same order)."""

    kept: pa.Table
    rejected: pa.Table
    reasons: list[str] = field(default_factory=list)

    def summary(self, limit: int = 10) -> dict[str, Any]:
        """Asset metadata: how many rows were quarantined and the first reasons."""
        return {"rows_quarantined": self.rejected.num_rows, "reasons": self.reasons[:limit]}


def screen_rows(
    rows: pa.Table, keys: Sequence[str], *, days: Iterable[date] | None = None
) -> Screened:
    """Split ``rows`` into those that keep ``keys`` unique and non-null (and fit ``days``).

    Floats must be finite. Rows are never reordered: ``kept`` is ``rows`` minus the rejects.
    """
    n = rows.num_rows
    reasons: dict[int, str] = {}
    if n:
        key_table = rows.select(list(keys))
        for name in keys:
            for i in _indices(pc.is_null(rows[name])):
                reasons.setdefault(i, f"null key column {name}")
        counted = key_table.group_by(list(keys), use_threads=False).aggregate([([], "count_all")])
        shared = counted.filter(pc.greater(counted["count_all"], 1))
        if shared.num_rows:
            with_index = key_table.append_column("_i", pa.array(range(n), pa.int64()))
            hits = with_index.join(shared, list(keys), join_type="inner")
            for row in hits.to_pylist():
                key = {k: _plain(row[k]) for k in keys}
                reasons.setdefault(row["_i"], f"{row['count_all']} rows share the key {key}")
        if days is not None and "business_date" in rows.column_names:
            wanted = pa.array(sorted(set(days)), pa.date32())
            outside = pc.invert(pc.is_in(rows["business_date"].cast(pa.date32()), wanted))
            for i in _indices(outside):
                reasons.setdefault(i, "business_date outside the dates written")
        for f in rows.schema:
            if pa.types.is_floating(f.type):
                column = rows[f.name]
                finite = pc.is_finite(column)
                bad = pc.and_kleene(pc.is_valid(column), pc.invert(finite))
                for i in _indices(bad):
                    reasons.setdefault(i, f"non-finite {f.name} ({rows[f.name][i].as_py()})")
    if not reasons:
        return Screened(rows, rows.slice(0, 0), [])
    bad_index = sorted(reasons)
    mask = pa.array([i in reasons for i in range(n)])
    return Screened(
        kept=rows.filter(pc.invert(mask)),
        rejected=rows.take(pa.array(bad_index, pa.int64())),
        reasons=[reasons[i] for i in bad_index],
    )


def quarantine_rows(
    lake: Lake,
    table: str,
    days: Iterable[date],
    screened: Screened,
    *,
    default_tenant: str | None = None,
    rejected_at: datetime | None = None,
) -> list[str]:
    """Replace ``table``'s quarantine files of ``days`` by ``screened``'s rejects; their keys.

    A reject is filed under its tenant and business date when it has them and the date is one
    of ``days``, else under ``default_tenant`` (or ``_none``) and the first of ``days``.
    """
    wanted = sorted(set(days))
    if not wanted:
        return []
    stamp = (rejected_at or datetime.now(UTC)).isoformat()
    files: dict[tuple[str, date], list[str]] = {}
    records = screened.rejected.to_pylist()
    for record, reason in zip(records, screened.reasons, strict=True):
        tenant = record.get("tenant_id") or default_tenant or _NO_TENANT
        day = record.get("business_date")
        if not isinstance(day, date) or day not in wanted:
            day = wanted[0]
        line = {
            "reason": reason,
            "record": record,
            "replayable": False,
            "table": table,
            "tenant_id": tenant,
            "source": "derived",
            "rejected_at": stamp,
        }
        files.setdefault((str(tenant), day), []).append(
            json.dumps(line, ensure_ascii=False, default=str)
        )
    written: list[str] = []
    for (tenant, day), lines in sorted(files.items()):
        key = quarantine_key(table, tenant, day, QUARANTINE_OBJECT)
        lake.put(key, ("\n".join(lines) + "\n").encode())
        written.append(key)
    # Earlier rejects of these partitions that this write no longer has.
    stale = f"/{QUARANTINE_OBJECT}.jsonl"
    for key in lake.list(f"quarantine/{table}/"):
        if not key.endswith(stale) or key in written:
            continue
        _, day = parse_partition(key)
        if day in wanted:
            lake.delete(key)
    if written:
        log.warning("%s: %d row(s) quarantined (%s)", table, screened.rejected.num_rows, written[0])
    return written


def _indices(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    return [int(i) for i in pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
