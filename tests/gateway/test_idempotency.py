"""Idempotency-Key under real concurrency and across landing days (issue 11)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI

from tenpo.gateway import serve_in_thread
from tests.gateway.conftest import SAMPLES, Gateway

VENDOR_B = json.loads((SAMPLES / "vendor_b_sales.json").read_bytes())


def receipt_body(receipt_id: str) -> bytes:
    doc = json.loads(json.dumps(VENDOR_B))
    doc["receipts"][0]["storeCode"] = "T01"
    doc["receipts"][0]["receiptId"] = receipt_id
    return json.dumps(doc, ensure_ascii=False).encode()


def load_all(gateway: Gateway) -> Any:
    from tenpo.streamer import Streamer, read_table

    streamer = Streamer(gateway.settings, gateway.lake, gateway.bus, gateway.control.directory())
    try:
        streamer.run_until_idle(timeout=0.3)
    finally:
        streamer.close()
    return read_table(gateway.lake, "raw_pos_transactions")


def test_same_key_concurrent_bodies_have_exactly_one_winner(gateway: Gateway) -> None:
    """12 parallel requests per round over real HTTP (uvicorn, thread pool), one key, 12
    different bodies: one 202, eleven 409s, and the kept object is the winner's bytes."""
    app = gateway.client.app
    assert isinstance(app, FastAPI)
    server, thread = serve_in_thread(app, "127.0.0.1", 0)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    parallel, rounds = 12, 15
    winners: list[tuple[str, bytes, dict[str, Any]]] = []
    try:
        clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for _ in range(parallel)
        ]
        for r in range(rounds):
            key = f"race-{r}"
            barrier = threading.Barrier(parallel)
            answers: list[tuple[int, bytes, dict[str, Any]]] = []

            def send(
                i: int,
                key: str = key,
                barrier: threading.Barrier = barrier,
                answers: list[tuple[int, bytes, dict[str, Any]]] = answers,
            ) -> None:
                body = receipt_body(f"B-{key}-{i}")
                barrier.wait()
                resp = clients[i].post(
                    "/v1/pos/vendor_b/sales",
                    content=body,
                    headers={**gateway.auth(), "Idempotency-Key": key},
                )
                answers.append((resp.status_code, body, resp.json()))  # list.append is atomic

            threads = [threading.Thread(target=send, args=(i,)) for i in range(parallel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            statuses = Counter(status for status, _, _ in answers)
            assert statuses == {202: 1, 409: parallel - 1}, (r, statuses)
            [(_, body, receipt)] = [a for a in answers if a[0] == 202]
            assert receipt["created"] is True and receipt["object_id"] == f"k-{key}"
            assert gateway.lake.get(receipt["key"]) == body  # the 202's bytes, nobody else's
            for status, _, problem in answers:
                if status == 409:
                    assert f"Idempotency-Key {key!r} was already used" in problem["detail"]
            winners.append((key, body, receipt))
        for c in clients:
            c.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    # The streamer loads exactly the winners: one transaction per round, the winner's receipt.
    table = load_all(gateway)
    expected = {json.loads(body)["receipts"][0]["receiptId"] for _, body, _ in winners}
    loaded = [t.split("-", 2)[-1] for t in table.column("transaction_id").to_pylist()]
    assert sorted(loaded) == sorted(expected)  # ids are "{register}-{receiptId}"


def test_retry_after_midnight_answers_with_the_original_object(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same key the next local day: same object (created false), loaded once; other bytes: 409.
    Every 202 names an object the streamer loads."""
    import tenpo.lake.landing as landing

    before = datetime(2026, 11, 2, 14, 59, 50, tzinfo=UTC)  # 23:59:50 in Tokyo
    after = datetime(2026, 11, 2, 15, 0, 10, tzinfo=UTC)  # 00:00:10 the next day
    body = receipt_body("B-midnight-1")
    headers = {**gateway.auth(), "Idempotency-Key": "retry-1"}
    monkeypatch.setattr(landing, "utcnow", lambda: before)
    first = gateway.client.post("/v1/pos/vendor_b/sales", content=body, headers=headers)
    monkeypatch.setattr(landing, "utcnow", lambda: after)
    retry = gateway.client.post("/v1/pos/vendor_b/sales", content=body, headers=headers)
    other = gateway.client.post(
        "/v1/pos/vendor_b/sales", content=receipt_body("B-midnight-2"), headers=headers
    )
    assert first.status_code == 202 and first.json()["created"] is True
    assert "date=2026-11-02/" in first.json()["key"]
    assert retry.status_code == 202, retry.text
    assert retry.json()["created"] is False and retry.json()["key"] == first.json()["key"]
    assert other.status_code == 409, other.text
    assert [k for k in gateway.landed("pos_vendor_b") if "date=2026-11-03" in k] == []
    table = load_all(gateway)
    assert table.column("transaction_id").to_pylist() == ["POS-2-B-midnight-1"]
    status = gateway.client.get(
        f"/v1/pos/batches/{first.json()['object_id']}", headers=gateway.auth()
    )
    assert status.json()["status"] == "loaded" and status.json()["accepted_rows"] >= 1
