"""The lake's key layout (ARCHITECTURE.md), in one place.

Keys are relative to the lake root and always use ``/``. ``date`` is the store's local
business date (for landing objects: the local date they were received).
"""

from __future__ import annotations

import re
from datetime import date

_PART = re.compile(r"tenant=(?P<tenant>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})")


def landing_key(source: str, tenant: str, day: date, object_id: str, ext: str) -> str:
    """``landing/{source}/tenant={t}/date={d}/{object_id}.{ext}``: bytes as received."""
    return f"landing/{source}/tenant={tenant}/date={day.isoformat()}/{object_id}.{ext}"


def claim_key(source: str, tenant: str, object_id: str) -> str:
    """``ids/{source}/tenant={t}/{object_id}.json``: which landing key an object id was given.

    Independent of the date, so an id (a sender's Idempotency-Key, a content hash) names one
    object for ever, whichever day it is re-sent on; the streamer's ledger has the same key.
    """
    return f"ids/{source}/tenant={tenant}/{object_id}.json"


def quarantine_key(table: str, tenant: str, day: date, object_id: str) -> str:
    """``quarantine/{table}/tenant={t}/date={d}/{object_id}.jsonl``: rejects with reasons."""
    return f"quarantine/{table}/tenant={tenant}/date={day.isoformat()}/{object_id}.jsonl"


def table_prefix(table: str, tenant: str | None = None, day: date | None = None) -> str:
    """Folder of a table, or of one tenant's partition, or of one (tenant, date) partition."""
    key = f"tables/{table}/"
    if tenant is not None:
        key += f"tenant={tenant}/"
        if day is not None:
            key += f"date={day.isoformat()}/"
    return key


def table_key(table: str, tenant: str, day: date, part: str) -> str:
    """``tables/{table}/tenant={t}/date={d}/{part}.parquet``."""
    return f"{table_prefix(table, tenant, day)}{part}.parquet"


def video_key(tenant: str, camera: str, day: date, start_ts: str) -> str:
    """``video/tenant={t}/camera={c}/date={d}/{start_ts}.mp4``: one 5-minute chunk."""
    return f"video/tenant={tenant}/camera={camera}/date={day.isoformat()}/{start_ts}.mp4"


def artifact_key(job: str, run_id: str, name: str) -> str:
    """``artifacts/{job}/{run_id}/{name}``."""
    return f"artifacts/{job}/{run_id}/{name}"


def parse_partition(key: str) -> tuple[str, date]:
    """The (tenant, date) of a partitioned key; ``ValueError`` if the key has none."""
    m = _PART.search(key)
    if m is None:
        raise ValueError(f"key has no tenant=/date= partition: {key}")
    return m["tenant"], date.fromisoformat(m["date"])
