"""Group commit: nobody returns before the round that made its writes durable."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tenpo.bus.base import OBJECT_REGISTERED
from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import LakeError
from tenpo.core.ids import idempotency_id
from tenpo.lake import FsspecLake, LandingZone
from tenpo.lake.journal import CREATE, PUT, read_records
from tenpo.lake.keys import claim_key


class GatedLake(FsspecLake):
    """A local lake whose ``sync`` waits for ``gate`` and counts (or fails) its calls."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()
        self.syncs = 0
        self.fail: Exception | None = None

    def sync(self) -> None:
        self.gate.wait(10)
        self.syncs += 1
        if self.fail is not None:
            raise self.fail
        super().sync()


def _events(bus: MemoryBus) -> list[str]:
    return [d.event_id for d in bus.fetch(OBJECT_REGISTERED, "test", max_events=1000, timeout=0)]


def test_land_returns_only_after_the_sync_then_publishes(tmp_path: Path) -> None:
    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(zone.land, "iot", "t1", b'{"events": []}', "json")
        with pytest.raises(TimeoutError):
            pending.result(timeout=0.3)
        assert _events(bus) == []  # not announced before it is durable
        lake.gate.set()
        landed = pending.result(timeout=10)
    assert landed.created
    assert lake.get(landed.event.key) == b'{"events": []}'
    assert lake.syncs >= 1
    assert _events(bus) == [landed.event.key]
    zone.close()


def test_a_failed_sync_fails_every_writer_of_its_round(tmp_path: Path) -> None:
    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    lake.fail = LakeError("cannot make the lake's writes durable: EIO")
    zone = LandingZone(lake, bus, group_commit=True)
    with pytest.raises(LakeError, match="EIO"):
        zone.land("iot", "t1", b"x", "json")
    assert _events(bus) == []
    lake.fail = None  # the retry lands on the same object and announces it
    landed = zone.land("iot", "t1", b"x", "json")
    assert not landed.created
    assert _events(bus) == [landed.event.key]
    zone.close()


def test_concurrent_writers_share_rounds(tmp_path: Path) -> None:
    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()
    bodies = [f'{{"n": {i}}}'.encode() for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(zone.land, "iot", "t1", b, "json") for b in bodies]
        threading.Timer(0.3, lake.gate.set).start()
        landed = [f.result(timeout=20) for f in futures]
    assert lake.syncs < 32 / 2  # the 32 waited together (one or two rounds, not 32)
    assert sorted(lake.get(x.event.key) for x in landed) == sorted(bodies)
    assert sorted(_events(bus)) == sorted(x.event.key for x in landed)
    zone.close()


def test_a_damaged_claim_left_by_a_crash_is_completed_by_the_retry(tmp_path: Path) -> None:
    """A crash before the sync can leave an empty claim; nobody heard 202 for it."""
    lake, bus = FsspecLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    ckey = claim_key("iot", "t1", idempotency_id("key-1"))
    lake.put(ckey, b"")
    landed = zone.land("iot", "t1", b"body", "json", idempotency_key="key-1")
    assert landed.created
    assert lake.get(landed.event.key) == b"body"
    again = zone.land("iot", "t1", b"body", "json", idempotency_key="key-1")
    assert again.event.key == landed.event.key and not again.created
    zone.close()


class SlowRepairLake(FsspecLake):
    """A local lake whose rewrite of ``key`` pauses (up to ``pause`` s) once it began."""

    def __init__(self, root: str, key: str, pause: float) -> None:
        super().__init__(root)
        self.key, self.pause, self.repairing = key, pause, threading.Event()

    def put_unsynced(self, key: str, data: bytes) -> None:
        if key == self.key:
            self.repairing.set()
            threading.Event().wait(self.pause)  # another gateway runs meanwhile
        super().put_unsynced(key, data)


def test_two_gateways_never_both_repair_one_damaged_claim(tmp_path: Path) -> None:
    """Two processes find the same damaged claim: one repairs it with its bytes, the other
    then reads that claim (its other bytes are a Conflict), never a second repair that would
    overwrite an acknowledged object."""
    from tenpo.core.errors import Conflict

    ckey = claim_key("iot", "t1", idempotency_id("key-1"))
    first_lake = SlowRepairLake(str(tmp_path), ckey, pause=0.5)
    first_lake.put(ckey, b'{"key": "landing/io')  # cut short by a crash before its sync
    first = LandingZone(first_lake, MemoryBus(), group_commit=True)
    second = LandingZone(FsspecLake(str(tmp_path)), MemoryBus(), group_commit=True)
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(first.land, "iot", "t1", b"first", "json", idempotency_key="key-1")
        assert first_lake.repairing.wait(10)
        other = pool.submit(second.land, "iot", "t1", b"other", "json", idempotency_key="key-1")
        landed = one.result(timeout=20)
        with pytest.raises(Conflict):
            other.result(timeout=20)
    assert landed.created and first_lake.get(landed.event.key) == b"first"
    first.close()
    second.close()


def test_a_damaged_object_under_a_valid_claim_is_completed_by_the_retry(tmp_path: Path) -> None:
    lake, bus = FsspecLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    first = zone.land("iot", "t1", b"0123456789", "json", idempotency_key="k")
    lake.put(first.event.key, b"01234")  # what a crash can leave of an unsynced write
    again = zone.land("iot", "t1", b"0123456789", "json", idempotency_key="k")
    assert again.event.key == first.event.key
    assert lake.get(first.event.key) == b"0123456789"
    zone.close()


def test_unsynced_puts_become_durable_with_sync(tmp_path: Path) -> None:
    lake = FsspecLake(str(tmp_path))
    assert lake.put_if_absent_unsynced("a/b/c.json", b"1")
    assert not lake.put_if_absent_unsynced("a/b/c.json", b"2")
    lake.put_unsynced("a/b/d.json", b"3")
    assert lake.get("a/b/c.json") == b"1" and lake.get("a/b/d.json") == b"3"
    lake.sync()  # one fdatasync of the journal segment that holds both writes
    segments = sorted((tmp_path / ".journal").glob("*.log"))  # (and a preallocated spare)
    records = [r for segment in segments for r in read_records(segment.read_bytes())]
    assert records == [
        (CREATE, "a/b/c.json", b"1"),
        (PUT, "a/b/d.json", b"3"),
    ]
    assert lake.list("") == ["a/b/c.json", "a/b/d.json"]  # the journal holds no objects
    lake.checkpoint()  # durable in place (syncfs or fsyncs), the segment deleted
    assert list((tmp_path / ".journal").glob("*.log")) == []


def test_async_callers_share_a_round_and_hear_only_after_the_sync(tmp_path: Path) -> None:
    """run_staged: the works of concurrent async callers run in the committer's round (one
    after the other, in the committer thread), the loop is answered after the sync and the
    publish, each caller gets its own result."""
    import asyncio

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()

    def stage(i: int) -> tuple[object, int]:
        return zone.stage("iot", "t1", b'{"n": %d}' % i, "json"), i * 10

    async def main() -> list[tuple[object, int]]:
        tasks = [asyncio.ensure_future(zone.run_staged(lambda i=i: stage(i))) for i in range(5)]
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in tasks)  # the round waits for the sync
        assert _events(bus) == []
        lake.gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert [extra for _, extra in results] == [0, 10, 20, 30, 40]
    keys = [landed.event.key for landed, _ in results]  # type: ignore[attr-defined]
    assert sorted(_events(bus)) == sorted(keys)
    assert [lake.get(k) for k in keys] == [b'{"n": %d}' % i for i in range(5)]
    assert lake.syncs <= 2 and zone.committer is not None and zone.committer.rounds <= 2
    zone.close()


def test_async_work_errors_stay_their_callers_and_a_failed_sync_fails_the_round(
    tmp_path: Path,
) -> None:
    import asyncio

    from tenpo.core.errors import Conflict

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)

    def bad() -> tuple[object, None]:
        raise Conflict("taken")

    def good() -> tuple[object, None]:
        return zone.stage("iot", "t1", b"{}", "json"), None

    async def main() -> list[object]:
        return await asyncio.gather(
            zone.run_staged(bad), zone.run_staged(good), return_exceptions=True
        )

    first = asyncio.run(main())
    assert isinstance(first[0], Conflict) and not isinstance(first[1], BaseException)
    assert len(_events(bus)) == 1  # only the good one was announced
    lake.fail = LakeError("cannot make the lake's writes durable: EIO")

    def other() -> tuple[object, None]:
        return zone.stage("iot", "t1", b'{"x": 1}', "json"), None

    second = asyncio.run(_one(zone, other))
    assert isinstance(second, LakeError)
    assert _events(bus) == []  # nothing (new) announced from the failed round
    zone.close()


async def _one(zone: LandingZone, work: object) -> object:
    try:
        return await zone.run_staged(work)
    except LakeError as exc:
        return exc


def test_the_next_rounds_works_run_while_a_sync_waits_and_are_answered_after_their_own(
    tmp_path: Path,
) -> None:
    """The pipeline: a work asked while a round's sync waits on the disk is run meanwhile
    (not after that round, as a single committer thread did), yet its caller is answered
    only after a sync that began after the work: the one under way does not cover it."""
    import asyncio

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()
    ran = threading.Event()

    def first() -> tuple[object, int]:
        return zone.stage("iot", "t1", b'{"n": 1}', "json"), 1

    def second() -> tuple[object, int]:
        ran.set()
        return zone.stage("iot", "t1", b'{"n": 2}', "json"), 2

    async def main() -> tuple[bool, bool, list[str], int]:
        one = asyncio.ensure_future(zone.run_staged(first))
        await asyncio.sleep(0.2)  # its round is under way: its sync waits for the gate
        two = asyncio.ensure_future(zone.run_staged(second))
        ran_meanwhile = await asyncio.to_thread(ran.wait, 5)
        answered_early = one.done() or two.done()
        lake.gate.set()
        results = await asyncio.gather(one, two)
        return ran_meanwhile, answered_early, [r[0].event.key for r in results], lake.syncs

    ran_meanwhile, answered_early, keys, syncs = asyncio.run(main())
    assert ran_meanwhile and not answered_early
    assert syncs == 2  # the second work's own round, after the first's
    assert sorted(_events(bus)) == sorted(keys)
    zone.close()


class GatedBus(MemoryBus):
    """A memory bus whose first publish waits for ``gate`` (``entered`` is set meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def publish(self, topic: str, payload: dict[str, object], event_id: str) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.gate.wait(10)
        super().publish(topic, payload, event_id)


def test_a_rounds_publish_overlaps_the_next_rounds_sync_and_answers_wait_for_their_own(
    tmp_path: Path,
) -> None:
    """While a round's events are being published, the next round is already synced (not
    after that publish, as when one thread synced and published); each writer still returns
    only after its own events are published."""
    import time

    lake, bus = GatedLake(str(tmp_path)), GatedBus()
    zone = LandingZone(lake, bus, group_commit=True)
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(zone.land, "iot", "t1", b'{"n": 1}', "json")
        assert bus.entered.wait(10)  # its publish is held
        two = pool.submit(zone.land, "iot", "t1", b'{"n": 2}', "json")
        deadline = time.monotonic() + 5
        while lake.syncs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        synced_meanwhile = lake.syncs == 2
        answered_early = one.done() or two.done()
        bus.gate.set()
        keys = [one.result(timeout=10).event.key, two.result(timeout=10).event.key]
    assert synced_meanwhile and not answered_early
    assert sorted(_events(bus)) == sorted(keys)
    zone.close()


class _Uncopyable(Exception):
    """An error ``copy.copy`` cannot rebuild (a keyword-only argument of its own)."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message)
        self.where = where


def test_an_error_that_cannot_be_copied_strands_no_caller_of_its_round(tmp_path: Path) -> None:
    """Every caller of a round is answered even when one work raised an error that cannot be
    copied: its caller gets that error itself, the others their results."""
    import asyncio

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()  # the round waits: both works are answered by the same settle

    def bad() -> tuple[object, None]:
        raise _Uncopyable("broken", where="check")

    def good() -> tuple[object, int]:
        return zone.stage("iot", "t1", b'{"ok": 1}', "json"), 7

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(zone.run_staged(w)) for w in (bad, good)]
        await asyncio.sleep(0.2)
        lake.gate.set()
        done, _ = await asyncio.wait(tasks, timeout=5)
        return [t.exception() or t.result() if t in done else "hanging" for t in tasks]

    try:
        first, second = asyncio.run(main())
    finally:
        zone.close()
    assert isinstance(first, _Uncopyable) and first.where == "check"
    assert second != "hanging" and second[1] == 7  # type: ignore[index]


def test_close_with_rounds_in_flight_answers_every_caller_then_checkpoints(
    tmp_path: Path,
) -> None:
    """A shutdown while a round's sync waits on the disk: close() waits for every work
    asked, its sync and its publish; every caller is answered, and the journal is gone."""
    import asyncio

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)
    lake.gate.clear()
    closed = threading.Event()

    def work(i: int) -> tuple[object, int]:
        return zone.stage("iot", "t1", b'{"n": %d}' % i, "json"), i

    async def main() -> tuple[list[tuple[object, int]], bool]:
        tasks = [asyncio.ensure_future(zone.run_staged(lambda i=i: work(i))) for i in range(20)]
        await asyncio.sleep(0.2)
        closer = threading.Thread(target=lambda: (zone.close(), closed.set()))
        closer.start()
        await asyncio.sleep(0.3)
        closed_early = closed.is_set()
        lake.gate.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        await asyncio.to_thread(closer.join, 10)
        return results, closed_early

    results, closed_early = asyncio.run(main())
    assert not closed_early and closed.is_set()
    assert [i for _, i in results] == list(range(20))
    assert len(_events(bus)) == 20
    assert list((tmp_path / ".journal").glob("*.log")) == []


def test_of_two_concurrent_senders_of_one_object_exactly_one_hears_created(
    tmp_path: Path,
) -> None:
    """Same Idempotency-Key, same bytes, at once (two gateway processes, or two worker
    threads): the claim's winner is overtaken by the other, which writes the object. One
    of them wrote it, so one answer says created (the old code: neither did)."""

    class PausingLake(FsspecLake):
        def __init__(self, root: str) -> None:
            super().__init__(root)
            self.claimed, self.go = threading.Event(), threading.Event()

        def put_if_absent_unsynced(self, key: str, data: bytes) -> bool:
            if key.startswith("landing/") and threading.current_thread().name == "first":
                self.claimed.set()  # its claim is written, its object not yet
                self.go.wait(10)
            return super().put_if_absent_unsynced(key, data)

    lake = PausingLake(str(tmp_path))
    zone = LandingZone(lake, MemoryBus(), group_commit=True)
    answers: dict[str, bool] = {}

    def send(name: str) -> None:
        answers[name] = zone.stage("iot", "t1", b"body", "json", idempotency_key="k").created

    first = threading.Thread(target=send, args=("first",), name="first")
    first.start()
    assert lake.claimed.wait(10)
    send("second")  # finds the claim, writes the object
    lake.go.set()
    first.join(10)
    assert sorted(answers.values()) == [False, True], answers
    assert lake.list("landing/") == [f"landing/iot/tenant=t1/date={_today(zone)}/k-k.json"]
    zone.close()


def _today(zone: LandingZone) -> str:
    from tenpo.core.ids import utcnow

    return utcnow().astimezone(zone._tz).date().isoformat()


def test_a_work_raising_a_base_exception_strands_no_later_caller(tmp_path: Path) -> None:
    """A work that raises SystemExit (not an Exception) ended the stager thread: its caller
    and every later one waited for good. Now that caller gets a LakeError (SystemExit itself
    would stop the caller's event loop) and the stager goes on with the next."""
    import asyncio

    lake, bus = GatedLake(str(tmp_path)), MemoryBus()
    zone = LandingZone(lake, bus, group_commit=True)

    def bad() -> tuple[object, None]:
        raise SystemExit(3)

    def good() -> tuple[object, int]:
        return zone.stage("iot", "t1", b'{"ok": 2}', "json"), 2

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(zone.run_staged(w)) for w in (bad, good)]
        done, _ = await asyncio.wait(tasks, timeout=5)
        later = await asyncio.wait_for(zone.run_staged(good), 5)
        return [t.exception() or t.result() if t in done else "hanging" for t in tasks] + [later]

    try:
        first, second, later = asyncio.run(main())
    finally:
        zone.close()
    assert isinstance(first, LakeError) and "SystemExit(3)" in str(first)
    assert second != "hanging" and second[1] == 2 and later[1] == 2  # type: ignore[index]
