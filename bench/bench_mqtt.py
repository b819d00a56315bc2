"""MQTT ingest end to end: publish (QoS 1) → subscriber → landing zone → streamer → raw table.

One process on the machine's Mosquitto (or a stand-in): a paho publisher sends one count
event per message from 4 devices of 2 tenants; the :class:`MqttSubscriber` batches them
(``mqtt_batch_messages`` 1,000 / 1 s) into landing objects, acknowledging after each landing;
the streamer loads them concurrently. The clock runs from the first publish until
``raw_iot_counts`` holds every message, and the count is then verified exact through the
warehouse. The baseline is the same pipeline writing one lake object per message
(batch size 1), measured in the same run on fewer messages (a rate is a rate).
Targets: 10x the baseline, and 5,000 messages/s.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests import _services

from bench._common import report
from tenpo.bus import open_bus
from tenpo.control import ControlPlane
from tenpo.core.ids import new_id
from tenpo.core.settings import Settings
from tenpo.iot.mqtt import MqttSubscriber, device_topic
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import BatchStats, Streamer
from tenpo.warehouse import Warehouse

MESSAGES = 15_000
BASELINE_MESSAGES = 500
PUBLISHERS = 2
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
for i in range(0, len(mine), 500):  # chunks: paho slows down with a long outgoing queue
    infos = [pub.publish(topic, body, qos=1) for topic, body in mine[i : i + 500]]
    infos[-1].wait_for_publish(120)
pub.disconnect()
pub.loop_stop()
"""
DEVICES = [("t1", "pc-1"), ("t1", "pc-2"), ("t2", "pc-1"), ("t2", "pc-2")]
BASE = datetime(2026, 10, 1, tzinfo=UTC)


def _messages(n: int, prefix: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        tenant, device = DEVICES[i % len(DEVICES)]
        seq = i // len(DEVICES) + 1
        start = BASE + timedelta(minutes=seq)
        ev = {
            "v": 1, "device_id": device, "seq": seq, "type": "count", "line": "entrance",
            "interval_start": start.isoformat(),
            "interval_end": (start + timedelta(minutes=1)).isoformat(), "in": i % 5, "out": 1,
        }  # fmt: skip
        out.append((device_topic(tenant, device, prefix), json.dumps(ev).encode()))
    return out


def run_arm(root: Path, n: int, batch: int, broker: tuple[str, int, str]) -> tuple[float, int]:
    """Messages/s end to end for ``n`` messages at subscriber batch size ``batch``; objects."""
    run = new_id()
    s = Settings(
        data_dir=root,
        mqtt_host=broker[0],
        mqtt_port=broker[1],
        mqtt_protocol=broker[2],
        mqtt_topic_prefix=f"tenpo-bench-{run}",
        mqtt_client_id=f"tenpo-bench-{run}",
        mqtt_session_expiry_s=60,
        mqtt_batch_messages=batch,
        mqtt_batch_seconds=1.0,
        bus_ack_wait_s=30.0,
    )
    control = ControlPlane.open(s.control_db_url)
    for tenant in ("t1", "t2"):
        control.create_tenant(tenant, tenant)
        store = control.create_store(tenant, "S1", "Store")
        for device in ("pc-1", "pc-2"):
            control.create_device(tenant, device, store.store_id, "people_counter")
    lake = open_lake(s.lake_root)
    sub_bus, streamer_bus = open_bus(s), open_bus(s)
    sub = MqttSubscriber(
        s, lake, LandingZone(lake, sub_bus, s.default_timezone), control.directory()
    )
    streamer = Streamer(s, lake, streamer_bus, control.directory())
    loaded = [0]
    done = threading.Event()

    def on_batch(stats: BatchStats) -> None:
        loaded[0] += stats.rows.get("raw_iot_counts", 0)
        if loaded[0] >= n:
            done.set()

    stop = threading.Event()
    sub_stop = sub.start()
    streamer_thread = threading.Thread(
        target=streamer.run_forever, args=(stop,), kwargs={"on_batch": on_batch}, daemon=True
    )
    streamer_thread.start()
    sub.subscribed.wait(10)
    # Devices are other machines: publishers run in their own processes (paho's publisher
    # tops out at a few thousand QoS-1 messages/s per connection).
    publishers = [
        subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, broker[0], str(broker[1]), s.mqtt_topic_prefix,
             str(k), str(PUBLISHERS), str(n)],
            cwd=Path(__file__).resolve().parent.parent,
        )
        for k in range(PUBLISHERS)
    ]  # fmt: skip
    started = time.perf_counter()
    if not done.wait(300):
        raise RuntimeError(f"only {loaded[0]} of {n} rows loaded")
    elapsed = time.perf_counter() - started
    for proc in publishers:
        if proc.wait(60) != 0:
            raise RuntimeError(f"publisher exited with {proc.returncode}")
    sub_stop.set()
    sub.join()
    stop.set()
    streamer_thread.join(60)
    with Warehouse(lake) as wh:
        rows = wh.to_arrow(wh.table("raw_iot_counts").select("device_id", "seq", "count_in"))
    if rows.num_rows != n or sum(rows["count_in"].to_pylist()) != sum(i % 5 for i in range(n)):
        raise RuntimeError(f"raw_iot_counts holds {rows.num_rows} rows, expected exactly {n}")
    objects = len(lake.list("landing/iot/"))
    streamer.close()
    sub_bus.close()
    streamer_bus.close()
    control.dispose()
    return n / elapsed, objects


def main() -> None:
    """Run both arms and report ``mqtt_ingest``."""
    logging.getLogger("tenpo").setLevel(logging.WARNING)
    broker = _services.mqtt_broker()
    root = Path(tempfile.mkdtemp(prefix="tenpo-bench-mqtt-"))
    try:
        rate, objects = run_arm(root / "batched", MESSAGES, 1000, broker)
        base_rate, base_objects = run_arm(root / "baseline", BASELINE_MESSAGES, 1, broker)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(
        "mqtt_ingest",
        rate,
        "msgs/s",
        base_rate,
        10.0,
        messages=MESSAGES,
        landing_objects=objects,
        baseline_messages=BASELINE_MESSAGES,
        baseline_objects=base_objects,
        exact=True,
        target_msgs_per_s=5000,
        met_msgs_per_s=rate >= 5000,
        broker=f"{broker[0]}:{broker[1]}",
    )


if __name__ == "__main__":
    main()
