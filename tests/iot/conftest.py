"""IoT fixtures: a broker (the machine's Mosquitto or a stand-in), a registered chain, helpers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tenpo.bus import EventBus, open_bus
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.lake import Lake, LandingZone, open_lake
from tests import _services


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int, str]:
    """(host, port, protocol) of a reachable MQTT broker."""
    return _services.mqtt_broker()


@dataclass
class Chain:
    """Two tenants with a people counter each, and the stores to read and write them."""

    settings: Settings
    control: ControlPlane
    lake: Lake
    bus: EventBus
    prefix: str

    def landing(self) -> LandingZone:
        return LandingZone(self.lake, self.bus, timezone=self.settings.default_timezone)

    def topic(self, tenant: str, device: str) -> str:
        return f"{self.prefix}/{tenant}/devices/{device}/events"


@pytest.fixture
def chain(settings: Settings, mqtt_broker: tuple[str, int, str]) -> Iterator[Chain]:
    """Tenants t1 (device pc-001, store s1) and t2 (pc-002); settings point at the broker."""
    host, port, protocol = mqtt_broker
    run = uuid.uuid4().hex[:10]
    s = settings.model_copy(
        update={
            "mqtt_host": host,
            "mqtt_port": port,
            "mqtt_protocol": protocol,
            "mqtt_topic_prefix": f"tenpo-test-{run}",
            "mqtt_client_id": f"tenpo-test-{run}",
            "mqtt_session_expiry_s": 120,
            "mqtt_batch_messages": 200,
            "mqtt_batch_seconds": 0.2,
            "mqtt_max_message_bytes": 4096,
            "bus_ack_wait_s": 5.0,
        }
    )
    control = ControlPlane.open(s.control_db_url)
    for tenant, device in (("t1", "pc-001"), ("t2", "pc-002")):
        control.create_tenant(tenant, tenant.upper())
        store = control.create_store(tenant, "S1", "Store 1")
        control.create_device(tenant, device, store.store_id, "people_counter",
                              lines=("entrance", "passby"))  # fmt: skip
    bus = open_bus(s)
    yield Chain(s, control, open_lake(s.lake_root), bus, s.mqtt_topic_prefix)
    bus.close()
    control.dispose()


def count_event(device: str, seq: int, minute: int = 0, **changes: Any) -> dict[str, Any]:
    """A one-minute entrance count of ``device`` on 2026-11-02 (JST), ``minute`` after 10:00."""
    h, m = divmod(600 + minute, 60)
    nh, nm = divmod(600 + minute + 1, 60)
    ev: dict[str, Any] = {
        "v": 1, "device_id": device, "seq": seq, "type": "count", "line": "entrance",
        "interval_start": f"2026-11-02T{h:02d}:{m:02d}:00+09:00",
        "interval_end": f"2026-11-02T{nh % 24:02d}:{nm:02d}:00+09:00",
        "in": seq % 7, "out": seq % 5,
    }  # fmt: skip
    ev.update(changes)
    return ev


class Publisher:
    """A QoS-1 publisher that waits for every PUBACK."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.infos.append(self.client.publish(topic, data, qos=1))

    def wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        self.infos.clear()

    def close(self) -> None:
        self.wait()
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_broker: tuple[str, int, str]) -> Iterator[Publisher]:
    """A connected publisher, closed after the test."""
    pub = Publisher(mqtt_broker[0], mqtt_broker[1])
    yield pub
    pub.close()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
