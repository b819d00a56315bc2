"""Integration: three streamer processes on one NATS JetStream consumer and one PostgreSQL
ledger share the work; one is SIGKILLed holding pending parts; every row lands exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenpo.bus import OBJECT_REGISTERED, open_bus
from tenpo.core.settings import Settings
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import CONSUMER, LoadLedger, read_table
from tenpo.streamer._ledger import COMMITTED, parts_table
from tests.streamer._fakes import TABLE, body

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OBJECTS = 200
BATCH = 8
ACK_WAIT = 2.0  # a worker's first batch (cold imports) may take over a second
LEASE = 1.0
WRITE_DELAY = 0.03  # per part written: each batch holds pending parts for ~0.1-0.2 s


def _spawn(cfg: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TENPO_BUS": "nats",
        "TENPO_NATS_URL": cfg.nats_url,
        "TENPO_BUS_STREAM": cfg.bus_stream,
        "TENPO_STREAMER_STATE_URL": cfg.streamer_db_url,
        "TENPO_STREAMER_LEASE_S": str(LEASE),
    }
    env.pop("TENPO_DATA_DIR", None)
    args = [str(cfg.data_dir), str(BATCH), str(ACK_WAIT), str(WRITE_DELAY)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.streamer._worker", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(
    predicate: Callable[[], bool], timeout: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"worker {proc.pid} exited early: {err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the workers made no progress in time")
        time.sleep(0.005)


def _pid(owner: str) -> int:
    return int(owner.rsplit(":", 2)[1])


def _committed_by_pid(ledger: LoadLedger) -> dict[int, int]:
    query = (
        sa.select(parts_table.c.owner, sa.func.count())
        .where(parts_table.c.status == COMMITTED)
        .group_by(parts_table.c.owner)
    )
    with ledger.engine.connect() as conn:
        return {_pid(owner): int(n) for owner, n in conn.execute(query)}


def test_three_streamers_share_the_work_and_survive_a_sigkill(
    settings: Settings, nats_url: str, pg_url: str
) -> None:
    cfg = settings.model_copy(
        update={
            "bus": "nats",
            "nats_url": nats_url,
            "bus_stream": f"t{uuid.uuid4().hex[:10]}",
            "bus_ack_wait_s": ACK_WAIT,
            "streamer_state_url": pg_url,
            "streamer_lease_s": LEASE,
        }
    )
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    ledger = LoadLedger(cfg.streamer_db_url)
    procs: list[subprocess.Popen[bytes]] = []
    lander: threading.Thread | None = None
    try:
        procs = [_spawn(cfg) for _ in range(3)]
        pids = {p.pid for p in procs}
        # Land only once all three run (they take a lease first), while they consume.
        _wait_for(lambda: {_pid(o) for o in ledger.owners()} == pids, 25, procs)
        landing = LandingZone(lake, bus)
        expected = set()
        events = []
        start = date(2026, 10, 5)
        for i in range(OBJECTS):
            tenant = f"t{i % 2}"
            day = start + timedelta(days=i % 3)
            receipts = [("S1", f"{i}-{j}", day.isoformat(), str(i + j)) for j in range(2)]
            events.append((tenant, body(*receipts), day))
            expected.update((tenant, r[1]) for r in receipts)

        def land_all() -> None:
            for tenant, data, day in events:
                landing.land("test_json", tenant, data, "json", day=day)

        lander = threading.Thread(target=land_all, name="lander")
        lander.start()
        victim: dict[str, object] = {}

        def one_frozen_holding_pending_parts() -> bool:
            if set(_committed_by_pid(ledger)) != pids:
                return False  # not before every worker has committed a batch: they share
            for owner in ledger.pending_owners():
                proc = next((p for p in procs if p.pid == _pid(owner)), None)
                if proc is None:
                    continue
                proc.send_signal(signal.SIGSTOP)  # frozen, it cannot commit meanwhile
                pending = ledger.pending_parts(owner)
                if pending:
                    victim.update(proc=proc, owner=owner, pending=pending)
                    return True
                proc.send_signal(signal.SIGCONT)  # it committed before it froze: next one
            return False

        _wait_for(one_frozen_holding_pending_parts, 25, procs)
        assert lander.is_alive() or ledger.counts()["objects"] < OBJECTS
        killed = victim["proc"]
        assert isinstance(killed, subprocess.Popen)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        loaded_at_kill = ledger.counts()["objects"]
        assert 0 < loaded_at_kill < OBJECTS, "the kill should land mid-run"
        survivors = [p for p in procs if p is not killed]
        lander.join(30)

        def all_loaded_and_clean() -> bool:
            counts = ledger.counts()
            return counts["objects"] == OBJECTS and set(counts) == {"objects", "parts_committed"}

        _wait_for(all_loaded_and_clean, 25, survivors)
        for proc in survivors:
            proc.send_signal(signal.SIGTERM)
        for proc in survivors:
            assert proc.wait(15) == 0
    finally:
        if lander is not None:
            lander.join(30)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    # The victim's pending parts at the kill were reclaimed: neither in the ledger nor on disk.
    pending_at_kill = set(victim["pending"])  # type: ignore[call-overload]
    assert pending_at_kill
    table = read_table(lake, TABLE)
    got = list(
        zip(table["tenant_id"].to_pylist(), table["transaction_id"].to_pylist(), strict=True)
    )
    assert len(got) == 2 * OBJECTS
    assert set(got) == expected
    counts = ledger.counts()
    assert counts == {"objects": OBJECTS, "parts_committed": counts["parts_committed"]}
    # Every Parquet file is a committed part: the victim's pending ones were reclaimed.
    with ledger.engine.connect() as conn:
        committed = set(conn.execute(sa.select(parts_table.c.part_key)).scalars())
    on_disk = {k for k in lake.list("tables/") if k.endswith(".parquet")}
    assert on_disk == committed
    assert not pending_at_kill & (on_disk | committed)
    by_pid = _committed_by_pid(ledger)
    assert set(by_pid) == pids and all(n > 0 for n in by_pid.values())
    assert bus.pending(OBJECT_REGISTERED, CONSUMER) == 0
    assert ledger.pending_owners() == {}
    # The survivors released their leases on SIGTERM; the victim's was forgotten or expires.
    assert all(_pid(o) == killed.pid for o in ledger.owners())
    ledger.close()
    bus.close()
