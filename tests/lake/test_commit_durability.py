"""Group commit under concurrency, checked against what a power loss would keep: every
caller answered without an error has its object and its claim in a journal ``fdatasync``
that *completed* before the answer and *began* after the write (the bytes are read from the
segment when the sync begins), and its event published; failing syncs answer their round
with errors, leave nobody hanging, and later rounds still succeed."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import pytest

import tenpo.lake.journal as journal_module
from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import Conflict, LakeError
from tenpo.lake import FsspecLake, LandingZone
from tenpo.lake.journal import read_records
from tenpo.lake.keys import claim_key


class _Recorder:
    """Replaces the journal's ``fdatasync``: what each completed one made durable."""

    def __init__(self, fail_every: int = 0) -> None:
        self.lock = threading.Lock()
        self.durable: set[tuple[str, bytes]] = set()
        self.calls = 0
        self.fail_every = fail_every
        self.real = journal_module._datasync

    def __call__(self, fd: int) -> None:
        with open(f"/proc/self/fd/{fd}", "rb") as fh:  # (the segment's fd is write-only)
            snapshot = fh.read()  # what this sync can cover: written before it began
        with self.lock:
            self.calls += 1
            failing = self.fail_every and self.calls % self.fail_every == 0
        if failing:
            raise OSError(5, "Input/output error (injected)")
        self.real(fd)
        with self.lock:
            self.durable.update((key, data) for _, key, data in read_records(snapshot))


class _PublishedBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: set[str] = set()
        self.lock = threading.Lock()

    def publish(self, topic: str, payload: dict[str, Any], event_id: str) -> None:
        super().publish(topic, payload, event_id)
        with self.lock:
            self.published.add(event_id)


@pytest.mark.parametrize("fail_every", [0, 3])
def test_every_answer_follows_a_sync_that_covers_it_and_its_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_every: int
) -> None:
    recorder = _Recorder(fail_every)
    monkeypatch.setattr(journal_module, "_datasync", recorder)
    lake, bus = FsspecLake(str(tmp_path)), _PublishedBus()
    zone = LandingZone(lake, bus, group_commit=True)
    rng = random.Random(7)
    bodies = [b'{"n": %d}' % rng.randrange(40) for _ in range(300)]  # many re-sends
    keys = [f"k{rng.randrange(60)}" if rng.random() < 0.5 else None for _ in bodies]
    violations: list[str] = []
    outcomes: dict[str, int] = {"ok": 0, "conflict": 0, "lake": 0}

    def check(body: bytes, idem: str | None) -> Any:
        landed = zone.stage("iot", "t1", body, "json", idempotency_key=idem)
        return landed, None

    async def one(i: int) -> None:
        await asyncio.sleep(rng.random() * 0.05)
        try:
            landed, _ = await zone.run_staged(lambda: check(bodies[i], keys[i]))
        except Conflict:
            outcomes["conflict"] += 1
            return
        except LakeError:
            outcomes["lake"] += 1
            return
        outcomes["ok"] += 1
        event = landed.event
        ckey = claim_key("iot", "t1", event.object_id)
        with recorder.lock:
            durable = set(recorder.durable)
        if (event.key, bodies[i]) not in durable:
            violations.append(f"{i}: object {event.key} answered before a sync covered it")
        if (ckey, lake.get(ckey)) not in durable:
            violations.append(f"{i}: claim {ckey} answered before a sync covered it")
        if event.key not in bus.published:
            violations.append(f"{i}: {event.key} answered before it was published")

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(len(bodies)))), 60)

    try:
        asyncio.run(main())
    finally:
        zone.close()
    assert violations == []
    assert outcomes["ok"] > 100
    assert bool(outcomes["lake"]) == bool(fail_every)  # injected failures reach their round
    assert sum(outcomes.values()) == len(bodies)  # nobody left hanging (wait_for)
