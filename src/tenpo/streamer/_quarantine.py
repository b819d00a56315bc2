"""Quarantine files: one JSON-lines file per (table, object) with its rejects and their reasons.

Compact whatever the body: the first :data:`DETAIL_LIMIT` rejects of a file are kept one per
line, each with its record cut to :data:`RECORD_LIMIT` characters; the others are grouped, one
line per distinct problem (the reason with its quoted values and numbers masked) with their
``count`` and every ``lines`` number. The object itself stays in ``landing/`` as received, so
nothing is lost: a replay parses it again, and the line numbers point into it.
"""

from __future__ import annotations

import json
import re
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

DETAIL_LIMIT = 100
"""Rejects per quarantine file kept one per line, with their record; the rest are grouped."""
RECORD_LIMIT = 2000
"""Characters of a reject's record kept (as JSON); a longer one is kept as an excerpt."""

_QUOTED = re.compile(r"'[^']*'")
_NUMBER = re.compile(r"-?\d[\d,.]*")


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
    context = {
        "tenant_id": tenant_id,
        "source": source,
        "source_key": source_key,
        "object_id": object_id,
        "rejected_at": rejected_at.isoformat(),
    }
    files: dict[str, bytes] = {}
    for table, items in by_table.items():
        lines = [
            json.dumps(
                {
                    "reason": r.reason,
                    "record": _bounded(r.record),
                    "line": r.line,
                    "replayable": r.replayable,
                    "table": table,
                    **context,
                },
                ensure_ascii=False,
                default=_json_default,
            )
            for r in items[:DETAIL_LIMIT]
        ]
        lines += [
            json.dumps({**group, "table": table, **context}, ensure_ascii=False)
            for group in _groups(items[DETAIL_LIMIT:])
        ]
        key = quarantine_key(table, tenant_id, day, object_id)
        # A JSON body may escape a lone surrogate ("\\ud800"): no UTF-8 for it, so it is
        # written back as that same JSON escape (it only occurs inside a JSON string here).
        files[key] = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
    return files


def problem_kind(reason: str) -> str:
    """The reason with its quoted values and numbers masked: what rejects have in common."""
    return _NUMBER.sub("#", _QUOTED.sub("'…'", reason))


def _groups(rejects: Sequence[Reject]) -> list[dict[str, Any]]:
    """One entry per (problem kind, replayable): the first reason, the count, every line."""
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for r in rejects:
        group = groups.get((problem_kind(r.reason), r.replayable))
        if group is None:
            group = groups[(problem_kind(r.reason), r.replayable)] = {
                "reason": r.reason,
                "kind": problem_kind(r.reason),
                "count": 0,
                "lines": [],
                "replayable": r.replayable,
            }
        group["count"] += 1
        if r.line is not None:
            group["lines"].append(r.line)
    return list(groups.values())


def _bounded(record: Any) -> Any:
    """``record``, or an excerpt of its JSON when that is longer than :data:`RECORD_LIMIT`."""
    if record is None:
        return None
    text = json.dumps(record, ensure_ascii=False, default=_json_default)
    if len(text) <= RECORD_LIMIT:
        return record
    return {"excerpt": text[:RECORD_LIMIT], "chars": len(text)}


def _json_default(value: Any) -> str:
    # Records may hold Decimals, dates or bytes from a half-parsed object.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
