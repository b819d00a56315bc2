"""The embedded event bus: an outbox table in one SQLite file, polled by durable consumers.

Several processes may open the same file at once (the gateway publishes, the streamer
consumes): the database runs in WAL mode with a busy timeout and every operation is one short
transaction. Layout::

    events(seq, topic, event_id, payload, published_at)   UNIQUE(topic, event_id)
    cursors(consumer, topic, floor)       every event of topic with seq <= floor is acked
    deliveries(consumer, topic, seq, attempts, delivered_at, acked_at)   rows above floor

A fetch claims, inside ``BEGIN IMMEDIATE``, the lowest-``seq`` events of the topic that the
consumer has not acknowledged and that are not in flight (delivered less than ``ack_wait``
seconds ago). SQLite serialises writers, so sequence numbers commit in order and the floor can
never skip an event committed later. ``synchronous=NORMAL``: a committed event survives a
crash of any process; only a power loss may drop the last few commits.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenpo.bus._common import (
    check_consumer,
    check_event_id,
    check_fetch_args,
    check_topic,
    encode_payload,
)
from tenpo.bus.base import Delivery, EventBus
from tenpo.core.errors import BadInput, BusError

__all__ = ["SqliteBus"]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    published_at REAL NOT NULL,
    UNIQUE (topic, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
CREATE TABLE IF NOT EXISTS cursors (
    consumer TEXT NOT NULL,
    topic TEXT NOT NULL,
    floor INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, topic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    consumer TEXT NOT NULL,
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    delivered_at REAL,
    acked_at REAL,
    PRIMARY KEY (consumer, topic, seq)
) WITHOUT ROWID;
"""

_INSERT_EVENT = """
INSERT INTO events (topic, event_id, payload, published_at) VALUES (?, ?, ?, ?)
ON CONFLICT (topic, event_id) DO NOTHING
"""

_CLAIMABLE = """
SELECT e.seq, e.event_id, e.payload, COALESCE(d.attempts, 0) + 1
FROM events AS e
LEFT JOIN deliveries AS d ON d.consumer = ? AND d.topic = e.topic AND d.seq = e.seq
WHERE e.topic = ? AND e.seq > ? AND d.acked_at IS NULL
  AND (d.delivered_at IS NULL OR d.delivered_at <= ?)
ORDER BY e.seq
LIMIT ?
"""

_FIRST_UNACKED = """
SELECT e.seq FROM events AS e
WHERE e.topic = ? AND e.seq > ? AND NOT EXISTS (
    SELECT 1 FROM deliveries AS d
    WHERE d.consumer = ? AND d.topic = e.topic AND d.seq = e.seq AND d.acked_at IS NOT NULL
)
ORDER BY e.seq
LIMIT 1
"""


@dataclass(frozen=True)
class _Claim:
    """What ``ack``/``nak`` need to find a delivery again (the ``Delivery.token``)."""

    path: str
    consumer: str
    seq: int
    attempt: int


def _encode(payload: dict[str, Any]) -> str:
    return encode_payload(payload).decode()


def _decode(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise BusError(f"stored event payload is not a JSON object: {text[:80]!r}")
    return value


class SqliteBus(EventBus):
    """Event bus in a SQLite file; safe for several threads and processes at once."""

    def __init__(self, path: Path, ack_wait: float) -> None:
        if ack_wait <= 0:
            raise BadInput(f"ack_wait must be > 0 seconds, got {ack_wait!r}")
        self.path = Path(path)
        self.ack_wait = float(ack_wait)
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._transaction() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except sqlite3.Error as exc:
            raise BusError(f"cannot open the SQLite bus at {self.path}: {exc}") from exc
        log.debug("sqlite bus open at %s (ack_wait=%.1fs)", self.path, self.ack_wait)

    # -- publishing -------------------------------------------------------------------------

    def publish(self, topic: str, payload: dict[str, Any], event_id: str) -> None:
        """Append ``payload`` to ``topic`` unless ``event_id`` is already stored there."""
        row = (check_topic(topic), check_event_id(event_id), _encode(payload), time.time())
        with self._lock:
            self._execute(_INSERT_EVENT, row)

    def publish_many(self, topic: str, events: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Append ``(event_id, payload)`` pairs in one transaction; the number newly stored."""
        check_topic(topic)
        now = time.time()
        rows = [(topic, check_event_id(eid), _encode(p), now) for eid, p in events]
        if not rows:
            return 0
        with self._lock, self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(_INSERT_EVENT, rows)
            stored = conn.total_changes - before
        log.debug("published %d/%d events on %s", stored, len(rows), topic)
        return stored

    # -- consuming --------------------------------------------------------------------------

    def fetch(
        self, topic: str, consumer: str, max_events: int = 100, timeout: float = 1.0
    ) -> list[Delivery]:
        """Claim up to ``max_events`` events in publish order, polling up to ``timeout`` s."""
        check_topic(topic)
        check_consumer(consumer)
        check_fetch_args(max_events, timeout)
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self._claim(topic, consumer, max_events)
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def ack(self, delivery: Delivery) -> None:
        """Mark the delivery processed for its consumer (acking twice is harmless)."""
        claim = self._claim_of(delivery)
        with self._lock:
            self._execute(
                "UPDATE deliveries SET acked_at = ?"
                " WHERE consumer = ? AND topic = ? AND seq = ? AND acked_at IS NULL",
                (time.time(), claim.consumer, delivery.topic, claim.seq),
            )

    def nak(self, delivery: Delivery) -> None:
        """Make the event claimable again now, unless it was redelivered or acked since."""
        claim = self._claim_of(delivery)
        with self._lock:
            self._execute(
                "UPDATE deliveries SET delivered_at = NULL WHERE consumer = ? AND topic = ?"
                " AND seq = ? AND attempts = ? AND acked_at IS NULL",
                (claim.consumer, delivery.topic, claim.seq, claim.attempt),
            )

    def pending(self, topic: str, consumer: str) -> int:
        """Events of ``topic`` that ``consumer`` has not acknowledged (in flight included)."""
        check_topic(topic)
        check_consumer(consumer)
        with self._lock, self._transaction() as conn:
            floor = self._advance_floor(conn, topic, consumer)
            (published,) = conn.execute(
                "SELECT COUNT(*) FROM events WHERE topic = ? AND seq > ?", (topic, floor)
            ).fetchone()
            (acked,) = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE consumer = ? AND topic = ? AND seq > ?"
                " AND acked_at IS NOT NULL",
                (consumer, topic, floor),
            ).fetchone()
        return int(published) - int(acked)

    # -- housekeeping -----------------------------------------------------------------------

    def compact(self, older_than: float = 0.0) -> int:
        """Delete events older than ``older_than`` s that every known consumer has acked.

        A consumer is known once it has fetched (or asked ``pending``) on the topic; topics
        nobody consumes yet are kept whole. Returns the number of events deleted.
        """
        if older_than < 0:
            raise BadInput(f"older_than must be >= 0 seconds, got {older_than!r}")
        cutoff = time.time() - older_than
        deleted = 0
        with self._lock, self._transaction() as conn:
            pairs = conn.execute("SELECT consumer, topic FROM cursors").fetchall()
            floors: dict[str, int] = {}
            for consumer, topic in pairs:
                floor = self._advance_floor(conn, topic, consumer)
                floors[topic] = min(floor, floors.get(topic, floor))
            for topic, floor in floors.items():
                cursor = conn.execute(
                    "DELETE FROM events WHERE topic = ? AND seq <= ? AND published_at < ?",
                    (topic, floor, cutoff),
                )
                deleted += cursor.rowcount
        log.info("compacted the sqlite bus at %s: %d events deleted", self.path, deleted)
        return deleted

    def close(self) -> None:
        """Close the connection; the bus object is unusable afterwards."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals --------------------------------------------------------------------------

    def _claim(self, topic: str, consumer: str, max_events: int) -> list[Delivery]:
        now = time.time()
        with self._lock, self._transaction() as conn:
            floor = self._advance_floor(conn, topic, consumer)
            rows = conn.execute(
                _CLAIMABLE, (consumer, topic, floor, now - self.ack_wait, max_events)
            ).fetchall()
            conn.executemany(
                "INSERT INTO deliveries (consumer, topic, seq, attempts, delivered_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer, topic, seq) DO UPDATE"
                " SET attempts = excluded.attempts, delivered_at = excluded.delivered_at",
                [(consumer, topic, seq, attempt, now) for seq, _, _, attempt in rows],
            )
        path = str(self.path)
        return [
            Delivery(
                topic=topic,
                event_id=event_id,
                payload=_decode(payload),
                attempt=attempt,
                token=_Claim(path, consumer, seq, attempt),
            )
            for seq, event_id, payload, attempt in rows
        ]

    @staticmethod
    def _advance_floor(conn: sqlite3.Connection, topic: str, consumer: str) -> int:
        """Move the consumer's floor past its leading acked events; forget their rows."""
        row = conn.execute(
            "SELECT floor FROM cursors WHERE consumer = ? AND topic = ?", (consumer, topic)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO cursors (consumer, topic, floor) VALUES (?, ?, 0)", (consumer, topic)
            )
            return 0
        floor = int(row[0])
        first = conn.execute(_FIRST_UNACKED, (topic, floor, consumer)).fetchone()
        if first is None:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(seq), ?) FROM events WHERE topic = ?", (floor, topic)
            ).fetchone()
            new_floor = int(last)
        else:
            new_floor = int(first[0]) - 1
        if new_floor > floor:
            conn.execute(
                "UPDATE cursors SET floor = ? WHERE consumer = ? AND topic = ?",
                (new_floor, consumer, topic),
            )
            conn.execute(
                "DELETE FROM deliveries WHERE consumer = ? AND topic = ? AND seq <= ?",
                (consumer, topic, new_floor),
            )
        return new_floor

    def _claim_of(self, delivery: Delivery) -> _Claim:
        claim = delivery.token
        if not isinstance(claim, _Claim) or claim.path != str(self.path):
            raise BusError(f"delivery of event {delivery.event_id!r} was not fetched from {self}")
        return claim

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: take the write lock up front, never mid-way."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise BusError(f"SQLite bus at {self.path} is unavailable: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise BusError(f"SQLite bus at {self.path} failed: {exc}") from exc
            raise

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self._connection().execute(sql, params)
        except sqlite3.Error as exc:
            raise BusError(f"SQLite bus at {self.path} failed: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BusError(f"SQLite bus at {self.path} is closed")
        return self._conn

    def __repr__(self) -> str:
        return f"SqliteBus({str(self.path)!r}, ack_wait={self.ack_wait})"
