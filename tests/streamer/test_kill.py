"""Integration: a streamer process killed with SIGKILL mid-run loses nothing, duplicates nothing."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from tenpo.bus import OBJECT_REGISTERED, open_bus
from tenpo.control.directory import StaticDirectory
from tenpo.core.settings import Settings
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import CONSUMER, LoadLedger, Streamer, read_table
from tests.streamer._fakes import TABLE, JsonPreEtl, body

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tenpo.bus.sqlite") is None,
        reason="tenpo.bus.sqlite.SqliteBus (the embedded bus) is not in the tree yet",
    ),
]

REPO = Path(__file__).resolve().parents[2]
OBJECTS = 300
BATCH = 20
ACK_WAIT = 1.0


def _spawn(cfg: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TENPO_DATA_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.streamer._worker", str(cfg.data_dir), str(BATCH), "1.0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"worker exited early: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("worker made no progress in time")
        time.sleep(0.01)


def test_sigkill_mid_run_then_restart_loads_everything_once(settings: Settings) -> None:
    cfg = settings.model_copy(update={"bus_ack_wait_s": ACK_WAIT, "streamer_batch_objects": BATCH})
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    landing = LandingZone(lake, bus)
    expected = set()
    start = date(2026, 10, 5)
    for i in range(OBJECTS):
        tenant = f"t{i % 2}"
        day = start + timedelta(days=i % 3)
        receipts = [("S1", f"{i}-{j}", day.isoformat(), str(i + j)) for j in range(2)]
        landing.land("test_json", tenant, body(*receipts), "json", day=day)
        expected.update((tenant, r[1]) for r in receipts)
    ledger = LoadLedger(cfg.streamer_db_url)

    proc = _spawn(cfg)
    try:
        _wait_for(lambda: ledger.counts()["objects"] >= BATCH, 60, proc)
        time.sleep(0.05)  # land somewhere inside a later batch
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    loaded_at_kill = ledger.counts()["objects"]
    assert 0 < loaded_at_kill < OBJECTS, "the kill should land mid-run"

    # A restarted process (here: in-process) recovers and waits for the redeliveries.
    streamer = Streamer(cfg, lake, bus, StaticDirectory(), {"test_json": JsonPreEtl()})
    stats = streamer.run_until_idle(0.5, max_seconds=60)
    streamer.close()

    table = read_table(lake, TABLE)
    got = list(
        zip(table["tenant_id"].to_pylist(), table["transaction_id"].to_pylist(), strict=True)
    )
    assert len(got) == 2 * OBJECTS
    assert set(got) == expected
    counts = ledger.counts()
    assert counts["objects"] == OBJECTS and "parts_pending" not in counts
    assert stats.objects == OBJECTS - loaded_at_kill
    # Every Parquet file on disk is a committed part: no orphan from the killed batch.
    on_disk = {k for k in lake.list("tables/") if k.endswith(".parquet")}
    assert len(on_disk) == counts["parts_committed"]
    assert bus.pending(OBJECT_REGISTERED, CONSUMER) == 0
    ledger.close()
    bus.close()
