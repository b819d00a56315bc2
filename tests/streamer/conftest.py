"""Fixtures: a lake in tmp, an in-memory bus with a short ack wait, a streamer factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tenpo.bus.memory import MemoryBus
from tenpo.control.directory import StaticDirectory
from tenpo.core.settings import Settings
from tenpo.lake import Lake, LandingZone, open_lake
from tenpo.streamer import Streamer
from tests.streamer._fakes import ExplodingPreEtl, JsonPreEtl

ACK_WAIT = 0.3


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return settings.model_copy(update={"bus_ack_wait_s": ACK_WAIT, "streamer_batch_objects": 50})


@pytest.fixture
def lake(cfg: Settings) -> Lake:
    return open_lake(cfg.lake_root)


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(ack_wait=ACK_WAIT)


@pytest.fixture
def landing(lake: Lake, bus: MemoryBus) -> LandingZone:
    return LandingZone(lake, bus)


@pytest.fixture
def make_streamer(cfg: Settings, lake: Lake, bus: MemoryBus) -> Iterator[Callable[..., Streamer]]:
    made: list[Streamer] = []

    def make(**overrides: Any) -> Streamer:
        pre_etls = overrides.pop("pre_etls", None) or {
            "test_json": JsonPreEtl(),
            "exploding": ExplodingPreEtl(),
        }
        settings = cfg.model_copy(update=overrides) if overrides else cfg
        s = Streamer(settings, lake, bus, StaticDirectory(), pre_etls, fetch_timeout=0.05)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
