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
from tenpo.lake.keys import claim_key, quarantine_key
from tenpo.streamer._ledger import LoadLedger
from tenpo.streamer._quarantine import OBJECTS_TABLE

log = logging.getLogger(__name__)

Status = Literal["landed", "loaded", "partially_quarantined", "rejected"]
MAX_REASONS = 100
"""Entries per page of ``reasons`` by default."""


class QuarantinedRecord(BaseModel):
    """One rejected record of the object (or the whole object), or a group of alike rejects."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(description="Why; for a group, the reason of its first reject.")
    line: int | None = Field(None, description="Line (CSV) or 1-based index (JSON) in the body.")
    replayable: bool = Field(description="True when a later upload may fix it (a POS master).")
    count: int = Field(1, ge=1, description="Rejects this entry stands for (> 1: a group).")
    lines: list[int] | None = Field(
        None, description="A group's lines in the body (every one of them)."
    )


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
    reasons: list[QuarantinedRecord] = Field(
        description="One page of the quarantine entries: single rejects first, then groups."
    )
    reason_counts: dict[str, int] = Field(
        description="Rejects per kind of problem (the reason without its receipt/line prefix)."
    )
    offset: int = Field(0, ge=0, description="Index of the page's first entry.")
    entries: int = Field(0, ge=0, description="Quarantine entries in all (page through them).")


def object_status(
    lake: Lake,
    ledger: LoadLedger,
    tenant_id: str,
    object_id: str,
    sources: tuple[str, ...] | None = None,
    tables: tuple[str, ...] = ("raw_pos_transactions", "raw_pos_lines", "pos_master"),
    *,
    offset: int = 0,
    limit: int = MAX_REASONS,
) -> ObjectStatus | None:
    """The status of ``tenant_id``'s object ``object_id`` (of one of ``sources``), or None.

    ``reasons`` holds entries ``offset`` to ``offset + limit``. None when no such object was
    landed for this tenant: another tenant's object is never reported.
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
            offset=offset,
        )
    obj = loaded[0]
    day = _landing_date(obj.landing_key)
    entries: list[QuarantinedRecord] = []
    for table in (*tables, OBJECTS_TABLE):
        key = quarantine_key(table, tenant_id, day, object_id) if day else None
        if key is None or not lake.exists(key):
            continue
        # Quarantine files are compact (see _quarantine): reading one whole is cheap.
        for line in lake.get(key).decode("utf-8").splitlines():
            if line.strip():
                item: dict[str, Any] = json.loads(line)
                entries.append(
                    QuarantinedRecord(
                        reason=str(item.get("reason")),
                        line=item.get("line"),
                        replayable=bool(item.get("replayable")),
                        count=int(item.get("count") or 1),
                        lines=item.get("lines"),
                    )
                )
    quarantined = sum(e.count for e in entries)
    status: Status
    if not entries:
        status = "loaded"
    elif obj.rows:
        status = "partially_quarantined"
    else:
        status = "rejected"
    kinds: Counter[str] = Counter()
    for e in entries:
        kinds[_kind(e.reason)] += e.count
    return ObjectStatus(
        object_id=object_id,
        source=obj.source,
        status=status,
        landing_key=obj.landing_key,
        accepted_rows=obj.rows,
        quarantined=quarantined,
        replayable=sum(e.count for e in entries if e.replayable),
        reasons=entries[offset : offset + limit],
        reason_counts=dict(kinds.most_common()),
        offset=offset,
        entries=len(entries),
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
    """The landing key of a landed (not yet loaded) object, from its id claim (no listing)."""
    if sources is None:  # one folder level per source, not the landing dates
        fs = lake.filesystem
        pattern = fs._strip_protocol(lake.path(claim_key("*", tenant_id, object_id)))
        sources = tuple(str(found).rsplit("/", 3)[-3] for found in fs.glob(pattern))
    for source in sources:
        ckey = claim_key(source, tenant_id, object_id)
        if lake.exists(ckey):
            key = str(json.loads(lake.get(ckey))["key"])
            if lake.exists(key):
                return key
    return None
