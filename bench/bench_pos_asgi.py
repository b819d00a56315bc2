"""CPU per POS upload in the gateway app itself, fast path against route (``pos_asgi_cpu``).

``bench_pos_http`` measures the gateway over HTTP, where the machine's load moves every figure;
this one drives the same app in-process (no sockets, no uvicorn): ``CONCURRENCY`` tasks post
distinct one-receipt vendor B bodies straight into the ASGI app, with the POST fast path
(:mod:`tenpo.gateway._pos_fast`) serving them, then with it declining every request so the
FastAPI route answers, interleaved ``ROUNDS`` times. Reported: the process's CPU time per POST
(every thread: checks, landing, journal, group commit, bus), best of the rounds, of each; the
ratio is route/fast (> 1: the fast path spends less CPU per upload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import pos_writer, report
from bench.bench_pos_http import _receipt

REQUESTS = int(os.environ.get("TENPO_BENCH_ASGI_REQUESTS", "1500"))
ROUNDS = int(os.environ.get("TENPO_BENCH_ROUNDS", "4"))
CONCURRENCY = 32


async def _post(app: Any, token: str, body: bytes) -> None:
    path = "/v1/pos/vendor_b/sales"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "app": app,
    }
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [202]:
        raise RuntimeError(f"POST answered {status}")


async def _load(app: Any, token: str, start: int, count: int) -> None:
    numbers = iter(range(start, start + count))

    async def worker() -> None:
        for i in numbers:
            await _post(app, token, _receipt(i))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _measure(app: Any, token: str) -> tuple[list[float], list[float]]:
    from tenpo.gateway._pos_fast import PosSalesFastPath

    serving = PosSalesFastPath._accepts
    fast: list[float] = []
    route: list[float] = []
    async with app.router.lifespan_context(app):
        await _load(app, token, 0, 200)  # warm-up; the key enters the auth cache
        start = 200
        for _ in range(ROUNDS):
            for runs, accepts in ((fast, serving), (route, lambda *_: None)):
                PosSalesFastPath._accepts = accepts  # type: ignore[method-assign]
                began = time.process_time()
                await _load(app, token, start, REQUESTS)
                runs.append((time.process_time() - began) / REQUESTS * 1000)
                start += REQUESTS
        PosSalesFastPath._accepts = serving  # type: ignore[method-assign]
    return fast, route


def main() -> None:
    """Measure CPU ms per POST, fast path and route; report ``pos_asgi_cpu``."""
    from tenpo.core.settings import Settings
    from tenpo.gateway import create_app

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tenpo-bench-asgi-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        token = pos_writer(settings)
        fast, route = asyncio.run(_measure(create_app(settings), token))
    report(
        "pos_asgi_cpu",
        min(fast),
        "ms CPU/POST",
        min(route),
        1.0,
        higher_is_better=False,
        fast_ms=[round(x, 3) for x in fast],
        route_ms=[round(x, 3) for x in route],
        concurrency=CONCURRENCY,
        requests=REQUESTS,
        rounds=ROUNDS,
    )


if __name__ == "__main__":
    main()
