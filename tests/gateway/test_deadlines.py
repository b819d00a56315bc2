"""Stalled HTTP clients: a head deadline and a body idle limit on the real server (raw sockets).

uvicorn alone holds a connection that sends nothing, trickles its head or stops mid-body for
good; tenpo's servers answer 408 and close it, and nothing of the stalled request is landed.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from tenpo.core.settings import Settings
from tenpo.gateway import bound_port, serve_in_thread, stop_server
from tests.gateway.conftest import SAMPLES, Gateway

DEVICE_EVENTS = (SAMPLES / "device_events.json").read_bytes()
HEAD_S, BODY_S = 0.6, 0.6
MIN_RATE = 20.0  # bytes/s


@contextmanager
def served(gateway: Gateway) -> Iterator[int]:
    app = gateway.client.app
    assert isinstance(app, FastAPI)
    cfg = gateway.settings.model_copy(
        update={
            "http_head_timeout_s": HEAD_S,
            "http_body_idle_timeout_s": BODY_S,
            "http_body_min_rate_bytes_s": MIN_RATE,
        }
    )
    server, thread = serve_in_thread(app, "127.0.0.1", 0, settings=cfg)
    try:
        yield bound_port(server)
    finally:
        stop_server(server, thread)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def head(gateway: Gateway, length: int, path: str = "/v1/iot/events") -> bytes:
    token = gateway.keys.acme
    return (
        f"POST {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n"
        "connection: close\r\n\r\n"
    ).encode()


def assert_408(answer: bytes, says: str) -> None:
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", answer[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers.lower()
    problem = json.loads(body)
    assert problem["status"] == 408 and says in problem["detail"]


def test_silent_connection_gets_408_and_is_closed(gateway: Gateway) -> None:
    with served(gateway) as port, connect(port) as sock:
        start = time.monotonic()
        answer = read_all(sock)
        waited = time.monotonic() - start
    assert_408(answer, "head did not arrive within 0.6 s")
    assert HEAD_S - 0.1 <= waited < HEAD_S + 5


def trickle(sock: socket.socket, data: bytes, every_s: float) -> tuple[bytes, float, int]:
    """Send ``data`` a byte every ``every_s`` until the server answers (all but its last byte
    at most); the server's whole answer, the seconds it took and the bytes sent."""
    start, sent = time.monotonic(), 0
    while sent < len(data) - 1 and not select.select([sock], [], [], every_s)[0]:
        sock.send(data[sent : sent + 1])
        sent += 1
    answer = read_all(sock)
    return answer, time.monotonic() - start, sent


def test_trickled_head_does_not_extend_the_deadline(gateway: Gateway) -> None:
    request = head(gateway, len(DEVICE_EVENTS))
    with served(gateway) as port, connect(port) as sock:
        # A byte every 0.1 s: the head would take far longer than HEAD_S to finish.
        answer, waited, sent = trickle(sock, request, 0.1)
    assert_408(answer, "head did not arrive")
    assert waited < HEAD_S + 5 and sent < len(request) - 1


def test_408_reaches_a_client_still_sending(gateway: Gateway) -> None:
    """Bytes arriving after the 408 are drained, not answered with a reset that would discard
    the 408 in the client's buffer (a close with unread input makes the kernel send one)."""
    request = head(gateway, len(DEVICE_EVENTS))
    with served(gateway) as port, connect(port) as sock:
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < HEAD_S * 2 and sent < len(request) - 1:
            sock.send(request[sent : sent + 1])  # goes on after the deadline, unaware
            sent += 1
            time.sleep(0.05)
        answer = read_all(sock)
    assert_408(answer, "head did not arrive")


def test_stalled_body_gets_408_and_lands_nothing(gateway: Gateway) -> None:
    with served(gateway) as port, connect(port) as sock:
        sock.sendall(head(gateway, len(DEVICE_EVENTS)) + DEVICE_EVENTS[:20])
        answer = read_all(sock)
    assert_408(answer, "body stalled: no byte for 0.6 s")
    assert gateway.landed() == []
    assert gateway.events() == []


def test_body_trickled_under_the_minimum_rate_gets_408(gateway: Gateway) -> None:
    """A byte every 0.3 s never pauses past the idle limit (0.6 s) but averages 3 bytes/s,
    under MIN_RATE: once the body has been coming for longer than the idle limit, a 408."""
    with served(gateway) as port, connect(port) as sock:
        sock.sendall(head(gateway, len(DEVICE_EVENTS)))
        answer, waited, sent = trickle(sock, DEVICE_EVENTS, 0.3)
    assert_408(answer, "body is too slow")
    assert waited < BODY_S + 5 and sent < len(DEVICE_EVENTS) - 1
    assert gateway.landed() == []


def test_slow_steady_body_is_accepted(gateway: Gateway) -> None:
    """A body sent over 2.4 s (4× the idle limit), a piece every 0.2 s, is a normal 202."""
    step = len(DEVICE_EVENTS) // 12 + 1
    pieces = [DEVICE_EVENTS[i : i + step] for i in range(0, len(DEVICE_EVENTS), step)]
    assert b"".join(pieces) == DEVICE_EVENTS and len(pieces) >= 10
    with served(gateway) as port, connect(port) as sock:
        sock.sendall(head(gateway, len(DEVICE_EVENTS)))
        for piece in pieces:
            time.sleep(0.2)
            sock.sendall(piece)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert len(gateway.landed("iot")) == 1


def test_keep_alive_requests_each_get_their_own_head_deadline(gateway: Gateway) -> None:
    """Three requests on one connection, 0.4 s apart (1.2 s > HEAD_S in all): all served."""
    with served(gateway) as port, connect(port) as sock:
        answers = []
        for _ in range(3):
            time.sleep(0.4)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
            answers.append(sock.recv(65536))
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers


@pytest.mark.parametrize("field", ["http_head_timeout_s", "http_body_idle_timeout_s"])
def test_deadlines_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: 0})


def test_tenpo_serve_uses_the_settings_deadlines() -> None:
    """`tenpo serve gateway|api|all` build their uvicorn config in one place, from settings."""
    from tenpo.cli.serve import _config

    s = Settings(http_head_timeout_s=7.5, http_body_idle_timeout_s=12.0)
    config = _config(FastAPI(), "127.0.0.1", 0, s)
    assert isinstance(config.http, type)
    assert (config.http.head_timeout, config.http.body_idle_timeout) == (7.5, 12.0)
    assert config.proxy_headers is False and config.log_config is None


def _slow_reader(pause_s: float, pauses: int) -> Any:
    """An ASGI app that waits ``pause_s`` before each of the first ``pauses`` pieces of the
    body it reads (the server is slow, not the client), and answers 200 with its length."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size, more, pieces = 0, True, 0
        while more:
            if pieces < pauses:
                await asyncio.sleep(pause_s)
            pieces += 1
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def served_app(app: Any) -> Iterator[int]:
    cfg = Settings(http_head_timeout_s=HEAD_S, http_body_idle_timeout_s=BODY_S)
    server, thread = serve_in_thread(app, "127.0.0.1", 0, settings=cfg)
    try:
        yield bound_port(server)
    finally:
        stop_server(server, thread)


def test_a_client_waiting_for_100_continue_is_not_stalled() -> None:
    """``Expect: 100-continue``: the client sends its body once the server says so, which
    uvicorn does when the app first reads. An app slow to start reading (2.5× the idle
    limit) is the server's time, not a stalled client: the upload is answered 200."""
    body = b"x" * 1000
    with served_app(_slow_reader(BODY_S * 2.5, 1)) as port, connect(port) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim[:200]
        sock.sendall(body)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b"1000")


def test_a_big_fast_body_read_slowly_by_the_server_is_not_stalled() -> None:
    """A 4 MB body sent at once, read by an app that pauses 2× the idle limit before each of
    its first three pieces: flow control stops the reading, the server's time, never a 408."""
    body = b"y" * (4 << 20)
    with served_app(_slow_reader(BODY_S * 2, 3)) as port, connect(port) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        sender = threading.Thread(target=sock.sendall, args=(body,))
        sender.start()
        answer = read_all(sock)
        sender.join(10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(str(len(body)).encode())


def test_a_client_told_to_continue_that_sends_nothing_is_stalled() -> None:
    """The 100 Continue ends the server's hold: a body that then never comes is a 408."""
    with served_app(_slow_reader(BODY_S * 2.5, 1)) as port, connect(port) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\n"
            b"content-length: 10\r\nconnection: close\r\n\r\n"
        )
        interim = sock.recv(65536)
        told = time.monotonic()
        answer = interim + read_all(sock)
        waited = time.monotonic() - told
    assert interim.startswith(b"HTTP/1.1 100 Continue"), interim[:200]
    assert_408(answer.partition(b"\r\n\r\n")[2], "body stalled")
    assert BODY_S - 0.1 <= waited < 2 * BODY_S + 5
