"""``flow.stages.send_files`` re-sends what a dropped connection or a busy gateway lost (a
re-send is harmless: the gateway's object ids are content hashes), and gives up with a clear
error after its tries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tenpo.core.errors import TenpoError
from tenpo.flow import stages


class _Flaky(BaseHTTPRequestHandler):
    """Drops the connection of the first request without an answer, answers the second
    503, then 202; or drops every one (``server.always_drop``)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:  # type: ignore[attr-defined]
            server.seen.append(body)  # type: ignore[attr-defined]
            n = len(server.seen)  # type: ignore[attr-defined]
        if server.always_drop or n == 1:  # type: ignore[attr-defined]
            self.close_connection = True
            self.connection.close()
            return
        status = 503 if n == 2 else 202
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def flaky() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.seen = []  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.always_drop = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_a_dropped_connection_and_a_503_are_sent_again(
    flaky: ThreadingHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages.time, "sleep", lambda _s: None)
    path = tmp_path / "events.json"
    path.write_bytes(b'{"events": []}')
    sent: list[int] = []
    nbytes = stages.send_files(
        _url(flaky), {"t1": "key"}, [("iot", "t1", path)], on_file=sent.append
    )
    assert nbytes == len(path.read_bytes()) and sent == [nbytes]
    assert flaky.seen == [path.read_bytes()] * 3  # type: ignore[attr-defined]


def test_a_gateway_that_never_answers_is_a_clear_error(
    flaky: ThreadingHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages.time, "sleep", lambda _s: None)
    flaky.always_drop = True  # type: ignore[attr-defined]
    path = tmp_path / "events.json"
    path.write_bytes(b"{}")
    with pytest.raises(TenpoError, match="gateway unreachable for events.json"):
        stages.send_files(_url(flaky), {"t1": "key"}, [("iot", "t1", path)])
    assert len(flaky.seen) == stages.SEND_ATTEMPTS  # type: ignore[attr-defined]
