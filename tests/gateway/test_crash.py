"""Kill -9 the gateway right after it answered 202: every acknowledged body is in the lake,
complete, with its idempotency claim and its ObjectRegistered event."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tenpo.bus import open_bus
from tenpo.bus.base import OBJECT_REGISTERED
from tenpo.core.ids import idempotency_id
from tenpo.core.settings import Settings
from tenpo.lake import open_lake
from tenpo.lake.journal import JOURNAL_DIR, read_records
from tenpo.lake.keys import claim_key
from tests.gateway.conftest import Keys

pytestmark = pytest.mark.integration

_SERVE = """
import logging, sys, uvicorn
from tenpo.core.ids import idempotency_id
from tenpo.core.settings import Settings
from tenpo.gateway import create_app
logging.disable(logging.WARNING)
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _receipt(i: int) -> bytes:
    return json.dumps(
        {"storeCode": "T01", "registerId": "R1", "receiptId": f"B-{i:06d}",
         "transactedAt": "2026-11-02T10:15:00+09:00", "type": "SALE",
         "items": [{"sku": "4901234567894", "name": "お茶", "qty": 1, "unitPrice": "100",
                    "discount": "0", "taxRate": "8.000"}],
         "subtotal": "100", "tax": "8", "total": "108"},
        ensure_ascii=False,
    ).encode()  # fmt: skip


def test_every_202_survives_a_sigkill(
    settings: Settings, seeded_control_db: tuple[Path, Keys]
) -> None:
    shutil.copyfile(seeded_control_db[0], settings.data_dir / "control.db")
    token = seeded_control_db[1].acme
    port = _free_port()
    env = {**os.environ, "TENPO_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env)
    acked: list[tuple[bytes, str, dict[str, Any]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        i = 0
        while not stop.is_set():
            body, idem = _receipt(worker * 100_000 + i), f"w{worker}-{i}"
            i += 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(
                    "POST",
                    "/v1/pos/vendor_b/sales",
                    body,
                    {"Authorization": f"Bearer {token}", "Idempotency-Key": idem,
                     "Content-Type": "application/json"},
                )  # fmt: skip
                resp = conn.getresponse()
                answer = resp.read()
            except (OSError, http.client.HTTPException):
                return  # the server is gone (killed mid-answer)
            if resp.status == 202:
                with lock:
                    acked.append((body, idem, json.loads(answer)))
                    if len(acked) >= 30:
                        proc.send_signal(signal.SIGKILL)  # right after this 202
                        stop.set()

    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.05)
        threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 30

    # What a power loss may leave of writes that were synced only in the journal: empty
    # files. Every object and claim whose segment was not checkpointed yet (most, if not all:
    # a checkpoint runs every few seconds) is emptied; opening the lake must replay them.
    # (A SIGKILL keeps the page cache: this cannot tell a record synced before its 202 from
    # one synced after; tests/lake/test_commit_durability.py checks that ordering.)
    journaled = {
        key
        for segment in Path(settings.lake_root, JOURNAL_DIR).glob("*.log")
        for _, key, _ in read_records(segment.read_bytes())
    }
    acked_keys = {r["key"] for _, _, r in acked} | {
        claim_key("pos_vendor_b", "acme", r["object_id"]) for _, _, r in acked
    }
    emptied = 0
    for key in journaled & acked_keys:
        Path(settings.lake_root, key).write_bytes(b"")
        emptied += 1
    assert emptied or not journaled

    lake = open_lake(settings.lake_root)
    bus = open_bus(settings)
    try:
        events = {
            d.event_id
            for d in bus.fetch(OBJECT_REGISTERED, "crash-test", max_events=10_000, timeout=0)
        }
    finally:
        bus.close()
    for body, idem, receipt in acked:
        assert receipt["object_id"] == idempotency_id(idem)
        assert lake.get(receipt["key"]) == body  # complete, not just present
        claim = json.loads(lake.get(claim_key("pos_vendor_b", "acme", receipt["object_id"])))
        assert claim["key"] == receipt["key"]
        assert claim["sha256"] == hashlib.sha256(body).hexdigest()
        assert receipt["key"] in events
