"""The streamer's load ledger: which objects are loaded, which raw-table parts are committed.

Three tables in their own SQL database (SQLite by default, PostgreSQL at scale):

* ``streamer_objects``: one row per loaded object, keyed by (source, tenant_id, object_id),
  with the parts its rows went to. A re-sent object lands on the same object id and a
  re-delivered event names the same object, so this key is what makes loading idempotent.
* ``streamer_replays``: objects with *replayable* rejects (an unknown register that a later
  POS master may resolve), with their event, until a replay loads them (status ``replayed``).
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

replays_table = sa.Table(
    "streamer_replays",
    _metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("object_id", sa.String(128), primary_key=True),
    sa.Column("event", sa.Text, nullable=False),  # the ObjectRegistered event as JSON
    sa.Column("replayable", sa.Integer, nullable=False),  # replayable rejects left
    sa.Column("status", sa.String(16), nullable=False),  # waiting | replayed
    sa.Column("replays", sa.Integer, nullable=False),  # replays run so far
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_streamer_replays_waiting", "status", "tenant_id"),
)
"""Objects with replayable rejects (e.g. registers a later POS master resolves)."""

WAITING = "waiting"
REPLAYED = "replayed"

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
    replayable: int = 0  # rejects a later upload may fix: the object waits for a replay
    event_json: str | None = None  # its ObjectRegistered event, kept to replay it

    @property
    def key(self) -> ObjectKey:
        return (self.source, self.tenant_id, self.object_id)


@dataclass(frozen=True)
class ReplayCandidate:
    """An object whose replayable rejects wait for a replay (``streamer_replays`` row)."""

    source: str
    tenant_id: str
    object_id: str
    event_json: str
    replayable: int
    replays: int
    status: str = WAITING

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
                waiting = [o for o in objects if o.replayable and o.event_json]
                if waiting:
                    conn.execute(
                        sa.insert(replays_table),
                        [
                            {
                                "source": o.source,
                                "tenant_id": o.tenant_id,
                                "object_id": o.object_id,
                                "event": o.event_json,
                                "replayable": o.replayable,
                                "status": WAITING,
                                "replays": 0,
                                "updated_at": now,
                            }
                            for o in waiting
                        ],
                    )

    def objects_by_id(self, tenant_id: str, object_id: str) -> list[LoadedObject]:
        """The loaded objects of ``tenant_id`` with this object id (one per source)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(objects_table).where(
                    objects_table.c.tenant_id == tenant_id,
                    objects_table.c.object_id == object_id,
                )
            ).all()
        return [
            LoadedObject(
                source=row.source,
                tenant_id=row.tenant_id,
                object_id=row.object_id,
                landing_key=row.landing_key,
                part_keys=tuple(json.loads(row.part_keys)),
                rows=row.rows,
                rejects=row.rejects,
                loaded_at=row.loaded_at,
            )
            for row in rows
        ]

    def replay_candidates(
        self, tenant_id: str | None = None, source: str | None = None
    ) -> list[ReplayCandidate]:
        """Objects still waiting with replayable rejects (of one tenant/source), oldest first."""
        query = sa.select(replays_table).where(replays_table.c.status == WAITING)
        if tenant_id is not None:
            query = query.where(replays_table.c.tenant_id == tenant_id)
        if source is not None:
            query = query.where(replays_table.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(replays_table.c.updated_at)).all()
        return [
            ReplayCandidate(r.source, r.tenant_id, r.object_id, r.event, r.replayable, r.replays)
            for r in rows
        ]

    def replay_status(self, key: ObjectKey) -> ReplayCandidate | None:
        """The replay row of one object (waiting or replayed), or None if it never had one."""
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(replays_table).where(
                    replays_table.c.source == key[0],
                    replays_table.c.tenant_id == key[1],
                    replays_table.c.object_id == key[2],
                )
            ).first()
        if r is None:
            return None
        return ReplayCandidate(
            r.source, r.tenant_id, r.object_id, r.event, r.replayable, r.replays, r.status
        )

    def commit_replay(
        self,
        part_keys: Sequence[str],
        replayed: Sequence[tuple[LoadedObject, int, int]],
    ) -> None:
        """In one transaction: mark ``part_keys`` committed and, for each (object, rows added,
        rejects left), add its new parts and rows and record what still waits for a replay."""
        now = utcnow()
        with self.engine.begin() as conn:
            for chunk in _chunks(list(part_keys), 500):
                conn.execute(
                    sa.update(parts_table)
                    .where(parts_table.c.part_key.in_(chunk))
                    .values(status=COMMITTED)
                )
            for obj, added, left in replayed:
                where = (
                    objects_table.c.source == obj.source,
                    objects_table.c.tenant_id == obj.tenant_id,
                    objects_table.c.object_id == obj.object_id,
                )
                conn.execute(
                    sa.update(objects_table)
                    .where(*where)
                    .values(
                        part_keys=json.dumps(list(obj.part_keys)),
                        rows=objects_table.c.rows + added,
                        rejects=obj.rejects,
                    )
                )
                conn.execute(
                    sa.update(replays_table)
                    .where(
                        replays_table.c.source == obj.source,
                        replays_table.c.tenant_id == obj.tenant_id,
                        replays_table.c.object_id == obj.object_id,
                    )
                    .values(
                        replayable=left,
                        status=WAITING if left else REPLAYED,
                        replays=replays_table.c.replays + 1,
                        updated_at=now,
                    )
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
