"""The landing zone: keep bytes as received, then announce them on the bus.

``LandingZone.land`` is the only way data enters tenpo. It stores the object under a key
derived from its content hash (or the sender's idempotency key), then publishes an
``ObjectRegistered`` event whose id is the key. Both steps are idempotent, so a sender that
retries after any failure lands the object once and announces it once.

With ``group_commit=True`` (the gateway) the writes are not fsynced one by one: concurrent
``land`` calls share one durability round (:class:`tenpo.lake.commit.GroupCommit`) and one
bus transaction, and each returns only after the round that covers its writes. Such a write
that a crash interrupted (never acknowledged) may leave an empty claim or object behind;
the sender's retry finds it damaged and completes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict

from tenpo.bus.base import OBJECT_REGISTERED, EventBus
from tenpo.core.errors import Conflict
from tenpo.core.ids import CONTENT_ID_CHARS, content_id, idempotency_id, utcnow
from tenpo.lake.base import Lake
from tenpo.lake.commit import GroupCommit
from tenpo.lake.keys import claim_key, landing_key, parse_partition

log = logging.getLogger(__name__)

R = TypeVar("R")


class ObjectRegistered(BaseModel):
    """Event: an object was stored in ``landing/`` and awaits its Pre-ETL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    source: str
    tenant_id: str
    business_date: date
    object_id: str
    size: int
    sha256: str
    content_type: str
    registered_at: datetime
    meta: dict[str, str] = {}


@dataclass(frozen=True)
class Landed:
    """Result of :meth:`LandingZone.land`; ``created`` is False for a re-send."""

    event: ObjectRegistered
    created: bool


class LandingZone:
    """Stores raw objects in the lake and publishes their registration."""

    def __init__(
        self,
        lake: Lake,
        bus: EventBus,
        timezone: str = "Asia/Tokyo",
        *,
        group_commit: bool = False,
        commit_window_s: float = 0.0,
    ) -> None:
        self.lake = lake
        self.bus = bus
        self._tz = ZoneInfo(timezone)
        self.committer: GroupCommit[ObjectRegistered] | None = (
            GroupCommit(lake, self._publish_all, window_s=commit_window_s) if group_commit else None
        )

    def close(self) -> None:
        """Finish the pending group-commit round and stop its thread (if any)."""
        if self.committer is not None:
            self.committer.close()
            self.lake.checkpoint()  # the journaled writes durable in place, the journal gone

    def land(
        self,
        source: str,
        tenant_id: str,
        data: bytes,
        ext: str,
        *,
        idempotency_key: str | None = None,
        day: date | None = None,
        content_type: str = "application/octet-stream",
        meta: dict[str, str] | None = None,
        scope: str | None = None,
    ) -> Landed:
        """Keep ``data`` under ``landing/{source}/…`` and publish ``ObjectRegistered``.

        Raises :class:`Conflict` when ``idempotency_key`` was used before for other bytes.
        ``scope`` (see :meth:`stage`) makes the same bytes another object in another scope.
        """
        landed = self.stage(
            source,
            tenant_id,
            data,
            ext,
            idempotency_key=idempotency_key,
            day=day,
            content_type=content_type,
            meta=meta,
            scope=scope,
        )
        # Publishing again for a re-send is harmless: the event id is the key.
        if self.committer is None:
            event = landed.event
            self.bus.publish(OBJECT_REGISTERED, event.model_dump(mode="json"), event_id=event.key)
        else:
            self.committer.commit(landed.event)  # durable, then published, then we return
        return landed

    def stage(
        self,
        source: str,
        tenant_id: str,
        data: bytes,
        ext: str,
        *,
        idempotency_key: str | None = None,
        day: date | None = None,
        content_type: str = "application/octet-stream",
        meta: dict[str, str] | None = None,
        scope: str | None = None,
    ) -> Landed:
        """The blocking half of :meth:`land`: claim and write ``data``, announce nothing.

        With group commit the writes are not durable yet: follow with :meth:`announce`
        (awaited) before telling anyone the object landed. Without it they are durable, and
        :meth:`announce` only publishes.

        ``scope`` names what the bytes mean beyond themselves (e.g. the store a body that
        names none was sent for): the object id is then the hash of the scope and the bytes
        (or of the scope and the Idempotency-Key), so the same bytes sent for two stores are
        two objects, and a re-send for the same store is still one.
        """
        digest = hashlib.sha256(data).hexdigest()
        object_id = _object_id(data, idempotency_key, scope, digest)
        day = day or utcnow().astimezone(self._tz).date()
        key, created = self._claim(
            source,
            tenant_id,
            object_id,
            landing_key(source, tenant_id, day, object_id, ext),
            data,
            digest,
            idempotency_key,
            meta,
        )
        day = parse_partition(key)[1]
        event = ObjectRegistered(
            key=key,
            source=source,
            tenant_id=tenant_id,
            business_date=day,
            object_id=object_id,
            size=len(data),
            sha256=digest,
            content_type=content_type,
            registered_at=utcnow(),
            meta=meta or {},
        )
        log.debug("staged %s (%d bytes, new=%s)", key, len(data), created)
        return Landed(event=event, created=created)

    async def run_staged(
        self, stage: Callable[[], tuple[Landed, R]], *, inline: bool = True
    ) -> tuple[Landed, R]:
        """Run ``stage`` (blocking: it calls :meth:`stage`, and returns what it staged and a
        result of its own), then make that durable and announce it; returns once both
        happened. With group commit ``stage`` runs inside the committer's next round, so an
        event loop pays no thread hop per call (:meth:`GroupCommit.submit_async`); without,
        or when not ``inline``, it runs in a worker thread and :meth:`announce` follows.

        The committer runs the stages it is given one after the other: pass ``inline=False``
        for a long one (a big body's checks), which would hold up every other caller's.
        """
        if self.committer is not None and inline:

            def work() -> tuple[ObjectRegistered, tuple[Landed, R]]:
                landed, extra = stage()
                return landed.event, (landed, extra)

            return await self.committer.submit_async(work)
        loop = asyncio.get_running_loop()
        landed, extra = await loop.run_in_executor(None, stage)
        await self.announce(landed)
        return landed, extra

    async def announce(self, landed: Landed) -> None:
        """The async second half of :meth:`land`: make a :meth:`stage`'d object durable
        (one group-commit round shared with concurrent writers) and publish its
        ``ObjectRegistered``; returns once both happened. Without group commit the publish
        runs in a worker thread."""
        if self.committer is not None:
            await self.committer.commit_async(landed.event)
            return
        event = landed.event
        payload = event.model_dump(mode="json")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, partial(self.bus.publish, OBJECT_REGISTERED, payload, event_id=event.key)
        )

    def land_at(
        self,
        key: str,
        source: str,
        tenant_id: str,
        object_id: str,
        data: bytes,
        *,
        day: date,
        topic: str,
        content_type: str = "application/octet-stream",
        meta: dict[str, str] | None = None,
    ) -> Landed:
        """Keep ``data`` at a caller-chosen ``key`` (e.g. a ``video/...`` chunk) with the same
        claim-then-write durability as :meth:`land`, and publish ``ObjectRegistered`` on
        ``topic``. ``object_id`` names the object for ever: a re-send of the same bytes answers
        ``created=False``; other bytes are a :class:`Conflict`.
        """
        digest = hashlib.sha256(data).hexdigest()
        key, created = self._claim(source, tenant_id, object_id, key, data, digest, None, meta)
        event = ObjectRegistered(
            key=key,
            source=source,
            tenant_id=tenant_id,
            business_date=day,
            object_id=object_id,
            size=len(data),
            sha256=digest,
            content_type=content_type,
            registered_at=utcnow(),
            meta=meta or {},
        )
        if self.committer is not None:
            self.lake.sync()  # _claim wrote unsynced: durable before it is announced
        self.bus.publish(topic, event.model_dump(mode="json"), event_id=key)
        log.debug("landed %s (%d bytes, new=%s)", key, len(data), created)
        return Landed(event=event, created=created)

    def _claim(
        self,
        source: str,
        tenant_id: str,
        object_id: str,
        key: str,
        data: bytes,
        digest: str,
        idempotency_key: str | None,
        meta: dict[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Give ``object_id`` to these bytes, once: (the object's landing key, created).

        The claim (``ids/…``, created atomically) is the single point where concurrent senders
        of one id are ordered: the first one's bytes and landing key are the object's for
        good; a re-send of the same bytes — concurrent, or days later — answers with that
        key; other bytes are a :class:`Conflict`. The object itself is written after the
        claim, by whoever gets there (a winner that crashed in between is completed by the
        retry), so it is on disk before any caller hears 202.

        The claim also keeps what the sender said beside the bytes (``meta``, e.g. the store
        an Airレジ export was sent for), so ``landing/`` with ``ids/`` describes every object
        without the bus or the ledger.
        """
        ckey = claim_key(source, tenant_id, object_id)
        fields: dict[str, object] = {"key": key, "sha256": digest, "size": len(data)}
        if meta:
            fields["meta"] = meta
        claim = orjson.dumps(fields)
        deferred = self.committer is not None
        put_if_absent = self.lake.put_if_absent_unsynced if deferred else self.lake.put_if_absent
        put = self.lake.put_unsynced if deferred else self.lake.put
        if put_if_absent(ckey, claim):
            if put_if_absent(key, data):
                return key, True
            # An object landed before claims existed (same day): its bytes decide.
            kept_bytes = self.lake.get(key)
            kept = hashlib.sha256(kept_bytes).hexdigest()
            if kept != digest:
                if _damaged(kept_bytes, data):  # a crashed, never acknowledged write of these
                    put(key, data)
                    return key, True
                put(ckey, orjson.dumps({"key": key, "sha256": kept}))
                raise _conflict(idempotency_key, object_id)
            if deferred:
                self.lake.keep_unsynced(key, data)  # found in place: maybe not durable yet
            return key, False
        owner = _read_claim(self.lake, ckey)
        if owner is None:
            # Unreadable: its writer crashed before the sync, so nobody heard 202 for it.
            # Repaired under the lake's lock: another gateway repairing it too would give the
            # id to its own bytes over ours, both answered 202.
            with self.lake.exclusive():
                owner = _read_claim(self.lake, ckey)
                if owner is None:
                    log.warning("repairing the damaged claim %s", ckey)
                    put(ckey, claim)
                    put(key, data)
                    return key, True
        if owner["sha256"] != digest:
            raise _conflict(idempotency_key, object_id)
        key = str(owner["key"])
        wrote = put_if_absent(key, data)  # completes a claim whose writer crashed, or races it
        if not wrote:
            kept_bytes = self.lake.get(key)
            if kept_bytes != data and _damaged(kept_bytes, data):
                log.warning("repairing the damaged object %s", key)
                put(key, data)
            elif deferred:
                # A re-send answered from what is in place: the first sender's unsynced
                # writes may not be durable yet (it crashed before its sync), so the next
                # sync must cover them as well.
                self.lake.keep_unsynced(key, kept_bytes)
        if deferred:
            # The 202 relies on the claim, which another writer may have written unsynced
            # (this one's sync covers only its own journal): journal it too. A lost claim
            # would let a later re-send land the bytes again under a new key.
            self.lake.keep_unsynced(ckey, self.lake.get(ckey))
        # The object's bytes are this call's when it linked them: the claim's winner, still
        # on its way, then finds them in place and answers not created (one answer says so).
        return key, wrote

    def _publish_all(self, events: list[ObjectRegistered]) -> None:
        """One group-commit round's events, in one bus transaction where the bus has one."""
        pairs = [(e.key, e.model_dump(mode="json")) for e in events]
        many = getattr(self.bus, "publish_many", None)
        if many is not None:
            many(OBJECT_REGISTERED, pairs)
            return
        for event_id, payload in pairs:
            self.bus.publish(OBJECT_REGISTERED, payload, event_id=event_id)


def _object_id(
    data: bytes, idempotency_key: str | None, scope: str | None, digest: str | None = None
) -> str:
    """The object id of ``data``: its Idempotency-Key's or its content hash, per ``scope``
    (``digest``: the SHA-256 hex of ``data`` when the caller has it already)."""
    if scope is None:
        if idempotency_key:
            return idempotency_id(idempotency_key)
        return digest[:CONTENT_ID_CHARS] if digest is not None else content_id(data)
    if idempotency_key:
        return idempotency_id(f"{scope}\0{idempotency_key}")  # not path-safe: hashed
    return content_id(scope.encode() + b"\0" + data)


def _read_claim(lake: Lake, ckey: str) -> dict[str, object] | None:
    """The claim at ``ckey``; None when it is empty or cut short (a crashed, unsynced write)."""
    try:
        owner = orjson.loads(lake.get(ckey))
    except ValueError:
        return None
    if not isinstance(owner, dict) or "key" not in owner or "sha256" not in owner:
        return None
    return owner


def _damaged(kept: bytes, data: bytes) -> bool:
    """Whether ``kept`` is what a crash can leave of an unsynced write of ``data``: empty or a
    prefix of it."""
    return len(kept) < len(data) and data.startswith(kept)


def _conflict(idempotency_key: str | None, object_id: str) -> Conflict:
    if idempotency_key:
        return Conflict(
            f"Idempotency-Key {idempotency_key!r} was already used for different content"
        )
    return Conflict(f"object id {object_id!r} is already taken by different content")
