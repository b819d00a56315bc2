"""What only the NATS bus promises: clear, quick failure without a server; the stream layout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import nats
import pytest

from tenpo.bus.base import OBJECT_REGISTERED
from tenpo.bus.nats import NatsBus
from tenpo.core.errors import BadInput, BusError
from tests.bus.conftest import BusFactory

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_server_is_a_bus_error_quickly() -> None:
    url = f"nats://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(BusError, match=f"NATS {url} is unreachable"):
        NatsBus(url, stream="tenpo_unreachable", ack_wait=1)
    assert time.monotonic() - start < 5


def test_invalid_stream_name_is_refused() -> None:
    with pytest.raises(BadInput, match="invalid stream name 'tenpo.events'"):
        NatsBus("nats://127.0.0.1:1", stream="tenpo.events", ack_wait=1)


async def _stream_layout(url: str, stream: str) -> tuple[list[str], list[str], float]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        names = sorted(str(c.name) for c in await js.consumers_info(stream))
        consumer = await js.consumer_info(stream, names[0])
        return list(info.config.subjects or []), names, float(consumer.config.ack_wait or 0)
    finally:
        await nc.close()


def test_stream_and_durable_consumer_layout(nats_bus_factory: BusFactory, nats_url: str) -> None:
    bus = nats_bus_factory(ack_wait=2.5)
    assert isinstance(bus, NatsBus)
    bus.publish(OBJECT_REGISTERED, {"n": 1}, event_id="e1")
    assert len(bus.fetch(OBJECT_REGISTERED, "streamer", timeout=2)) == 1

    subjects, consumers, ack_wait = asyncio.run(_stream_layout(nats_url, bus.stream))

    assert subjects == [f"{bus.stream}.>"]
    assert consumers == ["streamer__objects_registered"]
    assert ack_wait == 2.5

    # Reopening with another ack_wait updates the durable consumer and keeps its progress.
    reopened = nats_bus_factory(ack_wait=4)
    assert reopened.pending(OBJECT_REGISTERED, "streamer") == 1
    assert asyncio.run(_stream_layout(nats_url, bus.stream))[2] == 4


def test_threads_sharing_one_bus_never_get_the_same_event(
    nats_bus_factory: BusFactory,
) -> None:
    bus = nats_bus_factory(ack_wait=30)
    for i in range(60):
        bus.publish(OBJECT_REGISTERED, {"i": i}, event_id=f"e{i}")
    claimed: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        while batch := bus.fetch(OBJECT_REGISTERED, "streamer", max_events=5, timeout=0.2):
            for delivery in batch:
                bus.ack(delivery)
            with lock:
                claimed.extend(d.payload["i"] for d in batch)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert sorted(claimed) == list(range(60))
