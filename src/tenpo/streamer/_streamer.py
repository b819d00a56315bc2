"""The streamer: landed objects → Pre-ETL → raw-table partitions, exactly once in effect.

Delivery of ``objects.registered`` is at least once; the effect on the raw tables is exactly
once thanks to the load ledger (see ``_ledger``). Each batch goes through these steps:

1. skip (and ack) objects whose (source, tenant, object id) is already loaded;
2. parse the rest, group their rows into ONE part per (table, tenant, date), and record
   those part keys as *pending*;
3. write the parts and the quarantine files (atomic puts);
4. in one transaction, mark the parts committed and record the objects as loaded;
5. publish ``partitions.changed`` for each part;
6. ack the deliveries.

A crash before 4 leaves pending parts, which recovery deletes; their events were not acked,
so they are delivered again and loaded once. A crash after 4 leaves loaded objects whose
events come again: they are skipped, and their ``partitions.changed`` events published again.

Several streamers may share one bus consumer and one ledger (each event goes to one of them;
on NATS JetStream all pull from the one durable consumer). Each holds a lease in the ledger
(``streamer_owners``), renewed every quarter of ``streamer_lease_s``; recovery only reclaims
the pending parts of *dead* owners: lease expired, no lease at all, or a process of this host
that no longer exists. A streamer whose parts were reclaimed while it still ran (a pause
longer than its lease) cannot commit them (:class:`~tenpo.core.errors.PartsReclaimed`): it
deletes its files and leaves the events to the bus, which delivers them again.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from tenpo.bus.base import OBJECT_REGISTERED, PARTITIONS_CHANGED, Delivery, EventBus
from tenpo.control.directory import Directory
from tenpo.core.errors import BadInput, LakeError, LedgerConflict
from tenpo.core.ids import content_id, new_id, utcnow
from tenpo.core.preetl import ParseResult, PreEtl, Reject
from tenpo.core.settings import Settings
from tenpo.lake.base import Lake
from tenpo.lake.keys import parse_partition, quarantine_key, table_key
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos.vendors import master_sources
from tenpo.streamer._ledger import LoadedObject, LoadLedger, ObjectKey, ReplayedObject
from tenpo.streamer._quarantine import EVENTS_TABLE, OBJECTS_TABLE, quarantine_files
from tenpo.streamer._registry import default_pre_etls, mapped_pre_etls
from tenpo.streamer._tables import conform, dedupe_table, parquet_bytes, split_partitions
from tenpo.warehouse.schemas import NATURAL_KEYS, RAW_TABLES

log = logging.getLogger(__name__)

CONSUMER = "streamer"
"""Durable consumer name of the streamer on ``objects.registered``."""

_MANY_OBJECTS = 64
_MANY_BYTES = 32 << 20
"""At most this many objects (or about this many bytes) per ``parse_many`` call."""

_WRITERS = 4
"""Threads putting one batch's parts (encoding and fsync overlap; 2 cores here, I/O waits)."""


@dataclass
class BatchStats:
    """What one batch (or a run of batches, added up) did."""

    fetched: int = 0  # deliveries received
    objects: int = 0  # objects loaded now (including wholly quarantined ones)
    skipped: int = 0  # deliveries of objects already loaded (redelivered or re-sent)
    rejects: int = 0  # records (or whole objects) sent to quarantine
    deferred: int = 0  # left unacked for a later redelivery (landing object unreadable)
    replayed: int = 0  # objects parsed again by a replay (see Streamer.replay)
    parts: int = 0  # Parquet parts written
    rows: dict[str, int] = field(default_factory=dict)  # rows written per raw table

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def add(self, other: BatchStats) -> None:
        """Accumulate ``other`` into this one."""
        self.fetched += other.fetched
        self.objects += other.objects
        self.skipped += other.skipped
        self.rejects += other.rejects
        self.deferred += other.deferred
        self.replayed += other.replayed
        self.parts += other.parts
        for table, n in other.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n

    def __str__(self) -> str:
        tables = ", ".join(f"{t}={n}" for t, n in sorted(self.rows.items())) or "none"
        return (
            f"{self.objects} objects, {self.total_rows} rows ({tables}), {self.rejects} rejects, "
            f"{self.skipped} skipped, {self.deferred} deferred"
        )


@dataclass
class _Work:
    """One object to load in this batch, with every delivery that named it."""

    event: ObjectRegistered
    deliveries: list[Delivery]
    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    part_keys: list[str] = field(default_factory=list)

    @property
    def key(self) -> ObjectKey:
        return (self.event.source, self.event.tenant_id, self.event.object_id)


@dataclass(frozen=True)
class _Part:
    table: str
    tenant_id: str
    business_date: date
    key: str
    rows: pa.Table


class Streamer:
    """Follows ``objects.registered`` and loads each object into the raw tables once.

    ``pre_etls`` maps a landing source to its adapter (default: :func:`default_pre_etls` plus
    one per declarative POS vendor mapping of ``settings``). ``ledger`` is the load ledger to
    use (default: one opened on ``settings.streamer_db_url`` and closed by :meth:`close`).
    """

    def __init__(
        self,
        settings: Settings,
        lake: Lake,
        bus: EventBus,
        directory: Directory,
        pre_etls: Mapping[str, PreEtl] | None = None,
        *,
        fetch_timeout: float = 0.5,
        ledger: LoadLedger | None = None,
    ) -> None:
        self.settings = settings
        self.lake = lake
        self.bus = bus
        self.directory = directory
        self.pre_etls: dict[str, PreEtl] = dict(
            default_pre_etls() | mapped_pre_etls(settings) if pre_etls is None else pre_etls
        )
        self.replay_after = master_sources()
        """Sources (POS masters) whose load may resolve earlier replayable rejects."""
        self.batch_size = settings.streamer_batch_objects
        self.fetch_timeout = fetch_timeout
        self._owns_ledger = ledger is None
        self.ledger = LoadLedger(settings.streamer_db_url) if ledger is None else ledger
        self.lease_s = settings.streamer_lease_s
        self.owner = f"{_HOST}:{os.getpid()}:{new_id()}"
        """This streamer's id in the ledger: ``host:pid:random``."""
        self._renewed_at: float | None = None  # monotonic time of the last heartbeat
        self._reclaimed_at: float | None = None  # ... and of the last reclaim of dead owners
        self._writers: ThreadPoolExecutor | None = None  # part puts (see _write_parts)

    # -- running -----------------------------------------------------------------------------

    def run_once(self, max_events: int | None = None) -> BatchStats:
        """Fetch up to ``max_events`` (default: the batch size) events and load them.

        Bad objects go to quarantine; an infrastructure failure (lake write, ledger, bus)
        raises after this batch's pending parts were cleaned up, leaving its events unacked.
        """
        self._renew_lease()
        if self._reclaimed_at is None or time.monotonic() - self._reclaimed_at >= self.lease_s / 2:
            self.reclaim_dead()
        deliveries = self._fetch(max_events or self.batch_size)
        stats = BatchStats(fetched=len(deliveries))
        if not deliveries:
            return stats
        started = time.perf_counter()
        work = self._triage(deliveries, stats)
        if work:
            try:
                self._load(work, stats)
            except Exception:
                self._clean_up_after_failure()
                raise
        log.info(
            "batch of %d events in %.2fs: %s", len(deliveries), time.perf_counter() - started, stats
        )
        return stats

    def run_until_idle(
        self,
        timeout: float = 1.0,
        *,
        max_seconds: float | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> BatchStats:
        """Load batches until no event arrived for ``timeout`` s; returns the totals.

        While the bus still reports unacknowledged events (in flight or awaiting
        redelivery), waits up to ``ack_wait`` longer for them; ``max_seconds`` caps the run.
        A batch given up on a conflict with another streamer is left to its redelivery.
        """
        total = BatchStats()
        started = last_event = time.monotonic()
        grace = self.settings.bus_ack_wait_s + timeout
        while True:
            try:
                stats = self.run_once()
            except LedgerConflict as exc:  # another streamer's doing: the events come again
                log.warning("batch given up, the bus delivers it again: %s", exc)
                stats = BatchStats(fetched=1)  # not idle: events are in flight
            total.add(stats)
            if on_batch is not None and stats.fetched:
                on_batch(stats)
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                log.warning(
                    "run_until_idle stopped after %.1fs, events still coming", now - started
                )
                return total
            if stats.fetched:
                last_event = now
                continue
            quiet = now - last_event
            if quiet >= timeout and (self._unacked() == 0 or quiet >= grace):
                return total

    def run_forever(
        self,
        stop: threading.Event,
        *,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> BatchStats:
        """Load batches until ``stop`` is set; failures are logged and retried with backoff
        (a conflict with another streamer at once)."""
        total = BatchStats()
        backoff = 0.0
        while not stop.is_set():
            try:
                stats = self.run_once()
            except LedgerConflict as exc:
                # Another streamer got there first (a redelivery it loaded, a reclaim): the
                # batch was cleaned up and its events come again; no backoff needed.
                log.warning("batch given up, the bus delivers it again: %s", exc)
                continue
            except Exception:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                log.exception("batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                continue
            backoff = 0.0
            total.add(stats)
            if on_batch is not None and stats.fetched:
                on_batch(stats)
        log.info("streamer stopped: %s", total)
        return total

    def recover(self, *, all_owners: bool = False) -> int:
        """Delete this streamer's pending (uncommitted) parts and forget them; returns how many.

        ``all_owners`` takes every owner's, live or not (an operator's clean-up while no
        streamer runs: a live one would lose its batch, which the bus then redelivers).
        """
        reclaimed = self.ledger.reclaim(None if all_owners else [self.owner])
        self._delete_reclaimed(reclaimed)
        return len(reclaimed)

    def reclaim_dead(self) -> int:
        """Delete the pending parts of dead streamers (lease expired or process gone) and
        forget their leases; returns how many parts. Live streamers' parts are kept."""
        besides = [o for o in self.ledger.pending_owners() if o != self.owner and _gone(o)]
        reclaimed = self.ledger.reclaim_dead(self.lease_s, besides=besides)
        self._delete_reclaimed(reclaimed)
        self.ledger.forget_dead_owners(self.lease_s)
        self._reclaimed_at = time.monotonic()
        return len(reclaimed)

    def close(self) -> None:
        """End this streamer's lease; release the ledger's connections when this streamer
        opened it (an injected ledger, like the lake and the bus, belongs to the caller)."""
        if self._renewed_at is not None:
            try:
                self.ledger.release(self.owner)
            except Exception:  # noqa: BLE001 - the lease then expires by itself
                log.exception("could not release the streamer lease of %s", self.owner)
            self._renewed_at = None
        if self._writers is not None:
            self._writers.shutdown()
            self._writers = None
        if self._owns_ledger:
            self.ledger.close()

    def _renew_lease(self, *, force: bool = False) -> None:
        """Heartbeat at most every quarter lease (always when ``force``)."""
        now = time.monotonic()
        if force or self._renewed_at is None or now - self._renewed_at >= self.lease_s / 4:
            self.ledger.heartbeat(self.owner)
            self._renewed_at = now

    def _delete_reclaimed(self, keys: list[str]) -> None:
        for key in keys:
            self.lake.delete(key)
        if keys:
            self.ledger.drop_reclaimed(keys)
            log.warning("recovery: deleted %d uncommitted part(s)", len(keys))

    def _commit(self, part_keys: list[str], commit: Callable[[], None]) -> None:
        """Step 4 (``commit``); on a conflict with another streamer, this batch's part files
        are deleted and forgotten before the error goes on (its events stay unacked)."""
        self._renew_lease()
        try:
            commit()
        except LedgerConflict as exc:
            log.warning("batch of %d part(s) not committed: %s", len(part_keys), exc)
            for key in part_keys:
                self.lake.delete(key)
            self.ledger.drop_pending(part_keys)
            raise

    # -- steps -------------------------------------------------------------------------------

    def _fetch(self, limit: int) -> list[Delivery]:
        deliveries = self.bus.fetch(
            OBJECT_REGISTERED, CONSUMER, max_events=limit, timeout=self.fetch_timeout
        )
        # Top the batch up with what is already waiting: fewer, bigger parts.
        while deliveries and len(deliveries) < limit:
            more = self.bus.fetch(
                OBJECT_REGISTERED, CONSUMER, max_events=limit - len(deliveries), timeout=0.01
            )
            if not more:
                break
            deliveries.extend(more)
        return deliveries

    def _triage(self, deliveries: list[Delivery], stats: BatchStats) -> list[_Work]:
        """Step 1: invalid events to quarantine, loaded objects skipped; the rest to load."""
        work: dict[ObjectKey, _Work] = {}
        for delivery in deliveries:
            try:
                event = ObjectRegistered.model_validate(delivery.payload)
            except ValidationError as exc:
                self._quarantine_event(delivery, exc)
                stats.rejects += 1
                continue
            item = work.get((event.source, event.tenant_id, event.object_id))
            if item is None:
                item = _Work(event=event, deliveries=[])
                work[item.key] = item
            item.deliveries.append(delivery)
        done = self.ledger.loaded(work)
        for key, loaded in done.items():
            item = work.pop(key)
            # The crash may have come between commit and publish: publish again (same ids).
            self._publish_parts(loaded.part_keys)
            for delivery in item.deliveries:
                self.bus.ack(delivery)
            stats.skipped += len(item.deliveries)
        for item in work.values():
            stats.skipped += len(item.deliveries) - 1  # the same object twice in one batch
        return list(work.values())

    def _load(self, work: list[_Work], stats: BatchStats) -> None:
        """Steps 2-6 for the objects of one batch, committed in chunks of at most about
        ``streamer_batch_rows`` parsed rows (big objects never pile up in memory: a committed
        chunk's rows are dropped at once, not when the whole batch is done)."""
        ready: list[_Work] = []
        rows = 0
        for item, result in self._parsed(work):
            if result is None:
                stats.deferred += len(item.deliveries)
                continue
            item.tables = result.tables
            item.rejects = result.rejects
            ready.append(item)
            rows += sum(t.num_rows for t in item.tables.values())
            if rows >= self.settings.streamer_batch_rows:
                self._load_ready(ready, stats)
                ready, rows = [], 0
        if ready:
            self._load_ready(ready, stats)

    def _load_ready(self, ready: list[_Work], stats: BatchStats) -> None:
        """Steps 2-6 for parsed objects: parts written, committed, published, events acked."""
        parts = self._plan_parts(ready)
        part_keys = [p.key for p in parts]
        self._renew_lease(force=True)  # a fresh lease before any part is pending
        self.ledger.begin_parts(part_keys, self.owner)  # step 2
        self._write_parts(parts)  # step 3
        rejected_at = utcnow()
        for item in ready:
            self._write_quarantine(item, rejected_at)
        loaded = [
            LoadedObject(
                source=item.event.source,
                tenant_id=item.event.tenant_id,
                object_id=item.event.object_id,
                landing_key=item.event.key,
                part_keys=tuple(item.part_keys),
                rows=sum(t.num_rows for t in item.tables.values()),
                rejects=len(item.rejects),
                replayable=sum(r.replayable for r in item.rejects),
                event_json=item.event.model_dump_json(),
            )
            for item in ready
        ]
        self._commit(part_keys, lambda: self.ledger.commit(part_keys, loaded))  # step 4
        self._publish_parts(part_keys)  # step 5
        for item in ready:  # step 6
            for delivery in item.deliveries:
                self.bus.ack(delivery)
        stats.objects += len(ready)
        stats.parts += len(parts)
        stats.rejects += sum(len(item.rejects) for item in ready)
        for part in parts:
            stats.rows[part.table] = stats.rows.get(part.table, 0) + part.rows.num_rows
        del parts
        for item in ready:
            # Committed: the rows are in their parts. The batch's work list would otherwise
            # hold every object's tables until its last chunk is done.
            item.tables, item.rejects = {}, []
        # A new POS master may resolve registers that quarantined earlier sales: replay them.
        for tenant in sorted(
            {i.event.tenant_id for i in ready if i.event.source in self.replay_after}
        ):
            try:
                replayed = self.replay(tenant_id=tenant)
            except Exception:  # noqa: BLE001 - the batch is committed; `streamer replay` retries
                log.exception("automatic replay for tenant %s failed", tenant)
                self._clean_up_after_failure()
                continue
            stats.replayed += replayed.replayed
            for table, n in replayed.rows.items():
                stats.rows[table] = stats.rows.get(table, 0) + n
            stats.parts += replayed.parts

    # -- replay ------------------------------------------------------------------------------

    def replay(self, *, tenant_id: str | None = None, source: str | None = None) -> BatchStats:
        """Parse again the loaded objects that have replayable rejects and load what now passes.

        Only rows whose natural key the object did not load before are written (the rest of
        the object is already in the raw tables), so a replay never duplicates a row; the
        object's quarantine files are rewritten with what is still rejected (deleted when
        nothing is). Objects whose rejects are all resolved are marked ``replayed``. When
        another streamer replays the same objects meanwhile, the replay starts over from
        what that one committed (at most 3 times).
        """
        for attempt in range(1, 4):
            try:
                return self._replay(tenant_id=tenant_id, source=source)
            except LedgerConflict:
                if attempt == 3:
                    raise
                log.info("replay conflicted with another streamer; starting over")
        raise AssertionError("unreachable")

    def _replay(self, *, tenant_id: str | None, source: str | None) -> BatchStats:
        """One replay attempt (see :meth:`replay`)."""
        stats = BatchStats()
        candidates = self.ledger.replay_candidates(tenant_id, source)
        if not candidates:
            return stats
        loaded = self.ledger.loaded(c.key for c in candidates)
        ready: list[tuple[_Work, LoadedObject, int]] = []
        for candidate in candidates:
            obj = loaded.get(candidate.key)
            if obj is None:
                continue
            event = ObjectRegistered.model_validate_json(candidate.event_json)
            result = self._parse(event)
            if result is None:
                stats.deferred += 1
                continue
            earlier = self._loaded_keys(obj)
            tables = {}
            for name, table in result.tables.items():
                fresh = _without_keys(table, earlier.get(name), NATURAL_KEYS.get(name, ()))
                if fresh.num_rows:
                    tables[name] = fresh
            item = _Work(event=event, deliveries=[], tables=tables, rejects=result.rejects)
            ready.append((item, obj, candidate.replays))
        if not ready:
            return stats
        parts = self._plan_parts([item for item, _, _ in ready])
        part_keys = [p.key for p in parts]
        self._renew_lease(force=True)
        self.ledger.begin_parts(part_keys, self.owner)
        self._write_parts(parts)
        rejected_at = utcnow()
        for item, obj, _ in ready:
            self._rewrite_quarantine(item, obj, rejected_at)
        replayed = [
            ReplayedObject(
                read=obj,
                replays=replays,
                part_keys=(*obj.part_keys, *item.part_keys),
                rows_added=sum(t.num_rows for t in item.tables.values()),
                rejects=len(item.rejects),
                replayable=sum(r.replayable for r in item.rejects),
            )
            for item, obj, replays in ready
        ]
        self._commit(part_keys, lambda: self.ledger.commit_replay(part_keys, replayed))
        self._publish_parts(part_keys)
        stats.replayed += len(ready)
        stats.parts += len(parts)
        stats.rejects += sum(len(item.rejects) for item, _, _ in ready)
        for part in parts:
            stats.rows[part.table] = stats.rows.get(part.table, 0) + part.rows.num_rows
        log.info("replayed %d object(s): %s", len(ready), stats)
        return stats

    def _loaded_keys(self, obj: LoadedObject) -> dict[str, pa.Table]:
        """Natural keys of the rows ``obj`` already loaded, per table (read from its parts)."""
        import pyarrow.parquet as pq

        found: dict[str, list[pa.Table]] = defaultdict(list)
        for key in obj.part_keys:
            table = key.split("/", 2)[1]
            columns = list(NATURAL_KEYS.get(table, ()))
            if not columns:
                continue
            rows = pq.read_table(
                pa.BufferReader(self.lake.get(key)),
                columns=[*columns, "source_object_id"],
                filters=[("source_object_id", "==", obj.object_id)],
            )
            found[table].append(rows.select(columns))
        return {t: pa.concat_tables(parts) for t, parts in found.items()}

    def _rewrite_quarantine(self, item: _Work, obj: LoadedObject, rejected_at: datetime) -> None:
        """Replace the object's quarantine files by what is still rejected after a replay."""
        event = item.event
        files = quarantine_files(
            item.rejects,
            tenant_id=event.tenant_id,
            day=event.business_date,
            object_id=event.object_id,
            source=event.source,
            source_key=event.key,
            rejected_at=rejected_at,
        )
        for table in (*RAW_TABLES, OBJECTS_TABLE):
            key = quarantine_key(table, event.tenant_id, event.business_date, event.object_id)
            if key not in files and self.lake.exists(key):
                self.lake.delete(key)
        for key, data in files.items():
            self.lake.put(key, data)
        log.info(
            "replayed %s: %d record(s) still quarantined (was %d)",
            event.key,
            len(item.rejects),
            obj.rejects,
        )

    def _parse(self, event: ObjectRegistered) -> ParseResult | None:
        """Rows and rejects of one object; None when its bytes cannot be read right now."""
        pre_etl = self.pre_etls.get(event.source)
        if pre_etl is None:
            return _whole_object_rejected(f"no Pre-ETL for source {event.source}", replayable=True)
        data = self._read(event)
        if not isinstance(data, bytes):
            return data
        try:
            with _paused_gc():
                result = pre_etl.parse(event, data, self.directory)
        except Exception as exc:  # noqa: BLE001 - a Pre-ETL bug must not stop the stream
            log.exception("Pre-ETL %s failed on %s", event.source, event.key)
            return _whole_object_rejected(
                f"Pre-ETL {event.source} failed: {type(exc).__name__}: {exc}"
            )
        return _conformed(event, result)

    def _read(self, event: ObjectRegistered) -> bytes | ParseResult | None:
        """The landed bytes of ``event``'s object; the whole object rejected when it is
        missing; None when it cannot be read right now."""
        try:
            return self.lake.get(event.key)
        except LakeError as exc:
            if self.lake.exists(event.key):
                log.warning("cannot read %s, leaving it for redelivery: %s", event.key, exc)
                return None
            return _whole_object_rejected(f"landing object missing: {exc}")

    def _parsed(self, work: list[_Work]) -> Iterator[tuple[_Work, ParseResult | None]]:
        """Each item of ``work`` with its :meth:`_parse` result, in order. Runs of items of one
        source whose Pre-ETL has ``parse_many`` are parsed by it, several objects per call
        (their per-object costs shared; the results are the same as one by one)."""
        i = 0
        while i < len(work):
            source = work[i].event.source
            many = getattr(self.pre_etls.get(source), "parse_many", None)
            if many is None:
                yield work[i], self._parse(work[i].event)
                i += 1
                continue
            run: list[tuple[_Work, bytes]] = []
            size = 0
            while (
                i < len(work)
                and work[i].event.source == source
                and len(run) < _MANY_OBJECTS
                and size < _MANY_BYTES
            ):
                item = work[i]
                i += 1
                data = self._read(item.event)
                if not isinstance(data, bytes):
                    yield from self._parse_run(many, run)
                    run, size = [], 0
                    yield item, data
                    continue
                run.append((item, data))
                size += len(data)
            yield from self._parse_run(many, run)

    def _parse_run(
        self, many: Callable[..., list[ParseResult]], run: list[tuple[_Work, bytes]]
    ) -> Iterator[tuple[_Work, ParseResult | None]]:
        if not run:
            return
        try:
            with _paused_gc():
                results = many([(item.event, data) for item, data in run], self.directory)
            if len(results) != len(run):
                raise RuntimeError(f"{len(results)} results for {len(run)} objects")
        except Exception:  # noqa: BLE001 - one by one, where a failure names its object
            log.exception("Pre-ETL %s failed on a run of %d objects", run[0][0].event.source,
                          len(run))  # fmt: skip
            for item, _ in run:
                yield item, self._parse(item.event)
            return
        for (item, _), result in zip(run, results, strict=True):
            yield item, _conformed(item.event, result)

    def _plan_parts(self, ready: list[_Work]) -> list[_Part]:
        """One part per (table, tenant, date) over the whole batch, rows deduplicated."""
        part_name = f"{utcnow():%Y%m%dT%H%M%S%f}-{new_id()}"
        by_table: dict[str, list[pa.Table]] = defaultdict(list)
        for item in ready:
            for name, table in item.tables.items():
                by_table[name].append(table)
                for day in pc.unique(table["business_date"]).to_pylist():
                    item.part_keys.append(table_key(name, item.event.tenant_id, day, part_name))
        parts: list[_Part] = []
        for name in sorted(by_table):
            combined = dedupe_table(name, pa.concat_tables(by_table[name]))
            for tenant, day, rows in split_partitions(combined):
                key = table_key(name, tenant, day, part_name)
                parts.append(_Part(name, tenant, day, key, rows))
        # Dedupe may empty a partition whose rows all repeat another date's keys.
        written = {p.key for p in parts}
        for item in ready:
            item.part_keys = [k for k in item.part_keys if k in written]
        return parts

    def _write_parts(self, parts: list[_Part]) -> None:
        """Step 3: encode and put the parts, several at once (Parquet encoding and the puts'
        fsyncs release the GIL). Returns once every put is done; the first failure raises."""
        if len(parts) < 2:
            for part in parts:
                self.lake.put(part.key, parquet_bytes(part.rows))
            return
        if self._writers is None:
            self._writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="tenpo-streamer-put")
        futures = [
            self._writers.submit(lambda p: self.lake.put(p.key, parquet_bytes(p.rows)), part)
            for part in parts
        ]
        wait(futures)  # every put ends (written or failed) before the batch goes on
        for future in futures:
            future.result()

    def _write_quarantine(self, item: _Work, rejected_at: datetime) -> None:
        if not item.rejects:
            return
        event = item.event
        files = quarantine_files(
            item.rejects,
            tenant_id=event.tenant_id,
            day=event.business_date,
            object_id=event.object_id,
            source=event.source,
            source_key=event.key,
            rejected_at=rejected_at,
        )
        for key, data in files.items():
            self.lake.put(key, data)
        log.info("quarantined %d record(s) of %s", len(item.rejects), event.key)

    def _quarantine_event(self, delivery: Delivery, exc: ValidationError) -> None:
        tenant = str(delivery.payload.get("tenant_id") or "_unknown")
        reason = f"invalid objects.registered event: {exc.error_count()} error(s): {exc}"
        files = quarantine_files(
            [Reject(table=EVENTS_TABLE, reason=reason, record=delivery.payload)],
            tenant_id=tenant if "/" not in tenant else "_unknown",
            day=utcnow().date(),
            object_id=content_id(delivery.event_id.encode()),
            source=str(delivery.payload.get("source") or ""),
            source_key=delivery.event_id,
            rejected_at=utcnow(),
        )
        for key, data in files.items():
            self.lake.put(key, data)
        self.bus.ack(delivery)
        log.error("quarantined invalid event %s: %s", delivery.event_id, reason)

    def _publish_parts(self, part_keys: tuple[str, ...] | list[str]) -> None:
        for key in part_keys:
            tenant, day = parse_partition(key)
            table = key.split("/", 2)[1]
            self.bus.publish(
                PARTITIONS_CHANGED,
                {"table": table, "tenant_id": tenant, "business_date": day.isoformat()},
                event_id=key,
            )

    def _clean_up_after_failure(self) -> None:
        """Delete this streamer's pending parts after a failed batch."""
        try:
            self.recover()
        except Exception:  # noqa: BLE001 - the next start's recovery will do it
            log.exception("could not clean up after a failed batch")

    def _unacked(self) -> int:
        try:
            return self.bus.pending(OBJECT_REGISTERED, CONSUMER)
        except NotImplementedError:
            return 0


def _host() -> str:
    """This host's name, with its PID namespace where there is one: two containers sharing a
    hostname but not their process ids must not judge each other's pids."""
    name = socket.gethostname().replace(":", "_")
    try:
        return f"{name}[{os.stat('/proc/self/ns/pid').st_ino}]"
    except OSError:
        return name


_HOST = _host()


def _gone(owner: str) -> bool:
    """Whether ``owner`` (``host:pid:random``) was a process of this host that has exited."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # another Streamer of this very process: only its lease tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, run by another user
    return False


def _without_keys(table: pa.Table, earlier: pa.Table | None, keys: tuple[str, ...]) -> pa.Table:
    """Rows of ``table`` whose ``keys`` are not among the ``earlier`` rows' keys."""
    if earlier is None or earlier.num_rows == 0 or not keys or table.num_rows == 0:
        return table
    seen = earlier.select(list(keys)).group_by(list(keys)).aggregate([])
    seen = seen.append_column("__tenpo_seen", pa.array([True] * seen.num_rows))
    joined = table.join(seen, keys=list(keys), join_type="left outer", use_threads=False)
    return joined.filter(pc.is_null(joined["__tenpo_seen"])).select(table.column_names)


@contextmanager
def _paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while a Pre-ETL parses: a large body allocates millions of acyclic
    objects (decoded JSON, row tuples) and the collector's repeated passes over them cost a
    quarter of the parse time; the collector runs again right after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _conformed(event: ObjectRegistered, result: ParseResult) -> ParseResult:
    """``result`` with its tables in their raw tables' schemas (empty ones left out); the
    whole object rejected when one does not fit."""
    tables: dict[str, pa.Table] = {}
    try:
        for name, table in result.tables.items():
            conformed = conform(name, table, event.tenant_id)
            if conformed.num_rows:
                tables[name] = conformed
    except BadInput as exc:
        return _whole_object_rejected(f"Pre-ETL {event.source} output rejected: {exc}")
    return ParseResult(tables=tables, rejects=list(result.rejects))


def _whole_object_rejected(reason: str, *, replayable: bool = False) -> ParseResult:
    return ParseResult(rejects=[Reject(table=OBJECTS_TABLE, reason=reason, replayable=replayable)])
