"""Fixtures of the bus tests: one factory per implementation, cleaned up after each test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest

from tenpo.bus.base import EventBus
from tenpo.bus.nats import NatsBus
from tenpo.bus.sqlite import SqliteBus

BusFactory = Callable[..., EventBus]
"""``open_bus(ack_wait=1.0)``: a new bus object on the test's store (same file / stream)."""


async def _delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
def sqlite_bus_factory(tmp_path: Path) -> Iterator[BusFactory]:
    """Opens ``SqliteBus`` objects on one file in ``tmp_path``."""
    opened: list[EventBus] = []

    def open_bus(ack_wait: float = 1.0) -> EventBus:
        bus = SqliteBus(tmp_path / "bus.db", ack_wait=ack_wait)
        opened.append(bus)
        return bus

    yield open_bus
    for bus in opened:
        bus.close()


@pytest.fixture
def nats_bus_factory(request: pytest.FixtureRequest) -> Iterator[BusFactory]:
    """Opens ``NatsBus`` objects on one fresh stream, deleted afterwards."""
    url: str = request.getfixturevalue("nats_url")
    stream = f"tenpo_test_{uuid.uuid4().hex[:12]}"
    opened: list[EventBus] = []

    def open_bus(ack_wait: float = 1.0) -> EventBus:
        bus = NatsBus(url, stream=stream, ack_wait=ack_wait)
        opened.append(bus)
        return bus

    yield open_bus
    for bus in opened:
        bus.close()
    asyncio.run(_delete_stream(url, stream))


@pytest.fixture(
    params=["sqlite", pytest.param("nats", marks=pytest.mark.integration)],
)
def bus_factory(request: pytest.FixtureRequest) -> BusFactory:
    """The factory of each implementation in turn (the contract suite runs on both)."""
    factory: BusFactory = request.getfixturevalue(f"{request.param}_bus_factory")
    return factory
