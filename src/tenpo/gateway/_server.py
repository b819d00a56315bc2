"""Run an ASGI app with uvicorn in a background thread (demo, tests, embedding)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from tenpo.core.settings import Settings
from tenpo.gateway._deadlines import deadline_protocol

__all__ = ["bound_port", "serve_in_thread", "server_config", "stop_server"]

log = logging.getLogger(__name__)


def server_config(
    app: ASGIApp, host: str, port: int, *, settings: Settings | None = None, **options: Any
) -> uvicorn.Config:
    """uvicorn's config for a tenpo server: tenpo's logging, no proxy headers, and HTTP
    deadlines (``http_head_timeout_s``, ``http_body_idle_timeout_s``) against stalled clients."""
    s = settings or Settings()
    # log_config=None keeps the process's logging setup (tenpo's Rich handler).
    # proxy_headers=False: apps decide which proxies' X-Forwarded-For to believe (uvicorn's
    # default believes any loopback peer).
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=False,
        http=deadline_protocol(
            s.http_head_timeout_s, s.http_body_idle_timeout_s, s.http_body_min_rate_bytes_s
        ),
        **options,
    )


def serve_in_thread(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    timeout: float = 30.0,
    settings: Settings | None = None,
) -> tuple[uvicorn.Server, threading.Thread]:
    """Start ``app`` on ``host:port`` (0 = any free port) and return once it accepts connections.

    Stop it with ``server.should_exit = True`` then ``thread.join()``. The listening port is
    ``server.servers[0].sockets[0].getsockname()[1]``. Raises ``RuntimeError`` when the server
    cannot start (port in use, failing lifespan) and ``TimeoutError`` after ``timeout`` s.
    """
    config = server_config(app, host, port, settings=settings, log_level="warning")
    server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except (SystemExit, Exception) as exc:  # uvicorn exits when it cannot bind or start
            failures.append(exc)
            if server.started:
                log.exception("server on %s:%d stopped with an error", host, port)

    thread = threading.Thread(target=run, name=f"uvicorn-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            cause = failures[0] if failures else None
            raise RuntimeError(f"server on {host}:{port} failed to start (see the log)") from cause
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"server on {host}:{port} did not start within {timeout}s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    while True:
        try:
            with socket.create_connection((target, bound[1]), timeout=1.0):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError(f"server on {host}:{bound[1]} accepts no connections") from None
            time.sleep(0.02)
    log.info("serving on http://%s:%d", host, bound[1])
    return server, thread


def bound_port(server: uvicorn.Server) -> int:
    """The port a server started by :func:`serve_in_thread` listens on (asked for port 0)."""
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")


def stop_server(server: uvicorn.Server, thread: threading.Thread, timeout: float = 10.0) -> None:
    """Ask a server started by :func:`serve_in_thread` to exit and wait up to ``timeout`` s."""
    server.should_exit = True
    thread.join(timeout=timeout)
