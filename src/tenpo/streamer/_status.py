"""Where a landed object stands: landed, loaded, partially quarantined or rejected, and why.

Read from the load ledger and the object's quarantine files; the POS gateway answers
``GET /v1/pos/batches/{object_id}`` with it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenpo.lake.base import Lake
from tenpo.lake.keys import quarantine_key
from tenpo.streamer._ledger import LoadLedger
from tenpo.streamer._quarantine import OBJECTS_TABLE

log = logging.getLogger(__name__)

Status = Literal["landed", "loaded", "partially_quarantined", "rejected"]
MAX_REASONS = 100


class QuarantinedRecord(BaseModel):
    """One rejected record of the object (or the whole object) and why."""

    model_config = ConfigDict(frozen=True)

    reason: str
    line: int | None = Field(None, description="Line (CSV) or 1-based index (JSON) in the body.")
    replayable: bool = Field(description="True when a later upload may fix it (a POS master).")


class ObjectStatus(BaseModel):
    """What became of one landed object."""

    model_config = ConfigDict(frozen=True)

    object_id: str
    source: str
    status: Status
    landing_key: str
    accepted_rows: int = Field(description="Rows written to the raw tables (all tables).")
    quarantined: int = Field(description="Records (or whole objects) in quarantine.")
    replayable: int = Field(description="Quarantined records waiting for a replay.")
    reasons: list[QuarantinedRecord] = Field(description=f"First {MAX_REASONS} rejects.")
    reason_counts: dict[str, int] = Field(
        description="Rejects per kind of problem (the reason without its receipt/line prefix)."
    )


def object_status(
    lake: Lake,
    ledger: LoadLedger,
    tenant_id: str,
    object_id: str,
    sources: tuple[str, ...] | None = None,
    tables: tuple[str, ...] = ("raw_pos_transactions", "raw_pos_lines", "pos_master"),
) -> ObjectStatus | None:
    """The status of ``tenant_id``'s object ``object_id`` (of one of ``sources``), or None.

    None when no such object was landed for this tenant: another tenant's object is never
    reported.
    """
    loaded = [
        o
        for o in ledger.objects_by_id(tenant_id, object_id)
        if sources is None or o.source in sources
    ]
    if not loaded:
        landed = _landed_key(lake, tenant_id, object_id, sources)
        if landed is None:
            return None
        return ObjectStatus(
            object_id=object_id,
            source=landed.split("/", 2)[1],
            status="landed",
            landing_key=landed,
            accepted_rows=0,
            quarantined=0,
            replayable=0,
            reasons=[],
            reason_counts={},
        )
    obj = loaded[0]
    day = _landing_date(obj.landing_key)
    records: list[QuarantinedRecord] = []
    for table in (*tables, OBJECTS_TABLE):
        key = quarantine_key(table, tenant_id, day, object_id) if day else None
        if key is None or not lake.exists(key):
            continue
        for line in lake.get(key).decode("utf-8").splitlines():
            if line.strip():
                item: dict[str, Any] = json.loads(line)
                records.append(
                    QuarantinedRecord(
                        reason=str(item.get("reason")),
                        line=item.get("line"),
                        replayable=bool(item.get("replayable")),
                    )
                )
    status: Status
    if not records:
        status = "loaded"
    elif obj.rows:
        status = "partially_quarantined"
    else:
        status = "rejected"
    return ObjectStatus(
        object_id=object_id,
        source=obj.source,
        status=status,
        landing_key=obj.landing_key,
        accepted_rows=obj.rows,
        quarantined=len(records),
        replayable=sum(r.replayable for r in records),
        reasons=records[:MAX_REASONS],
        reason_counts=dict(Counter(_kind(r.reason) for r in records).most_common()),
    )


def _kind(reason: str) -> str:
    """The problem without the receipt or line it is about: "receipt 3: 'X': bad" → "bad"."""
    return reason.rsplit(": ", 1)[-1] if ": " in reason else reason


def _landing_date(landing_key: str) -> date | None:
    for part in landing_key.split("/"):
        if part.startswith("date="):
            try:
                return date.fromisoformat(part[5:])
            except ValueError:
                return None
    return None


def _landed_key(
    lake: Lake, tenant_id: str, object_id: str, sources: tuple[str, ...] | None
) -> str | None:
    fs = lake.filesystem
    patterns = [f"landing/{s}/tenant={tenant_id}/date=*/{object_id}.*" for s in sources or ("*",)]
    root = fs._strip_protocol(lake.path("")).rstrip("/")
    for pattern in patterns:
        found = fs.glob(fs._strip_protocol(lake.path(pattern)))
        if found:
            return str(found[0])[len(root) :].lstrip("/")
    return None
