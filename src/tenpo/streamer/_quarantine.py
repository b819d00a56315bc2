"""Quarantine files: one JSON-lines file per (table, object) with every reject and its reason."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from tenpo.core.preetl import Reject
from tenpo.lake.keys import quarantine_key

OBJECTS_TABLE = "_objects"
"""Quarantine "table" of whole objects that could not be parsed at all."""

EVENTS_TABLE = "_events"
"""Quarantine "table" of bus events that are not a valid ``ObjectRegistered``."""


def quarantine_files(
    rejects: Sequence[Reject],
    *,
    tenant_id: str,
    day: date,
    object_id: str,
    source: str,
    source_key: str,
    rejected_at: datetime,
) -> dict[str, bytes]:
    """Lake key → JSON-lines bytes for ``rejects``, one file per table they were meant for.

    The key depends only on (table, tenant, day, object id), so writing again after a
    redelivery replaces the file instead of adding one.
    """
    by_table: dict[str, list[Reject]] = defaultdict(list)
    for reject in rejects:
        by_table[reject.table].append(reject)
    files: dict[str, bytes] = {}
    for table, items in by_table.items():
        lines = [
            json.dumps(
                {
                    "reason": r.reason,
                    "record": r.record,
                    "line": r.line,
                    "replayable": r.replayable,
                    "table": table,
                    "tenant_id": tenant_id,
                    "source": source,
                    "source_key": source_key,
                    "object_id": object_id,
                    "rejected_at": rejected_at.isoformat(),
                },
                ensure_ascii=False,
                default=_json_default,
            )
            for r in items
        ]
        key = quarantine_key(table, tenant_id, day, object_id)
        files[key] = ("\n".join(lines) + "\n").encode()
    return files


def _json_default(value: Any) -> str:
    # Records may hold Decimals, dates or bytes from a half-parsed object.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
