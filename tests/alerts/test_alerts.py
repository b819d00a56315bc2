"""Alert rules on hand-made marts, and webhook delivery to a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pandas as pd
import pytest

from tenpo.alerts import Alert, Rule, alert_id, deliver, evaluate, sign
from tenpo.core.errors import BadInput

DAY = date(2026, 11, 10)
SECRET = "whsec-test-0123456789"


def _daily() -> pd.DataFrame:
    rows = []
    for back in range(8):
        d = DAY - timedelta(days=back)
        rows.append(("t1", "s1", d, 500, 100, True, True))
        # s2's counter went quiet on DAY; t2's store has no POS on DAY.
        rows.append(("t1", "s2", d, 300, 60, True, back > 0))
        rows.append(("t2", "x1", d, 300, 60, back > 0, True))
    return pd.DataFrame(
        rows,
        columns=["tenant_id", "store_id", "business_date", "visitors", "transactions",
                 "has_pos", "has_counter"],
    )  # fmt: skip


def test_rules_find_what_the_marts_show() -> None:
    daily = _daily()
    daily.loc[(daily["store_id"] == "s1") & (daily["business_date"] == DAY), "visitors"] = 250
    forecast = pd.DataFrame(
        [("t1", "s1", "visitors", DAY, 400.0, 600.0, 350.0, 650.0),
         ("t1", "s2", "visitors", DAY, 250.0, 350.0, 200.0, 400.0)],
        columns=["tenant_id", "store_id", "kpi", "business_date", "lo_80", "hi_80", "lo_95",
                 "hi_95"],
    )  # fmt: skip
    hourly = pd.DataFrame(
        [("t1", "s2", DAY, h, 0 if h in (14, 15) else 20, 5) for h in range(10, 18)],
        columns=["tenant_id", "store_id", "business_date", "hour", "visitors", "transactions"],
    )
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    devices = pd.DataFrame(
        [("t1", "s1", "pc-1", now - timedelta(minutes=5)),
         ("t1", "s2", "pc-2", now - timedelta(minutes=40)),
         ("t1", "s2", "pc-3", None)],
        columns=["tenant_id", "store_id", "device_id", "last_seen"],
    )  # fmt: skip
    rules = [
        Rule("t1", "r-fc", "kpi_outside_forecast", {"kpi": "visitors", "level": 95}),
        Rule("t1", "r-silent", "device_silent", {"minutes": 15}),
        Rule("t1", "r-mismatch", "receipts_without_visitors", {"min_hours": 2}),
        Rule("t1", "r-counter", "source_missing", {"source": "counter"}),
        Rule("t2", "r-pos", "source_missing", {"source": "pos"}),
    ]
    alerts = evaluate(
        rules, DAY, daily=daily, hourly=hourly, forecast=forecast, devices=devices, now=now
    )
    found = {(a.rule_id, a.store_id, a.subject) for a in alerts}
    assert found == {
        ("r-fc", "s1", "visitors"),  # 250 < 350: a drop; s2's 300 is inside 200-400
        ("r-silent", "s2", "pc-2"),
        ("r-silent", "s2", "pc-3"),
        ("r-mismatch", "s2", "counter/pos"),
        ("r-counter", "s2", "counter"),
        ("r-pos", "x1", "pos"),
    }
    drop = next(a for a in alerts if a.rule_id == "r-fc")
    assert drop.value == 250 and drop.expected_low == 350 and "drop" in drop.message
    mismatch = next(a for a in alerts if a.rule_id == "r-mismatch")
    assert "10 receipts with zero visitors at 14:00, 15:00" == mismatch.message
    assert all(a.tenant_id == "t1" for a in alerts if a.rule_id != "r-pos")
    again = evaluate(
        rules, DAY, daily=daily, hourly=hourly, forecast=forecast, devices=devices, now=now
    )
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]  # stable ids
    only_s1 = Rule("t1", "r-silent", "device_silent", {"minutes": 15}, frozenset({"s1"}))
    assert evaluate([only_s1], DAY, daily=daily, devices=devices, now=now) == []


def test_bad_rules_are_refused() -> None:
    with pytest.raises(BadInput, match="unknown rule kind"):
        Rule("t1", "r", "weather")
    with pytest.raises(BadInput, match="kpi"):
        Rule("t1", "r", "kpi_outside_forecast", {"kpi": "atv"})
    with pytest.raises(BadInput, match="minutes"):
        Rule("t1", "r", "device_silent", {"minutes": 0})


class _Receiver(BaseHTTPRequestHandler):
    """Refuses the first two deliveries with 503, checks signatures, keeps one per alert id."""

    failures_left = 2
    received: dict[str, dict[str, Any]] = {}
    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests += 1
        stamp = self.headers["X-Tenpo-Timestamp"]
        mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        if not hmac.compare_digest(self.headers["X-Tenpo-Signature"], "sha256=" + mac.hexdigest()):
            self._answer(401)
            return
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self._answer(503, {"Retry-After": "0"})
            return
        key = self.headers["Idempotency-Key"]
        assert key == self.headers["X-Tenpo-Alert-Id"]
        type(self).received.setdefault(key, json.loads(body))
        self._answer(200)

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.failures_left, _Receiver.received, _Receiver.requests = 2, {}, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _alert() -> Alert:
    aid = alert_id("t1", "r-fc", "s1", "visitors", DAY)
    return Alert(aid, "t1", "r-fc", "kpi_outside_forecast", "s1", "visitors", DAY, "drop", 250.0)


def test_webhook_is_signed_retried_and_idempotent(receiver: str) -> None:
    waits: list[float] = []
    alert = _alert()
    with httpx.Client(timeout=5) as client:  # (on 127.0.0.1: allowed explicitly)
        first = deliver(
            alert, receiver, SECRET, client=client, sleep=waits.append, allow_private=True
        )
        second = deliver(
            alert, receiver, SECRET, client=client, sleep=waits.append, allow_private=True
        )
        wrong = deliver(alert, receiver, "not-the-secret", client=client, sleep=waits.append,
                        allow_private=True)  # fmt: skip
    assert (first.delivered, first.attempts, first.status) == (True, 3, 200)
    assert waits == [0.5, 1.0]  # backoff doubles between the two 503s
    assert second.delivered and second.attempts == 1
    assert _Receiver.requests == 5 and list(_Receiver.received) == [alert.alert_id]
    assert _Receiver.received[alert.alert_id] == alert.payload()
    assert (wrong.delivered, wrong.attempts, wrong.status) == (False, 1, 401)  # not retried


def test_webhook_gives_up_after_its_attempts() -> None:
    waits: list[float] = []
    with httpx.Client(timeout=1) as client:
        result = deliver(
            _alert(), "http://127.0.0.1:9/none", SECRET, client=client, attempts=3,
            sleep=waits.append, allow_private=True,
        )  # fmt: skip
    assert not result.delivered and result.attempts == 3 and result.status is None
    assert waits == [0.5, 1.0] and "ConnectError" in (result.error or "")


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, b"{}") == "sha256=" + expected
