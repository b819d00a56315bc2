"""MQTT ingest: publish (QoS 1) → subscriber → landing zone, then streamer → raw table, exact.

Count events are sent the way the demo's devices send them — messages of
``EVENTS_PER_MESSAGE`` events (a device flushing its buffer) from 8 devices of 2 tenants — by
publishers in their own processes (devices are other machines), on the machine's Mosquitto
(or a stand-in). The :class:`MqttSubscriber` batches them (``mqtt_batch_messages`` / 1 s) into
landing objects, acknowledging after each landing.

The measured value is device events/s subscriber → landing: a backlog is published while the
subscriber is down (its persistent session queues it) and the clock runs from the first
delivery until every message is landed and acknowledged (best of RUNS). The same figure with
publishers running concurrently on the same 2 cores is reported as ``concurrent_events_per_s``.
After each arm the streamer loads the landing objects and the count is verified exact through
the warehouse (its rate is reported too). The baseline is the subscriber as it was before issue
13 — validating every event with the pydantic models — in the same run on fewer messages (a
rate is a rate). Floor (issue 13): 100,000 device events/s; target ratio 3x the baseline.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests import _services

from bench._common import report
from tenpo.bus import open_bus
from tenpo.control import ControlPlane
from tenpo.core.ids import new_id
from tenpo.core.settings import Settings
from tenpo.iot.mqtt import MqttSubscriber, device_topic
from tenpo.iot.preetl import FUTURE_TOLERANCE, check_event, split_events
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import Streamer
from tenpo.warehouse import Warehouse

EVENTS_PER_MESSAGE = 200  # as tenpo.iot.publish.device_messages sends them
BACKLOG = 900  # 180,000 events queued for the subscriber (Mosquitto queues 1,000 by default)
MESSAGES = 2_000  # 400,000 events published while the subscriber runs
BASELINE = 300  # messages of the baseline arm
PUBLISHERS = 2
FLOOR = 100_000.0  # device events/s
RUNS = 3  # best of
_PUBLISHER = """
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from bench.bench_mqtt import _messages
host, port, prefix, k, step, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:])
mine = _messages(n, prefix)[k::step]
pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub{k}")
pub.max_inflight_messages_set(100)
pub.max_queued_messages_set(0)
pub.connect(host, port)
pub.loop_start()
for i in range(0, len(mine), 100):  # chunks: paho slows down with a long outgoing queue
    infos = [pub.publish(topic, body, qos=1) for topic, body in mine[i : i + 100]]
    infos[-1].wait_for_publish(120)
pub.disconnect()
pub.loop_stop()
"""
DEVICES = [(t, f"pc-{d}") for t in ("t1", "t2") for d in range(1, 5)]
BASE = datetime(2026, 10, 1, tzinfo=UTC)


def _count_in(i: int) -> int:
    """People in of event ``i`` (so the exact total is known)."""
    return i % 5


def _messages(n: int, prefix: str) -> list[tuple[str, bytes]]:
    """``n`` messages of EVENTS_PER_MESSAGE one-minute counts each, round robin over devices."""
    out = []
    for m in range(n):
        tenant, device = DEVICES[m % len(DEVICES)]
        events = []
        for k in range(EVENTS_PER_MESSAGE):
            i = m * EVENTS_PER_MESSAGE + k
            seq = (m // len(DEVICES)) * EVENTS_PER_MESSAGE + k + 1
            start = BASE + timedelta(minutes=seq)
            events.append({
                "v": 1, "device_id": device, "seq": seq, "type": "count", "line": "entrance",
                "interval_start": start.isoformat(),
                "interval_end": (start + timedelta(minutes=1)).isoformat(),
                "in": _count_in(i), "out": 1,
            })  # fmt: skip
        body = json.dumps(events, separators=(",", ":")).encode()
        out.append((device_topic(tenant, device, prefix), body))
    return out


class _ValidatingSubscriber(MqttSubscriber):
    """The baseline: the subscriber as it was, validating every event with the models."""

    def _check(self, m: Any) -> None:
        super()._check(m)
        if m.reason is None and m.tenant is not None:
            latest = m.received_at + FUTURE_TOLERANCE
            for raw in split_events(json.loads(m.payload)):
                check_event(
                    raw,
                    m.tenant,
                    lambda d: self.directory.device(m.tenant, d),
                    latest,
                    topic_device=m.device,
                )


def run_arm(
    root: Path,
    n: int,
    broker: tuple[str, int, str],
    *,
    backlog: bool,
    baseline: bool = False,
) -> tuple[float, float, int, int]:
    """Device events/s subscriber → landing and streamer rows/s for ``n`` messages; landing
    objects and their bytes. ``baseline`` validates every event as the subscriber used to.

    ``backlog``: the messages are published while the subscriber is down (its persistent
    session queues them at the broker) and the clock times the subscriber draining them — its
    own rate, not shared with publishers on the same cores. Otherwise publishers run
    concurrently (in their own processes, as devices are other machines).
    """
    run = new_id()
    s = Settings(
        data_dir=root,
        mqtt_host=broker[0],
        mqtt_port=broker[1],
        mqtt_protocol=broker[2],
        mqtt_topic_prefix=f"tenpo-bench-{run}",
        mqtt_client_id=f"tenpo-bench-{run}",
        mqtt_session_expiry_s=60,
        mqtt_batch_messages=1000,
        mqtt_batch_seconds=0.2,  # as the demo runs it
        bus_ack_wait_s=30.0,
    )
    control = ControlPlane.open(s.control_db_url)
    for tenant in ("t1", "t2"):
        control.create_tenant(tenant, tenant)
        store = control.create_store(tenant, "S1", "Store")
        for device in sorted({d for t, d in DEVICES if t == tenant}):
            control.create_device(tenant, device, store.store_id, "people_counter")
    lake = open_lake(s.lake_root)
    sub_bus, streamer_bus = open_bus(s), open_bus(s)

    def subscriber() -> MqttSubscriber:
        landing = LandingZone(lake, sub_bus, s.default_timezone)
        kind = _ValidatingSubscriber if baseline else MqttSubscriber
        return kind(s, lake, landing, control.directory())

    events = n * EVENTS_PER_MESSAGE
    publishers = [
        [sys.executable, "-c", _PUBLISHER, broker[0], str(broker[1]), s.mqtt_topic_prefix,
         str(k), str(PUBLISHERS), str(n)]
        for k in range(PUBLISHERS)
    ]  # fmt: skip
    here = Path(__file__).resolve().parent.parent
    procs: list[subprocess.Popen[bytes]] = []
    if backlog:
        first = subscriber()
        first.start()
        first.subscribed.wait(10)
        first.join()  # a clean stop keeps the session: the broker queues from now on
        for cmd in publishers:
            subprocess.run(cmd, cwd=here, check=True)
    sub = subscriber()
    sub_stop = sub.start()
    if not backlog:
        sub.subscribed.wait(10)
        procs = [subprocess.Popen(cmd, cwd=here) for cmd in publishers]
    deadline = time.monotonic() + 300
    # The clock starts at the first delivery (publishers build their messages first).
    while sub.stats.received == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("no message received")
        time.sleep(0.001)
    started = time.perf_counter()
    while sub.stats.acked < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sub.stats.acked} of {n} messages acknowledged")
        time.sleep(0.002)
    landed = time.perf_counter() - started
    for proc in procs:
        if proc.wait(60) != 0:
            raise RuntimeError(f"publisher exited with {proc.returncode}")
    sub_stop.set()
    sub.join()
    if sub.stats.accepted != n or sub.stats.events != events:
        raise RuntimeError(f"subscriber did not land every event: {sub.stats.as_dict()}")
    streamer = Streamer(s, lake, streamer_bus, control.directory())
    began = time.perf_counter()
    stats = streamer.run_until_idle(0.3)
    streamed = stats.total_rows / max(1e-9, time.perf_counter() - began - 0.3)
    with Warehouse(lake) as wh:
        rows = wh.to_arrow(wh.table("raw_iot_counts").select("device_id", "seq", "count_in"))
    expected_in = sum(_count_in(i) for i in range(events))
    if rows.num_rows != events or sum(rows["count_in"].to_pylist()) != expected_in:
        raise RuntimeError(f"raw_iot_counts holds {rows.num_rows} rows, expected exactly {events}")
    keys = lake.list("landing/iot/")
    size = sum(len(lake.get(k)) for k in keys)
    streamer.close()
    sub_bus.close()
    streamer_bus.close()
    control.dispose()
    return events / landed, streamed, len(keys), size


def main() -> None:
    """Run the arms (best of RUNS) and report ``mqtt_ingest``."""
    logging.getLogger("tenpo").setLevel(logging.WARNING)
    broker = _services.mqtt_broker()
    root = Path(tempfile.mkdtemp(prefix="tenpo-bench-mqtt-"))
    try:
        drains = [run_arm(root / f"drain{i}", BACKLOG, broker, backlog=True) for i in range(RUNS)]
        rate, streamed, objects, size = max(drains)
        live = run_arm(root / "live", MESSAGES, broker, backlog=False)
        base_rate = max(
            run_arm(root / f"baseline{i}", BASELINE, broker, backlog=True, baseline=True)[0]
            for i in range(RUNS)
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(
        "mqtt_ingest",
        rate,
        "events/s",
        base_rate,
        3.0,
        floor=FLOOR,
        messages=BACKLOG,
        events_per_message=EVENTS_PER_MESSAGE,
        events=BACKLOG * EVENTS_PER_MESSAGE,
        runs=[round(r[0]) for r in drains],
        landing_objects=objects,
        landing_bytes=size,
        landing_bytes_per_event=round(size / (BACKLOG * EVENTS_PER_MESSAGE), 1),
        concurrent_events_per_s=round(live[0]),
        concurrent_messages=MESSAGES,
        streamer_rows_per_s=round(max(streamed, live[1])),
        baseline_messages=BASELINE,
        exact=True,
        broker=f"{broker[0]}:{broker[1]}",
    )


if __name__ == "__main__":
    main()
