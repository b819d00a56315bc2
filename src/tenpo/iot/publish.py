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

import orjson

from tenpo.core.bodies import loads
from tenpo.core.errors import BadInput, ConfigError
from tenpo.core.ids import new_id
from tenpo.core.settings import Settings
from tenpo.iot.mqtt import MqttSubscriber, SubscriberStats, device_topic
from tenpo.iot.preetl import split_events
from tenpo.lake.base import Lake

__all__ = ["device_messages", "ingest_files_over_mqtt"]

log = logging.getLogger(__name__)


def device_messages(body: bytes, chunk: int = 200) -> list[tuple[str, bytes]]:
    """(device_id, JSON array) messages of one events file, at most ``chunk`` events each.

    Each message holds the file's events as :func:`tenpo.core.bodies.loads` reads them
    (orjson writes them; a file with ``NaN``/``Infinity`` literals or integers beyond 64 bits,
    which orjson cannot write as they were, goes through ``json.dumps``).
    """
    try:
        events = split_events(loads(body))
    except ValueError as exc:
        raise BadInput(f"not a device events file: {exc}") from exc
    by_device: dict[str, list[Any]] = {}
    for ev in events:
        device = ev.get("device_id") if isinstance(ev, dict) else None
        if not isinstance(device, str):
            raise BadInput("a device event without a device_id")
        by_device.setdefault(device, []).append(ev)
    exact = b"NaN" not in body and b"Infinity" not in body
    return [
        (device, _dumps(evs[i : i + chunk], exact))
        for device, evs in by_device.items()
        for i in range(0, len(evs), chunk)
    ]


def _dumps(events: list[Any], fast: bool) -> bytes:
    if fast:
        try:
            return orjson.dumps(events)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            pass
    return json.dumps(events, separators=(",", ":")).encode()


def ingest_files_over_mqtt(
    settings: Settings,
    lake: Lake,
    control: Any,
    files: Iterable[tuple[str, Path]],
    *,
    on_file: Callable[[], None] | None = None,
    on_acked: Callable[[int, int], None] | None = None,
    stall_timeout: float = 60.0,
    max_in_flight: int = 500,
) -> SubscriberStats:
    """Publish every (tenant, events file) over MQTT and return once all are landed.

    The wait scales with the work: it fails only when neither the broker's publish
    acknowledgements nor the subscriber's landed messages advance for ``stall_timeout``
    seconds (:class:`ConfigError`, also when the broker is unreachable). ``on_acked(acked,
    total)`` reports the subscriber's progress while waiting.

    At most ``max_in_flight`` messages are published and not yet landed: a broker queues a
    limited number of messages per subscriber (Mosquitto's ``max_queued_messages``, 1000 by
    default) and silently drops the rest, so publishing a month of a chain at once would lose
    messages the publisher saw acknowledged.
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
        infos: list[Any] = []
        window = _Window(sub, max_in_flight, stall_timeout)
        for tenant, path in files:
            for device, payload in device_messages(path.read_bytes()):
                window.wait_for_room(len(infos))
                topic = device_topic(tenant, device, cfg.mqtt_topic_prefix)
                infos.append(pub.publish(topic, payload, qos=1))
            if on_file is not None:
                on_file()
        _wait_for_progress(infos, sub, stall_timeout, on_acked)
        log.info("sent %d MQTT messages: %s", len(infos), sub.stats.as_dict())
        return sub.stats
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.join()
        bus.close()


class _Window:
    """Holds the publisher back while ``limit`` messages wait for the subscriber."""

    def __init__(self, sub: MqttSubscriber, limit: int, stall_timeout: float) -> None:
        if limit < 1:
            raise BadInput(f"max_in_flight must be ≥ 1, got {limit}")
        self.sub, self.limit, self.stall_timeout = sub, limit, stall_timeout

    def wait_for_room(self, published: int) -> None:
        acked, moved_at = self.sub.stats.acked, time.monotonic()
        while published - acked >= self.limit:
            time.sleep(0.002)
            now, latest = time.monotonic(), self.sub.stats.acked
            if latest != acked:
                acked, moved_at = latest, now
            elif now - moved_at > self.stall_timeout:
                raise ConfigError(
                    f"MQTT ingest stalled: the subscriber acknowledged {acked} of {published} "
                    f"published messages and made no progress for {self.stall_timeout:.0f}s"
                )


def _wait_for_progress(
    infos: list[Any],
    sub: MqttSubscriber,
    stall_timeout: float,
    on_acked: Callable[[int, int], None] | None,
) -> None:
    """Until the subscriber acknowledged every message; ``ConfigError`` once progress stalls."""
    total, published = len(infos), 0
    last, moved_at = (-1, -1), time.monotonic()
    while True:
        # QoS-1 messages complete mostly in order: advance a cursor instead of rescanning.
        while published < total and infos[published].is_published():
            published += 1
        acked = sub.stats.acked
        if on_acked is not None:
            on_acked(acked, total)
        if acked >= total:
            return
        now = time.monotonic()
        if (published, acked) != last:
            last, moved_at = (published, acked), now
        elif now - moved_at > stall_timeout:
            raise ConfigError(
                f"MQTT ingest stalled: the subscriber acknowledged {acked} of {total} messages "
                f"({published} published) and made no progress for {stall_timeout:.0f}s"
            )
        time.sleep(0.05)
