"""The streamer's load ledger: which objects are loaded, which raw-table parts are committed.

Two tables in their own SQL database (SQLite by default, PostgreSQL at scale):

* ``streamer_objects``: one row per loaded object, keyed by (source, tenant_id, object_id),
  with the parts its rows went to. A re-sent object lands on the same object id and a
  re-delivered event names the same object, so this key is what makes loading idempotent.
* ``streamer_parts``: every Parquet part the streamer writes, ``pending`` from before its
  first byte is written until the transaction that also records its objects marks it
  ``committed``. A pending part after a crash is garbage: recovery deletes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.ids import utcnow

log = logging.getLogger(__name__)

PENDING = "pending"
COMMITTED = "committed"

_metadata = sa.MetaData()

objects_table = sa.Table(
    "streamer_objects",
    _metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("object_id", sa.String(128), primary_key=True),
    sa.Column("landing_key", sa.String(512), nullable=False),
    sa.Column("part_keys", sa.Text, nullable=False),  # JSON list of lake keys
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("rejects", sa.Integer, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
)

parts_table = sa.Table(
    "streamer_parts",
    _metadata,
    sa.Column("part_key", sa.String(512), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_streamer_parts_status", "status"),
)

ObjectKey = tuple[str, str, str]
"""(source, tenant_id, object_id): what identifies an object in the ledger."""


@dataclass(frozen=True)
class LoadedObject:
    """A ledger row: one object and the parts its rows were written to."""

    source: str
    tenant_id: str
    object_id: str
    landing_key: str
    part_keys: tuple[str, ...]
    rows: int
    rejects: int
    loaded_at: datetime | None = None

    @property
    def key(self) -> ObjectKey:
        return (self.source, self.tenant_id, self.object_id)


class LoadLedger:
    """The ledger at a SQLAlchemy ``url``; creates its tables when missing."""

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
        _metadata.create_all(self.engine)

    def loaded(self, keys: Iterable[ObjectKey]) -> dict[ObjectKey, LoadedObject]:
        """The already-loaded objects among ``keys``."""
        wanted = set(keys)
        if not wanted:
            return {}
        ids = sorted({k[2] for k in wanted})
        found: dict[ObjectKey, LoadedObject] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    sa.select(objects_table).where(objects_table.c.object_id.in_(chunk))
                )
                for row in rows:
                    obj = LoadedObject(
                        source=row.source,
                        tenant_id=row.tenant_id,
                        object_id=row.object_id,
                        landing_key=row.landing_key,
                        part_keys=tuple(json.loads(row.part_keys)),
                        rows=row.rows,
                        rejects=row.rejects,
                        loaded_at=row.loaded_at,
                    )
                    if obj.key in wanted:
                        found[obj.key] = obj
        return found

    def begin_parts(self, part_keys: Sequence[str], owner: str) -> None:
        """Record ``part_keys`` as pending (step 2: before any of them is written)."""
        if not part_keys:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(parts_table),
                [
                    {"part_key": k, "status": PENDING, "owner": owner, "created_at": now}
                    for k in part_keys
                ],
            )

    def commit(self, part_keys: Sequence[str], objects: Sequence[LoadedObject]) -> None:
        """In one transaction: mark ``part_keys`` committed and record ``objects`` as loaded."""
        now = utcnow()
        with self.engine.begin() as conn:
            for chunk in _chunks(list(part_keys), 500):
                conn.execute(
                    sa.update(parts_table)
                    .where(parts_table.c.part_key.in_(chunk))
                    .values(status=COMMITTED)
                )
            if objects:
                conn.execute(
                    sa.insert(objects_table),
                    [
                        {
                            "source": o.source,
                            "tenant_id": o.tenant_id,
                            "object_id": o.object_id,
                            "landing_key": o.landing_key,
                            "part_keys": json.dumps(list(o.part_keys)),
                            "rows": o.rows,
                            "rejects": o.rejects,
                            "loaded_at": now,
                        }
                        for o in objects
                    ],
                )

    def pending_parts(self, owner: str | None = None) -> list[str]:
        """Keys of pending parts (of one ``owner``, or of every owner)."""
        query = sa.select(parts_table.c.part_key).where(parts_table.c.status == PENDING)
        if owner is not None:
            query = query.where(parts_table.c.owner == owner)
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def drop_pending(self, part_keys: Sequence[str]) -> None:
        """Forget pending parts whose files were deleted (committed ones are never touched)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(part_keys), 500):
                conn.execute(
                    sa.delete(parts_table).where(
                        parts_table.c.part_key.in_(chunk), parts_table.c.status == PENDING
                    )
                )

    def counts(self) -> dict[str, int]:
        """Objects loaded and parts per status (for logs, tests and monitoring)."""
        with self.engine.connect() as conn:
            objects = conn.execute(sa.select(sa.func.count()).select_from(objects_table))
            out = {"objects": int(objects.scalar_one())}
            by_status = conn.execute(
                sa.select(parts_table.c.status, sa.func.count()).group_by(parts_table.c.status)
            )
            for status, n in by_status:
                out[f"parts_{status}"] = int(n)
        return out

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (tests, monitoring) look at the ledger while a batch commits.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
