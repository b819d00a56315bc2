"""The EventBus contract (see ``tenpo.bus.base``), run on the SQLite outbox and on NATS."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import pytest

from tenpo.bus.base import OBJECT_REGISTERED, PARTITIONS_CHANGED, Delivery, EventBus
from tenpo.core.errors import BadInput, BusError
from tests.bus.conftest import BusFactory

TOPIC = OBJECT_REGISTERED


def publish_range(bus: EventBus, n: int, topic: str = TOPIC, start: int = 0) -> None:
    for i in range(start, start + n):
        bus.publish(topic, {"n": i}, event_id=f"e{i}")


def numbers(deliveries: list[Delivery]) -> list[int]:
    return [d.payload["n"] for d in deliveries]


def drain(bus: EventBus, consumer: str, batch: int = 100) -> list[Delivery]:
    """Fetch and ack until nothing is left; everything delivered, in order."""
    seen: list[Delivery] = []
    while batch_ := bus.fetch(TOPIC, consumer, max_events=batch, timeout=0.2):
        for delivery in batch_:
            bus.ack(delivery)
        seen.extend(batch_)
    return seen


def test_publish_fetch_ack(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    payload: dict[str, Any] = {"key": "landing/pos/t1/2024-05-01/abc.json", "size": 12}
    bus.publish(TOPIC, payload, event_id="evt-1")
    bus.publish(TOPIC, {"n": 2, "nested": {"ok": [1, 2]}, "name": "東京"}, event_id="evt-2")

    got = bus.fetch(TOPIC, "streamer", max_events=10, timeout=2)

    assert [(d.topic, d.event_id, d.attempt) for d in got] == [
        (TOPIC, "evt-1", 1),
        (TOPIC, "evt-2", 1),
    ]
    assert got[0].payload == payload
    assert got[1].payload == {"n": 2, "nested": {"ok": [1, 2]}, "name": "東京"}
    assert bus.pending(TOPIC, "streamer") == 2
    for delivery in got:
        bus.ack(delivery)
    bus.ack(got[0])  # acking twice is harmless
    assert bus.fetch(TOPIC, "streamer", timeout=0.2) == []
    assert bus.pending(TOPIC, "streamer") == 0


def test_payload_dates_become_iso_strings(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.publish(TOPIC, {"business_date": date(2024, 5, 1)}, event_id="d")
    [delivery] = bus.fetch(TOPIC, "c", timeout=2)
    assert delivery.payload == {"business_date": "2024-05-01"}


def test_publish_is_idempotent_per_event_id(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.publish(TOPIC, {"n": 1}, event_id="same")
    bus.publish(TOPIC, {"n": 1, "resent": True}, event_id="same")
    bus.publish(TOPIC, {"n": 2}, event_id="other")
    # The same id on another topic is another event.
    bus.publish(PARTITIONS_CHANGED, {"n": 3}, event_id="same")

    got = bus.fetch(TOPIC, "c", max_events=10, timeout=2)
    assert [(d.event_id, d.payload) for d in got] == [("same", {"n": 1}), ("other", {"n": 2})]
    assert bus.pending(TOPIC, "c") == 2
    [other_topic] = bus.fetch(PARTITIONS_CHANGED, "c", max_events=10, timeout=2)
    assert (other_topic.topic, other_topic.event_id, other_topic.payload) == (
        PARTITIONS_CHANGED,
        "same",
        {"n": 3},
    )


def test_two_consumers_each_see_everything(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 5)

    assert numbers(drain(bus, "streamer")) == [0, 1, 2, 3, 4]
    assert bus.pending(TOPIC, "streamer") == 0
    assert bus.pending(TOPIC, "auditor") == 5
    assert numbers(drain(bus, "auditor")) == [0, 1, 2, 3, 4]


def test_topics_are_separate(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 2, topic=TOPIC)
    publish_range(bus, 3, topic=PARTITIONS_CHANGED, start=10)

    assert numbers(bus.fetch(PARTITIONS_CHANGED, "c", timeout=2)) == [10, 11, 12]
    assert numbers(bus.fetch(TOPIC, "c", timeout=2)) == [0, 1]


def test_events_published_before_and_after_first_fetch_are_delivered(
    bus_factory: BusFactory,
) -> None:
    bus = bus_factory()
    publish_range(bus, 3)
    assert numbers(drain(bus, "late")) == [0, 1, 2]
    publish_range(bus, 2, start=3)
    assert numbers(drain(bus, "late")) == [3, 4]


def test_durable_across_reopen(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 4)
    [first] = bus.fetch(TOPIC, "streamer", max_events=1, timeout=2)
    bus.ack(first)
    bus.close()

    reopened = bus_factory()
    assert reopened.pending(TOPIC, "streamer") == 3
    assert numbers(drain(reopened, "streamer")) == [1, 2, 3]


def test_unacked_delivery_is_redelivered_after_ack_wait(bus_factory: BusFactory) -> None:
    bus = bus_factory(ack_wait=0.5)
    publish_range(bus, 2)
    got = bus.fetch(TOPIC, "c", max_events=10, timeout=2)
    assert [d.attempt for d in got] == [1, 1]
    bus.ack(got[1])
    # In flight: not handed out again before ack_wait.
    assert bus.fetch(TOPIC, "c", timeout=0.1) == []

    again = bus.fetch(TOPIC, "c", max_events=10, timeout=3)

    assert [(d.event_id, d.attempt) for d in again] == [("e0", 2)]
    assert again[0].payload == {"n": 0}
    bus.ack(again[0])
    assert bus.pending(TOPIC, "c") == 0


def test_nak_redelivers_at_once(bus_factory: BusFactory) -> None:
    bus = bus_factory(ack_wait=30)
    publish_range(bus, 3)
    got = bus.fetch(TOPIC, "c", max_events=10, timeout=2)
    bus.ack(got[0])
    bus.nak(got[1])

    start = time.monotonic()
    again = bus.fetch(TOPIC, "c", max_events=10, timeout=2)

    assert time.monotonic() - start < 0.5
    assert [(d.event_id, d.attempt) for d in again] == [("e1", 2)]
    assert bus.pending(TOPIC, "c") == 2  # e1 and e2 in flight


def test_order_is_preserved_across_batches(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 40)
    assert numbers(drain(bus, "c", batch=7)) == list(range(40))


def test_fetch_respects_max_events(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 5)
    assert numbers(bus.fetch(TOPIC, "c", max_events=2, timeout=2)) == [0, 1]
    assert numbers(bus.fetch(TOPIC, "c", max_events=2, timeout=2)) == [2, 3]


def test_fetch_returns_empty_after_timeout(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    start = time.monotonic()
    assert bus.fetch(TOPIC, "c", timeout=0.3) == []
    assert 0.25 <= time.monotonic() - start < 1.0

    start = time.monotonic()
    assert bus.fetch(TOPIC, "c", timeout=0) == []
    assert time.monotonic() - start < 0.5


def test_fetch_returns_as_soon_as_events_exist(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    publish_range(bus, 1)
    start = time.monotonic()
    assert numbers(bus.fetch(TOPIC, "c", max_events=10, timeout=5)) == [0]
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.publish("objects.*", {}, "e"), "invalid topic 'objects.*'"),
        (lambda b: b.publish("", {}, "e"), "invalid topic ''"),
        (lambda b: b.publish("a..b", {}, "e"), "invalid topic 'a..b'"),
        (lambda b: b.publish(TOPIC, {}, " "), "invalid event_id ' '"),
        (lambda b: b.publish(TOPIC, {}, "x" * 600), "at most 512"),
        (lambda b: b.publish(TOPIC, {}, "a\r\nb"), "control characters are not allowed"),
        (lambda b: b.publish(TOPIC, [1, 2], "e"), "payload must be a dict, not list"),
        (lambda b: b.publish(TOPIC, {"x": float("nan")}, "e"), "not JSON-serialisable"),
        (lambda b: b.fetch(TOPIC, "a.b"), "invalid consumer name 'a.b'"),
        (lambda b: b.fetch(TOPIC, ""), "invalid consumer name ''"),
        (lambda b: b.fetch(TOPIC, "c", max_events=0), "max_events must be a positive int"),
        (lambda b: b.fetch(TOPIC, "c", timeout=-1), "timeout must be >= 0"),
        (lambda b: b.pending("objects.>", "c"), "invalid topic 'objects.>'"),
    ],
)
def test_bad_arguments_are_rejected(bus_factory: BusFactory, call: Any, message: str) -> None:
    bus = bus_factory()
    with pytest.raises(BadInput, match=re.escape(message)):
        call(bus)


def test_ack_of_a_foreign_delivery_is_refused(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    stranger = Delivery(topic=TOPIC, event_id="e9", payload={}, attempt=1, token=object())
    with pytest.raises(BusError, match="'e9' was not fetched from"):
        bus.ack(stranger)
    with pytest.raises(BusError, match="'e9' was not fetched from"):
        bus.nak(stranger)


def test_closed_bus_refuses_work(bus_factory: BusFactory) -> None:
    bus = bus_factory()
    bus.close()
    bus.close()  # idempotent
    with pytest.raises(BusError, match="closed"):
        bus.publish(TOPIC, {}, "e")
