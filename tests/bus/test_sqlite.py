"""What only the SQLite outbox promises: several processes on one file, speed, compaction."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from tenpo.bus import open_bus
from tenpo.bus.base import OBJECT_REGISTERED, Delivery
from tenpo.bus.sqlite import SqliteBus
from tenpo.core.errors import BadInput, BusError
from tenpo.core.settings import Settings
from tests.bus._workers import publish_worker

TOPIC = OBJECT_REGISTERED


def test_two_processes_publishing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    SqliteBus(path, ack_wait=30).close()  # create the schema before the race
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=publish_worker, args=(str(path), p, 300)) for p in "ab"]
    for worker in workers:
        worker.start()
    with SqliteBus(path, ack_wait=30) as consumer:
        seen: list[Delivery] = []
        deadline = time.monotonic() + 20
        while len(seen) < 600 and time.monotonic() < deadline:
            batch = consumer.fetch(TOPIC, "streamer", max_events=100, timeout=0.5)
            for delivery in batch:
                consumer.ack(delivery)
            seen.extend(batch)
        for worker in workers:
            worker.join(timeout=20)
            assert worker.exitcode == 0
        seen.extend(consumer.fetch(TOPIC, "streamer", max_events=1000, timeout=0))

        assert sorted(d.event_id for d in seen) == sorted(
            f"{p}-{i}" for p in "ab" for i in range(300)
        )
        for producer in "ab":  # each producer's events arrive in its publish order
            mine = [d.payload["i"] for d in seen if d.payload["producer"] == producer]
            assert mine == list(range(300))
        assert consumer.pending(TOPIC, "streamer") == 0


def test_concurrent_fetchers_never_claim_the_same_event(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    with SqliteBus(path, ack_wait=30) as bus:
        bus.publish_many(TOPIC, [(f"e{i}", {"i": i}) for i in range(400)])
    claimed: list[list[int]] = [[], [], []]

    def work(slot: int) -> None:
        with SqliteBus(path, ack_wait=30) as own:
            while batch := own.fetch(TOPIC, "streamer", max_events=7, timeout=0):
                claimed[slot].extend(d.payload["i"] for d in batch)
                for delivery in batch:
                    own.ack(delivery)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    everything = claimed[0] + claimed[1] + claimed[2]
    assert sorted(everything) == list(range(400))  # each event exactly once


def test_ten_thousand_events_in_a_second_or_two(tmp_path: Path) -> None:
    with SqliteBus(tmp_path / "bus.db", ack_wait=30) as bus:
        start = time.monotonic()
        stored = bus.publish_many(TOPIC, ((f"e{i}", {"i": i}) for i in range(10_000)))
        count = 0
        while batch := bus.fetch(TOPIC, "streamer", max_events=200, timeout=0):
            for delivery in batch:
                bus.ack(delivery)
            count += len(batch)
        elapsed = time.monotonic() - start

        assert (stored, count) == (10_000, 10_000)
        assert bus.pending(TOPIC, "streamer") == 0
        assert elapsed < 6, f"10k events took {elapsed:.1f}s"


def test_publish_many_counts_only_new_events(tmp_path: Path) -> None:
    with SqliteBus(tmp_path / "bus.db", ack_wait=30) as bus:
        assert bus.publish_many(TOPIC, [("a", {"n": 1}), ("b", {"n": 2})]) == 2
        assert bus.publish_many(TOPIC, [("b", {"n": 2}), ("c", {"n": 3}), ("c", {})]) == 1
        assert bus.publish_many(TOPIC, []) == 0
        assert [d.event_id for d in bus.fetch(TOPIC, "x", timeout=0)] == ["a", "b", "c"]


def test_compact_deletes_only_what_every_consumer_acked(tmp_path: Path) -> None:
    with SqliteBus(tmp_path / "bus.db", ack_wait=30) as bus:
        bus.publish_many(TOPIC, [(f"e{i}", {"i": i}) for i in range(6)])
        bus.publish("partitions.changed", {"i": 0}, event_id="p0")  # nobody consumes it
        fast = bus.fetch(TOPIC, "fast", max_events=10, timeout=0)
        for delivery in fast:
            bus.ack(delivery)
        slow = bus.fetch(TOPIC, "slow", max_events=4, timeout=0)
        for delivery in slow[:2] + slow[3:]:  # e2 stays unacked: e3 cannot go either
            bus.ack(delivery)

        assert bus.compact(older_than=3600) == 0  # too recent
        assert bus.compact() == 2  # e0, e1

        assert bus.pending(TOPIC, "slow") == 3
        assert bus.pending(TOPIC, "fast") == 0
        assert bus.pending("partitions.changed", "late") == 1
        bus.nak(slow[2])
        assert [d.event_id for d in bus.fetch(TOPIC, "slow", timeout=0)] == ["e2", "e4", "e5"]
        with pytest.raises(BadInput, match="older_than must be >= 0"):
            bus.compact(older_than=-1)


def test_sequence_numbers_are_not_reused_after_compaction(tmp_path: Path) -> None:
    with SqliteBus(tmp_path / "bus.db", ack_wait=30) as bus:
        bus.publish(TOPIC, {"i": 0}, event_id="e0")
        [delivery] = bus.fetch(TOPIC, "c", timeout=0)
        bus.ack(delivery)
        assert bus.compact() == 1
        bus.publish(TOPIC, {"i": 1}, event_id="e1")
        assert [d.event_id for d in bus.fetch(TOPIC, "c", timeout=0)] == ["e1"]


def test_stale_nak_does_not_release_a_newer_delivery(tmp_path: Path) -> None:
    with SqliteBus(tmp_path / "bus.db", ack_wait=0.2) as bus:
        bus.publish(TOPIC, {"i": 0}, event_id="e0")
        [first] = bus.fetch(TOPIC, "c", timeout=0)
        [second] = bus.fetch(TOPIC, "c", timeout=2)  # redelivered after ack_wait
        assert (first.attempt, second.attempt) == (1, 2)
        bus.nak(first)  # the first worker gives up late: the second still holds it
        assert bus.fetch(TOPIC, "c", timeout=0) == []


def test_delivery_from_another_file_is_refused(tmp_path: Path) -> None:
    with (
        SqliteBus(tmp_path / "a.db", ack_wait=30) as a,
        SqliteBus(tmp_path / "b.db", ack_wait=30) as b,
    ):
        a.publish(TOPIC, {}, event_id="e0")
        [delivery] = a.fetch(TOPIC, "c", timeout=0)
        with pytest.raises(BusError, match="'e0' was not fetched from SqliteBus"):
            b.ack(delivery)


def test_unopenable_file_is_a_bus_error(tmp_path: Path) -> None:
    with pytest.raises(BusError, match="cannot open the SQLite bus at .*missing"):
        SqliteBus(tmp_path / "missing" / "bus.db", ack_wait=30)


def test_ack_wait_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="ack_wait must be > 0"):
        SqliteBus(tmp_path / "bus.db", ack_wait=0)


def test_open_bus_defaults_to_the_sqlite_outbox(settings: Settings) -> None:
    with open_bus(settings) as bus:
        assert isinstance(bus, SqliteBus)
        assert bus.path == settings.bus_path
        assert bus.ack_wait == settings.bus_ack_wait_s
