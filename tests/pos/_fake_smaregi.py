"""A local fake of the Smaregi Platform API (the vendor, not tenpo) for the pull connector.

It follows the published contract the connector relies on: the app token endpoint (HTTP
Basic client id/secret, ``grant_type=client_credentials``, the ``pos.transactions:read``
scope), ``GET /{contract}/pos/transactions`` with a date-time range of at most 31 days on
``transaction_date_time`` or ``upd_date_time``, ``limit`` 1..1000 (≤ 100 with details),
``page``, a JSON array answer and a ``Link: <…>; rel="next"`` header while pages remain.
Failures can be queued (``fail``), tokens revoked (``revoke``).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class FakeSmaregi:
    """State of the fake: its contract, app credentials, transactions and what it saw."""

    contract: str = "skfake01"
    client_id: str = "app-id"
    client_secret: str = "app-secret"
    transactions: list[dict[str, Any]] = field(default_factory=list)
    fail: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def revoke(self) -> None:
        """Every token issued so far answers 401 from now on."""
        self.tokens.clear()


def _answer(
    h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def _problem(h: BaseHTTPRequestHandler, status: int, detail: str) -> None:
    _answer(
        h, status, {"type": "about:blank", "title": "error", "status": status, "detail": detail}
    )


def _handler(fake: FakeSmaregi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

        def do_POST(self) -> None:
            if self.path != f"/app/{fake.contract}/token":
                return _problem(self, 404, "not found")
            fake.token_requests += 1
            expected = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode())
            if self.headers.get("Authorization") != f"Basic {expected.decode()}":
                return _problem(self, 401, "invalid_client")
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            if form.get("grant_type") != ["client_credentials"]:
                return _problem(self, 400, "unsupported_grant_type")
            if "pos.transactions:read" not in form.get("scope", [""])[0].split():
                return _problem(self, 400, "invalid_scope")
            token = f"tok-{fake.token_requests}"
            fake.tokens.add(token)
            _answer(self, 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != f"/{fake.contract}/pos/transactions":
                return _problem(self, 404, "not found")
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                return _problem(self, 401, "invalid token")
            if fake.fail:
                status, headers = fake.fail.pop(0)
                return _answer(self, status, {"status": status}, headers)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            fake.queries.append(q)
            by = next(
                (b for b in ("transaction_date_time", "upd_date_time") if f"{b}-from" in q), ""
            )
            if not by or f"{by}-to" not in q:
                return _problem(self, 400, "a date-time range is required")
            lo, hi = (datetime.fromisoformat(q[f"{by}-{e}"]) for e in ("from", "to"))
            if hi - lo > timedelta(days=31) or hi < lo:
                return _problem(self, 400, "the range may span at most 31 days")
            limit, page = int(q.get("limit", 100)), int(q.get("page", 1))
            details = q.get("with_details", "none") != "none"
            if not 1 <= limit <= (100 if details else 1000) or page < 1:
                return _problem(self, 400, "limit out of range")
            key = "transactionDateTime" if by == "transaction_date_time" else "updDateTime"
            hits = [
                t for t in fake.transactions if lo <= datetime.fromisoformat(t[key]) <= hi
            ]  # both ends inclusive
            hits.sort(key=lambda t: int(t["transactionHeadId"]))
            chunk = hits[(page - 1) * limit : page * limit]
            if not details:
                chunk = [{k: v for k, v in t.items() if k != "details"} for t in chunk]
            headers = {}
            if page * limit < len(hits):
                nxt = urlencode({**q, "page": page + 1})
                headers["Link"] = f'<{fake.url}{parts.path}?{nxt}>; rel="next"'
            _answer(self, 200, chunk, headers)

    return Handler


@contextmanager
def serve(fake: FakeSmaregi) -> Iterator[FakeSmaregi]:
    """Run ``fake`` on 127.0.0.1 (a free port) for the ``with`` block; ``fake.url`` is set."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
