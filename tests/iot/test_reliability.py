"""Reliability: 10,000 QoS-1 messages while the subscriber process is SIGKILLed twice.

The subscriber runs as ``tenpo serve iot`` in a subprocess. It is killed (no chance to flush
or ack) twice while messages flow; a few hundred are published while it is down (the broker
queues them for its persistent session; Mosquitto drops beyond ``max_queued_messages``, 1000
by default, so the test stays under it). Afterwards every message is in ``raw_iot_counts``
exactly once, as every job reads it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenpo.iot.preetl import read_frames
from tenpo.streamer import Streamer, read_table
from tenpo.warehouse import Warehouse
from tests.iot.conftest import Chain, Publisher, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TOTAL = 10_000
DEVICES = [("t1", "pc-001"), ("t2", "pc-002")]
KILL_AT = (3_000, 6_500)
WHILE_DOWN = 300
BACKLOG = 400
BASE = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)


def message(i: int) -> tuple[str, str, bytes]:
    tenant, device = DEVICES[i % 2]
    seq = i // 2 + 1
    start = BASE + timedelta(minutes=seq)
    end = start + timedelta(minutes=1)
    ev = {
        "v": 1, "device_id": device, "seq": seq, "type": "count", "line": "entrance",
        "interval_start": start.isoformat(), "interval_end": end.isoformat(),
        "in": i % 7, "out": i % 3,
    }  # fmt: skip
    return tenant, device, json.dumps(ev).encode()


class SubscriberProcess:
    """``tenpo serve iot`` in a subprocess, with its stats file."""

    def __init__(self, chain: Chain, tmp: Path) -> None:
        s = chain.settings
        self.env = {
            **os.environ,
            "TENPO_DATA_DIR": str(s.data_dir),
            "TENPO_MQTT_HOST": s.mqtt_host,
            "TENPO_MQTT_PORT": str(s.mqtt_port),
            "TENPO_MQTT_PROTOCOL": s.mqtt_protocol,
            "TENPO_MQTT_TOPIC_PREFIX": s.mqtt_topic_prefix,
            "TENPO_MQTT_CLIENT_ID": s.mqtt_client_id,
            "TENPO_MQTT_SESSION_EXPIRY_S": "120",
            "TENPO_MQTT_BATCH_MESSAGES": "200",
            "TENPO_MQTT_BATCH_SECONDS": "0.2",
            "TENPO_LOG_LEVEL": "WARNING",
        }
        self.stats = tmp / "stats.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.stats.unlink(missing_ok=True)
        code = "from tenpo.cli import main; main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "iot", "--no-late", "--stats-file",
             str(self.stats)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(self._subscribed, timeout=120, what="the subscriber process to subscribe")

    def _subscribed(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            pytest.fail(f"subscriber exited with {self.proc.returncode}: {err[-2000:]}")
        try:
            return bool(json.loads(self.stats.read_text())["subscribed"])
        except (OSError, ValueError):
            return False

    def acked(self) -> int:
        """Messages this process acknowledged so far (as of its last stats write)."""
        try:
            return int(json.loads(self.stats.read_text())["acked"])
        except (OSError, ValueError, KeyError):
            return 0

    def kill(self) -> int:
        """SIGKILL the process; returns the acks it had reported."""
        assert self.proc is not None
        acked = self.acked()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return acked

    def stop(self) -> dict[str, object]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        stats: dict[str, object] = json.loads(self.stats.read_text())
        return stats


class Landed:
    """(device, seq) of every message in the landing zone (objects are immutable: read once)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.read: set[str] = set()
        self.seen: set[tuple[str, int]] = set()

    def __call__(self) -> set[tuple[str, int]]:
        for key in self.chain.lake.list("landing/iot/"):
            if key in self.read:
                continue
            for _, payload in read_frames(self.chain.lake.get(key)):
                ev = json.loads(payload)
                self.seen.add((ev["device_id"], ev["seq"]))
            self.read.add(key)
        return self.seen


def test_every_message_exactly_once_across_two_kills(
    chain: Chain, publisher: Publisher, tmp_path: Path
) -> None:
    started = time.monotonic()
    sub = SubscriberProcess(chain, tmp_path)
    sub.start()
    i = 0
    acked_before = 0  # acks of the killed processes
    for kill_at in (*KILL_AT, TOTAL):
        while i < kill_at:
            # Flow control: Mosquitto keeps at most max_queued_messages (1000 by default) for
            # a disconnected session, so the backlog at a kill plus WHILE_DOWN must stay below.
            if i % 100 == 0:
                while i - acked_before - sub.acked() > BACKLOG:
                    time.sleep(0.01)
            tenant, device, body = message(i)
            publisher.publish(chain.topic(tenant, device), body)
            i += 1
        publisher.wait(60)
        if kill_at == TOTAL:
            break
        acked_before += sub.kill()
        for _ in range(WHILE_DOWN):  # published while nobody is subscribed
            tenant, device, body = message(i)
            publisher.publish(chain.topic(tenant, device), body)
            i += 1
        publisher.wait(60)
        sub.start()
    wanted = {(DEVICES[j % 2][1], j // 2 + 1) for j in range(TOTAL)}
    deadline = time.monotonic() + 60
    landed = Landed(chain)
    while (missing := wanted - landed()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if missing:
        seqs = sorted(missing)
        pytest.fail(f"{len(missing)} message(s) never landed, e.g. {seqs[:5]} … {seqs[-5:]}")
    last = sub.stop()
    assert last["rejected"] == {}

    streamer = Streamer(chain.settings, chain.lake, chain.bus, chain.control.directory())
    streamer.run_until_idle(timeout=0.5)
    streamer.close()
    physical = read_table(chain.lake, "raw_iot_counts")
    with Warehouse(chain.lake) as wh:
        rows = wh.to_arrow(wh.table("raw_iot_counts").select("device_id", "seq", "count_in"))
    got = list(zip(rows["device_id"].to_pylist(), rows["seq"].to_pylist(), strict=True))
    assert len(got) == TOTAL and set(got) == wanted  # exactly once, as every job reads it
    expected_in = sum(j % 7 for j in range(TOTAL))
    assert sum(rows["count_in"].to_pylist()) == expected_in
    assert physical.num_rows >= TOTAL  # redelivered batches may repeat rows on disk
    logging.getLogger(__name__).warning(
        f"{TOTAL:,} messages, 2 kills: {physical.num_rows - TOTAL} redelivered row(s) "
        f"deduplicated on read, {len(chain.lake.list('landing/iot/'))} landing objects, "
        f"{time.monotonic() - started:.1f}s"
    )
