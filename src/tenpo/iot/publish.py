"""Send device event files over MQTT through a running subscriber (the demo's IoT path).

:func:`ingest_files_over_mqtt` starts an :class:`~tenpo.iot.mqtt.MqttSubscriber`, publishes
each file's events as its device would (QoS 1, on the device's own topic, in messages of at
most ``chunk`` events, as a device flushing its buffer does), waits until the subscriber has
landed and acknowledged every message, and stops it. A private topic prefix and client id
keep concurrent runs on one broker apart.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tenpo.core.errors import BadInput, ConfigError
from tenpo.core.ids import new_id
from tenpo.core.settings import Settings
from tenpo.iot.mqtt import MqttSubscriber, SubscriberStats, device_topic
from tenpo.iot.preetl import split_events
from tenpo.lake.base import Lake

__all__ = ["device_messages", "ingest_files_over_mqtt"]

log = logging.getLogger(__name__)


def device_messages(body: bytes, chunk: int = 200) -> list[tuple[str, bytes]]:
    """(device_id, JSON array) messages of one events file, at most ``chunk`` events each."""
    try:
        events = split_events(json.loads(body))
    except ValueError as exc:
        raise BadInput(f"not a device events file: {exc}") from exc
    by_device: dict[str, list[Any]] = {}
    for ev in events:
        device = ev.get("device_id") if isinstance(ev, dict) else None
        if not isinstance(device, str):
            raise BadInput("a device event without a device_id")
        by_device.setdefault(device, []).append(ev)
    return [
        (device, json.dumps(evs[i : i + chunk], separators=(",", ":")).encode())
        for device, evs in by_device.items()
        for i in range(0, len(evs), chunk)
    ]


def ingest_files_over_mqtt(
    settings: Settings,
    lake: Lake,
    control: Any,
    files: Iterable[tuple[str, Path]],
    *,
    on_file: Callable[[], None] | None = None,
    timeout: float = 120.0,
) -> SubscriberStats:
    """Publish every (tenant, events file) over MQTT and return once all are landed.

    Raises :class:`ConfigError` when the broker is unreachable or the subscriber falls
    behind by more than ``timeout`` seconds.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tenpo.bus import open_bus
    from tenpo.lake.landing import LandingZone

    run = new_id()
    cfg = settings.model_copy(
        update={
            "mqtt_topic_prefix": f"tenpo-run-{run}",
            "mqtt_client_id": f"tenpo-run-{run}",
            "mqtt_session_expiry_s": 60,
            "mqtt_batch_seconds": 0.2,
        }
    )
    bus = open_bus(cfg)
    landing = LandingZone(lake, bus, timezone=cfg.default_timezone)
    sub = MqttSubscriber(cfg, lake, landing, control.directory())
    sub.start()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{run}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    try:
        deadline = time.monotonic() + 10
        while not sub.subscribed.wait(0.05):
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"MQTT subscriber could not subscribe at {cfg.mqtt_host}:{cfg.mqtt_port}"
                )
        try:
            pub.connect(cfg.mqtt_host, cfg.mqtt_port)
        except OSError as exc:
            raise ConfigError(f"MQTT broker unreachable: {exc}") from exc
        pub.loop_start()
        infos = []
        for tenant, path in files:
            for device, payload in device_messages(path.read_bytes()):
                topic = device_topic(tenant, device, cfg.mqtt_topic_prefix)
                infos.append(pub.publish(topic, payload, qos=1))
            if on_file is not None:
                on_file()
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        while sub.stats.acked < len(infos):
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"MQTT subscriber acknowledged {sub.stats.acked} of {len(infos)} messages "
                    f"within {timeout:.0f}s"
                )
            time.sleep(0.02)
        log.info("sent %d MQTT messages: %s", len(infos), sub.stats.as_dict())
        return sub.stats
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.join()
        bus.close()
