"""The streamer's load ledger: which objects are loaded, which raw-table parts are committed.

Four tables in their own SQL database (SQLite by default, PostgreSQL at scale):

* ``streamer_objects``: one row per loaded object, keyed by (source, tenant_id, object_id),
  with the parts its rows went to. A re-sent object lands on the same object id and a
  re-delivered event names the same object, so this key is what makes loading idempotent.
* ``streamer_replays``: objects with *replayable* rejects (an unknown register that a later
  POS master may resolve), with their event, until a replay loads them (status ``replayed``).
* ``streamer_parts``: every Parquet part a streamer writes, ``pending`` from before its
  first byte is written until the transaction that also records its objects marks it
  ``committed``. A pending part whose owner died is garbage: another streamer marks it
  ``reclaimed`` (after which it can never be committed), deletes its file, then forgets it.
* ``streamer_owners``: one row per running streamer (its owner id) with its lease's last
  ``heartbeat_at``. An owner whose heartbeat is older than the lease (or who has no row) is
  dead; several streamers share one ledger and reclaim only dead owners' pending parts.

Commits are guarded: marking parts committed requires every one of them to be still
``pending`` (else :class:`~tenpo.core.errors.PartsReclaimed`), and a replay's commit requires
the object to be as the replay read it (else :class:`~tenpo.core.errors.LedgerConflict`).
Heartbeats are compared across hosts: their clocks must agree to well within the lease.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import LedgerConflict, PartsReclaimed
from tenpo.core.ids import utcnow

log = logging.getLogger(__name__)

PENDING = "pending"
COMMITTED = "committed"
RECLAIMED = "reclaimed"

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

owners_table = sa.Table(
    "streamer_owners",
    _metadata,
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
)
"""Running streamers and their lease's last renewal (see :meth:`LoadLedger.heartbeat`)."""

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


@dataclass(frozen=True)
class ReplayedObject:
    """What one replay commits for an object: its ledger row as the replay read it (the
    commit checks it is unchanged), the object's part keys now, the rows it added, the
    rejects still quarantined and how many of them a later replay may still fix."""

    read: LoadedObject
    replays: int  # ``streamer_replays.replays`` as the replay read it
    part_keys: tuple[str, ...]
    rows_added: int
    rejects: int
    replayable: int


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
            _mark_committed(conn, part_keys)
            if objects:
                _insert_objects(
                    conn,
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

    def commit_replay(self, part_keys: Sequence[str], replayed: Sequence[ReplayedObject]) -> None:
        """In one transaction: mark ``part_keys`` committed and, for each replayed object, add
        its new parts and rows and record what still waits for a replay.

        Optimistic: raises :class:`LedgerConflict` (and changes nothing) when an object's row
        is no longer what the replay read, i.e. another streamer replayed it meanwhile.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            _mark_committed(conn, part_keys)
            for r in replayed:
                obj = r.read
                where = (
                    objects_table.c.source == obj.source,
                    objects_table.c.tenant_id == obj.tenant_id,
                    objects_table.c.object_id == obj.object_id,
                )
                changed = conn.execute(
                    sa.update(objects_table)
                    .where(*where, objects_table.c.part_keys == json.dumps(list(obj.part_keys)))
                    .values(
                        part_keys=json.dumps(list(r.part_keys)),
                        rows=objects_table.c.rows + r.rows_added,
                        rejects=r.rejects,
                    )
                ).rowcount
                changed_replay = conn.execute(
                    sa.update(replays_table)
                    .where(
                        replays_table.c.source == obj.source,
                        replays_table.c.tenant_id == obj.tenant_id,
                        replays_table.c.object_id == obj.object_id,
                        replays_table.c.replays == r.replays,
                    )
                    .values(
                        replayable=r.replayable,
                        status=WAITING if r.replayable else REPLAYED,
                        replays=replays_table.c.replays + 1,
                        updated_at=now,
                    )
                ).rowcount
                if changed != 1 or changed_replay != 1:
                    raise LedgerConflict(
                        f"object {'/'.join(obj.key)} was replayed by another streamer meanwhile",
                        key=obj.key,
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
        self._drop(part_keys, PENDING)

    # -- several streamers: leases and reclaiming ---------------------------------------------

    def heartbeat(self, owner: str) -> None:
        """Renew ``owner``'s lease: its pending parts are not reclaimed while it is fresh."""
        now = utcnow()
        with self.engine.begin() as conn:
            renewed = conn.execute(
                sa.update(owners_table)
                .where(owners_table.c.owner == owner)
                .values(heartbeat_at=now)
            ).rowcount
            if not renewed:
                conn.execute(sa.insert(owners_table).values(owner=owner, heartbeat_at=now))

    def release(self, owner: str) -> None:
        """End ``owner``'s lease (a clean stop): any pending part it left is reclaimable."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(owners_table).where(owners_table.c.owner == owner))

    def owners(self) -> dict[str, datetime]:
        """Every owner holding a lease, with its last heartbeat (UTC)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(owners_table.c.owner, owners_table.c.heartbeat_at))
            return {owner: _aware(at) for owner, at in rows}

    def pending_owners(self) -> dict[str, datetime | None]:
        """Owners of pending parts, with their last heartbeat (None: no lease, i.e. dead)."""
        query = (
            sa.select(parts_table.c.owner, owners_table.c.heartbeat_at)
            .select_from(
                parts_table.outerjoin(owners_table, owners_table.c.owner == parts_table.c.owner)
            )
            .where(parts_table.c.status == PENDING)
            .distinct()
        )
        with self.engine.connect() as conn:
            return {owner: None if at is None else _aware(at) for owner, at in conn.execute(query)}

    def reclaim(self, owners: Iterable[str] | None = None) -> list[str]:
        """Mark the pending parts of ``owners`` (None: of every owner) ``reclaimed``; returns
        the keys of every reclaimed part, whose files the caller deletes before
        :meth:`drop_reclaimed`. A reclaimed part can never be committed."""
        condition: sa.ColumnElement[bool] = sa.true()
        if owners is not None:
            condition = parts_table.c.owner.in_(sorted(set(owners)))
        with self.engine.begin() as conn:
            return self._reclaim(conn, condition)

    def reclaim_dead(self, lease_s: float, *, besides: Iterable[str] = ()) -> list[str]:
        """In one transaction, mark ``reclaimed`` the pending parts of every dead owner: with no
        heartbeat within ``lease_s`` seconds, and besides them the owners in ``besides``
        (known dead, e.g. their process is gone). Returns the keys of every reclaimed part
        (also those an earlier reclaimer marked but did not get to delete)."""
        cutoff = utcnow() - timedelta(seconds=lease_s)
        live = sa.select(owners_table.c.owner).where(owners_table.c.heartbeat_at >= cutoff)
        condition: sa.ColumnElement[bool] = parts_table.c.owner.not_in(live)
        known_dead = sorted(set(besides))
        if known_dead:
            condition = sa.or_(condition, parts_table.c.owner.in_(known_dead))
        with self.engine.begin() as conn:
            return self._reclaim(conn, condition)

    def drop_reclaimed(self, part_keys: Sequence[str]) -> None:
        """Forget reclaimed parts whose files were deleted."""
        self._drop(part_keys, RECLAIMED)

    def forget_dead_owners(self, lease_s: float) -> int:
        """Delete the lease rows not renewed within ``lease_s`` seconds; returns how many."""
        cutoff = utcnow() - timedelta(seconds=lease_s)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    sa.delete(owners_table).where(owners_table.c.heartbeat_at < cutoff)
                ).rowcount
            )

    def _reclaim(self, conn: sa.Connection, condition: sa.ColumnElement[bool]) -> list[str]:
        conn.execute(
            sa.update(parts_table)
            .where(parts_table.c.status == PENDING, condition)
            .values(status=RECLAIMED)
        )
        query = sa.select(parts_table.c.part_key).where(parts_table.c.status == RECLAIMED)
        return sorted(conn.execute(query).scalars())

    def _drop(self, part_keys: Sequence[str], status: str) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(list(part_keys), 500):
                conn.execute(
                    sa.delete(parts_table).where(
                        parts_table.c.part_key.in_(chunk), parts_table.c.status == status
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


def _mark_committed(conn: sa.Connection, part_keys: Sequence[str]) -> None:
    """Mark ``part_keys`` committed, each of which must still be pending (in ``conn``'s
    transaction): a part reclaimed meanwhile has lost its file, so committing it would lose
    rows. Raises :class:`PartsReclaimed` (the caller's transaction rolls back)."""
    keys = sorted(set(part_keys))
    marked = 0
    for chunk in _chunks(keys, 500):
        marked += conn.execute(
            sa.update(parts_table)
            .where(parts_table.c.part_key.in_(chunk), parts_table.c.status == PENDING)
            .values(status=COMMITTED)
        ).rowcount
    if marked == len(keys):
        return
    lost = len(keys) - marked
    raise PartsReclaimed(
        f"{lost} of {len(keys)} part(s) are no longer pending: another streamer reclaimed them "
        "(this streamer's lease had expired)",
        parts=lost,
    )


def _insert_objects(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Record loaded objects; one already recorded (another streamer loaded it meanwhile, after
    a redelivery) makes the transaction fail with :class:`LedgerConflict`."""
    try:
        conn.execute(sa.insert(objects_table), rows)
    except sa.exc.IntegrityError as exc:
        raise LedgerConflict(
            f"object(s) already loaded by another streamer (duplicate key): {exc.orig}"
        ) from exc


def _aware(at: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (tests, monitoring) look at the ledger while a batch commits.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
