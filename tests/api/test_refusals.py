"""Refusals are cheap: a 429 costs less than serving the answer, and 4xx are not logged at
INFO per request (a flood of refusals must not turn into a flood of Rich log lines)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.api._auth import RateLimiter
from tenpo.api.deps import api_state
from tenpo.core.logging import setup_logging
from tenpo.datamart import dispose_engines, get_engine
from tests.api.world import World, build

RANGE = {"from": "2026-10-05", "to": "2026-10-11"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build(tmp_path_factory.mktemp("refusals"))
    yield w
    w.control.dispose()
    dispose_engines()


def _client(world: World) -> TestClient:
    app = create_app(
        world.settings, engine=get_engine(world.settings.datamart_db_url), control=world.control
    )
    return TestClient(app, base_url="http://127.0.0.1")


def _per_request(c: TestClient, headers: dict[str, str], n: int, status: int) -> float:
    """CPU seconds per request of ``n`` requests answered ``status`` (the test client runs the
    app in this process: CPU time, unlike wall time, is not what other processes took)."""
    start = time.process_time()
    for _ in range(n):
        resp = c.get("/v1/stores/s1/kpis", params=RANGE, headers=headers)
        assert resp.status_code == status
    return (time.process_time() - start) / n


def test_a_429_costs_less_than_the_answer(world: World) -> None:
    setup_logging()  # the CLI's Rich handler, as `tenpo serve api` runs
    headers = {"Authorization": f"Bearer {world.t1_key}"}
    served = refused = float("inf")
    with _client(world) as c:
        for _ in range(5):  # interleaved, best of five: the machine is shared
            api_state(c.app).rate_limiter = RateLimiter(0, 1)
            served = min(served, _per_request(c, headers, 40, 200))
            api_state(c.app).rate_limiter = RateLimiter(1e-9, 1)
            c.get("/v1/stores/s1/kpis", params=RANGE, headers=headers)  # the one token
            refused = min(refused, _per_request(c, headers, 40, 429))
    print(f"served {served * 1e3:.2f} ms, refused {refused * 1e3:.2f} ms CPU")  # noqa: T201
    assert refused < served


def test_4xx_are_not_logged_at_info_per_request(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Authorization": f"Bearer {world.t1_key}"}
    with _client(world) as c, caplog.at_level(logging.INFO, logger="tenpo"):
        api_state(c.app).rate_limiter = RateLimiter(1e-9, 1)
        for _ in range(50):
            c.get("/v1/stores/s1/kpis", params=RANGE, headers=headers)
            c.get("/v1/stores/nope", headers={"Authorization": "Bearer wrong"})
            c.get("/v1/stores/s1/kpis", params={"from": "x"}, headers=headers)
    info = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("tenpo")]
    assert len(info) <= 3, [r.getMessage() for r in info[:5]]
