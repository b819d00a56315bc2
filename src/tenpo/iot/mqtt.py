"""The MQTT subscriber: device messages from the broker into the landing zone, at least once.

Devices publish JSON (FORMATS.md) with QoS 1 on ``{prefix}/{tenant}/devices/{device}/events``.
The subscriber holds a *persistent session* (MQTT 5, ``clean_start=False`` and a session expiry
interval), so the broker keeps what is published while it is down and delivers it on return.
Acknowledgements are manual: a message is PUBACKed only once it is durably in the lake —

1. messages are batched by count (``mqtt_batch_messages``) or age (``mqtt_batch_seconds``);
2. each message is checked: topic shape, size, a registered device of the topic's tenant,
   UTF-8 JSON whose events all name the topic's device (a device cannot write for another
   device or tenant). Messages failing these checks go to ``quarantine/mqtt_messages/`` with
   their reason and their bytes exactly as received (:func:`payload_fields`). Events are not
   validated here (per-event pydantic would cap ingest at ~10k events/s): the streamer's
   Pre-ETL validates each (schema, interval, future timestamps…) and quarantines the bad ones;
   topics are parsed once and devices looked up through the directory's cache;
3. the accepted messages of each tenant become ONE landing object holding the messages byte
   for byte as received (content type :data:`~tenpo.iot.preetl.MQTT_FRAMES`: a header line
   with topic, device, receive time, then the payload; id = content hash), landed with
   ``LandingZone.land``;
4. only then is every message of the batch acknowledged.

A crash between 3 and 4 makes the broker redeliver those messages: they land again in another
object, and the warehouse's (device, seq) and natural-key deduplication counts them once.
Receive Maximum is raised (MQTT 5) so the broker keeps sending while a batch waits for its ack;
MQTT 3.1.1 brokers cap unacknowledged messages per client (Mosquitto: 20), which still works but
makes batches small.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tenpo.control.directory import DeviceRef, Directory
from tenpo.core.errors import TenpoError
from tenpo.core.ids import content_id, utcnow
from tenpo.core.settings import Settings
from tenpo.iot.preetl import (
    FUTURE_TOLERANCE,
    MQTT_FRAMES,
    check_event,
    frame,
    split_events,
)
from tenpo.lake.base import Lake
from tenpo.lake.keys import quarantine_key
from tenpo.lake.landing import LandingZone

__all__ = [
    "QUARANTINE_TABLE",
    "ControlPlaneOwners",
    "MqttSubscriber",
    "SubscriberStats",
    "broker_reachable",
    "device_topic",
    "mqtt_wanted",
    "parse_topic",
    "payload_fields",
    "subscription",
]

log = logging.getLogger(__name__)

QUARANTINE_TABLE = "mqtt_messages"
"""Quarantine "table" of MQTT messages refused by the subscriber (whole messages)."""

_TENANT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LOG_EVERY = 10.0  # seconds between summary lines / per-category warning bursts
_WARNINGS_PER_BURST = 5


def subscription(prefix: str = "tenpo") -> str:
    """The topic filter of every device's events: ``{prefix}/+/devices/+/events``."""
    return f"{prefix}/+/devices/+/events"


def device_topic(tenant_id: str, device_id: str, prefix: str = "tenpo") -> str:
    """The topic device ``device_id`` of ``tenant_id`` publishes on."""
    return f"{prefix}/{tenant_id}/devices/{device_id}/events"


def parse_topic(topic: str, prefix: str = "tenpo") -> tuple[str, str]:
    """(tenant, device) of a device topic; ``ValueError`` naming what is wrong otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix or parts[2] != "devices" or parts[4] != "events":
        raise ValueError(f"topic {topic!r} is not {device_topic('{tenant}', '{device}', prefix)}")
    tenant, device = parts[1], parts[3]
    if not _TENANT.match(tenant):
        raise ValueError(f"topic {topic!r}: invalid tenant id {tenant!r}")
    if not _DEVICE.match(device):
        raise ValueError(f"topic {topic!r}: invalid device id {device!r}")
    return tenant, device


class DeviceOwners(Protocol):
    """Which tenants registered a device id (to tell "wrong tenant" from "unknown device")."""

    def __call__(self, device_id: str) -> tuple[str, ...]: ...


@dataclass
class SubscriberStats:
    """Counters of one subscriber since it started (thread-safe snapshot via :meth:`as_dict`)."""

    received: int = 0  # messages delivered by the broker (redeliveries included)
    redelivered: int = 0  # of which flagged DUP by the broker
    accepted: int = 0  # messages landed
    events: int = 0  # events in landed messages (each validated by the streamer's Pre-ETL)
    rejected: Counter[str] = field(default_factory=Counter)  # messages quarantined, by reason
    objects: int = 0  # landing objects written
    quarantine_objects: int = 0
    acked: int = 0
    flush_failures: int = 0
    connects: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-able values."""
        return {
            "received": self.received,
            "redelivered": self.redelivered,
            "accepted": self.accepted,
            "events": self.events,
            "rejected": dict(self.rejected),
            "objects": self.objects,
            "quarantine_objects": self.quarantine_objects,
            "acked": self.acked,
            "flush_failures": self.flush_failures,
            "connects": self.connects,
        }


@dataclass
class _Message:
    mid: int
    topic: str
    payload: bytes
    received_at: datetime
    dup: bool
    tenant: str | None = None
    device: str | None = None
    reason: str | None = None
    category: str | None = None


@dataclass
class _Batch:
    started: float
    messages: list[_Message] = field(default_factory=list)


class MqttSubscriber:
    """Subscribes to every device topic and lands messages in batches before acknowledging.

    Build it with the lake (for quarantine), the landing zone and the directory; call
    :meth:`run` with a stop event (blocks; reconnects with backoff), or :meth:`start` for a
    background thread. ``owners`` (optional) says which tenants registered a device id.
    """

    def __init__(
        self,
        settings: Settings,
        lake: Lake,
        landing: LandingZone,
        directory: Directory,
        *,
        owners: DeviceOwners | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.lake = lake
        self.landing = landing
        self.directory = directory
        self.owners = owners
        self.clock = clock
        self.prefix = settings.mqtt_topic_prefix
        self._tz = ZoneInfo(settings.default_timezone)
        self.stats = SubscriberStats()
        self.subscribed = threading.Event()
        self._batch: _Batch | None = None
        self._retry_at = 0.0  # after a failed landing, no new attempt before this
        self._failures = 0  # consecutive failed landings
        self._client: Any = None
        self._warned: Counter[str] = Counter()
        self._warn_window = time.monotonic()
        self._last_summary = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._topics: dict[str, tuple[str, str] | str] = {}  # topic → (tenant, device) | error

    # -- running -------------------------------------------------------------------------------

    def start(self) -> threading.Event:
        """Run in a daemon thread; returns the event that stops it (see :meth:`join`)."""
        stop = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(target=self.run, args=(stop,), name="mqtt", daemon=True)
        self._thread.start()
        return stop

    def join(self, timeout: float = 10.0) -> None:
        """Stop the thread started by :meth:`start` and wait for it."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, stop: threading.Event) -> SubscriberStats:
        """Receive, batch, land and acknowledge until ``stop`` is set; returns the counters.

        Connection failures are retried with backoff; the batch in progress on a lost
        connection is dropped unacknowledged (the broker delivers it again).
        """
        import paho.mqtt.client as mqtt

        client = self._make_client()
        self._client = client
        backoff = 0.0
        connected = False
        try:
            while not stop.is_set():
                if not connected:
                    if backoff:
                        stop.wait(backoff)
                        if stop.is_set():
                            break
                    try:
                        self._connect(client)
                        connected = True
                        backoff = 0.0
                    except OSError as exc:
                        backoff = min(max(backoff * 2, 0.2), 10.0)
                        log.warning(
                            "MQTT broker %s:%d unreachable (%s); retrying in %.1fs",
                            self.settings.mqtt_host,
                            self.settings.mqtt_port,
                            exc,
                            backoff,
                        )
                        continue
                rc = client.loop(timeout=self._wait())
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    log.warning("MQTT connection lost (%s); reconnecting", mqtt.error_string(rc))
                    self._drop_batch()
                    self.subscribed.clear()
                    connected = False
                    backoff = max(backoff, 0.2)
                    continue
                if self._due():
                    self.flush()
                self._summary()
            if connected:
                self.flush()
                client.disconnect()
                client.loop(timeout=0.2)
        finally:
            self.subscribed.clear()
        log.info("MQTT subscriber stopped: %s", self.stats.as_dict())
        return self.stats

    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        v5 = self.settings.mqtt_protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.mqtt_client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,
            clean_session=None if v5 else False,  # MQTT 5: clean_start on connect instead
        )
        if self.settings.mqtt_username:
            client.username_pw_set(self.settings.mqtt_username, self.settings.mqtt_password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self, client: Any) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        host, port = self.settings.mqtt_host, self.settings.mqtt_port
        if self.settings.mqtt_protocol != "5":
            client.connect(host, port, keepalive=30)  # clean_session=False set on the client
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        # The MQTT maximum: the broker keeps sending while a batch awaits its ack, and Mosquitto
        # only drops for a connected client beyond this plus max_queued_messages.
        props.ReceiveMaximum = 65535
        client.connect(
            host,
            port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )

    def _on_connect(
        self, client: Any, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        log.info(
            "connected to MQTT %s:%d as %s (session present: %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.mqtt_client_id,
            getattr(flags, "session_present", None),
        )
        client.subscribe(subscription(self.prefix), qos=1)

    def _on_subscribe(
        self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT subscription to %s refused: %s", subscription(self.prefix), reasons)
            return
        log.info("subscribed to %s (QoS 1)", subscription(self.prefix))
        self.subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        try:
            self.receive(msg.mid, msg.topic, bytes(msg.payload), dup=bool(msg.dup))
        except Exception:  # noqa: BLE001 - one message must never stop the subscriber
            log.exception("unexpected error on MQTT message %s", msg.mid)

    # -- batching ------------------------------------------------------------------------------

    def receive(self, mid: int, topic: str, payload: bytes, *, dup: bool = False) -> None:
        """Check one message and add it to the current batch (flushed by count or age)."""
        message = _Message(mid, topic, payload, self.clock(), dup)
        if self._batch is None:
            self._batch = _Batch(started=time.monotonic())
        self._batch.messages.append(message)
        self.stats.received += 1
        self.stats.redelivered += dup
        try:
            self._check(message)
        except Exception as exc:  # noqa: BLE001 - quarantined (and acked) rather than crash
            log.exception("unexpected error checking MQTT message on %r", topic)
            message.reason = f"internal error while checking: {type(exc).__name__}: {exc}"
            message.category = "internal"
        if self._due():
            self.flush()

    def _check(self, m: _Message) -> None:
        parsed = self._topics.get(m.topic)
        if parsed is None:
            try:
                parsed = parse_topic(m.topic, self.prefix)
            except ValueError as exc:
                parsed = str(exc)
            if len(self._topics) > 100_000:  # topics are per device: bounded in practice
                self._topics.clear()
            self._topics[m.topic] = parsed
        if isinstance(parsed, str):
            return self._refuse(m, parsed, "bad_topic")
        m.tenant, m.device = parsed
        limit = self.settings.mqtt_max_message_bytes
        if len(m.payload) > limit:
            return self._refuse(
                m, f"message of {len(m.payload)} bytes exceeds the limit of {limit}", "too_large"
            )
        device = self.directory.device(m.tenant, m.device)
        if device is None:
            owners = self.owners(m.device) if self.owners is not None else ()
            if owners:
                return self._refuse(
                    m,
                    f"device {m.device!r} belongs to another tenant, not {m.tenant!r}",
                    "wrong_tenant",
                )
            return self._refuse(
                m, f"unknown device {m.device!r} for tenant {m.tenant!r}", "unknown_device"
            )
        try:
            events = split_events(json.loads(m.payload.decode("utf-8")))
        except UnicodeDecodeError as exc:
            return self._refuse(m, f"not valid UTF-8 at byte {exc.start}", "malformed_json")
        except (ValueError, RecursionError) as exc:
            return self._refuse(m, f"malformed JSON: {exc}", "malformed_json")
        if not events:
            return self._refuse(m, "message holds no event", "malformed_json")
        latest = m.received_at + FUTURE_TOLERANCE
        tenant = m.tenant

        def device_of(device_id: str) -> DeviceRef | None:
            return device if device_id == m.device else self.directory.device(tenant, device_id)

        for raw in events:
            if type(raw) is dict and raw.get("device_id") == m.device:
                continue  # the topic's own device: the streamer's Pre-ETL validates the rest
            check = check_event(raw, tenant, device_of, latest, topic_device=m.device)
            if check.category == "device_mismatch":
                return self._refuse(m, check.reason or "", "device_mismatch")
        self.stats.events += len(events)
        return None

    def _refuse(self, m: _Message, reason: str, category: str) -> None:
        m.reason, m.category = reason, category
        self._warn(category, f"message on {m.topic!r} quarantined: {reason}")

    def _wait(self) -> float:
        if self._batch is None:
            return 0.1
        left = self.settings.mqtt_batch_seconds - (time.monotonic() - self._batch.started)
        return max(0.0, min(0.1, left))

    def _due(self) -> bool:
        batch = self._batch
        if time.monotonic() < self._retry_at:
            return False
        return batch is not None and (
            len(batch.messages) >= self.settings.mqtt_batch_messages
            or time.monotonic() - batch.started >= self.settings.mqtt_batch_seconds
        )

    def _drop_batch(self) -> None:
        if self._batch is not None and self._batch.messages:
            log.warning(
                "dropping %d unacknowledged message(s); the broker will deliver them again",
                len(self._batch.messages),
            )
        self._batch = None

    def flush(self) -> int:
        """Land the batch (one object per tenant), quarantine refused messages, then ack all.

        Returns the messages acknowledged. On a lake or bus failure nothing is acknowledged and
        the batch is kept for the next attempt.
        """
        batch = self._batch
        if batch is None or not batch.messages:
            self._batch = None
            return 0
        try:
            self._land(batch.messages)
        except TenpoError:
            self.stats.flush_failures += 1
            self._failures += 1
            delay = min(30.0, 0.25 * 2 ** min(self._failures, 7))
            log.exception(
                "could not land %d MQTT message(s); retrying in %.1fs", len(batch.messages), delay
            )
            self._retry_at = time.monotonic() + delay
            return 0
        self._retry_at, self._failures = 0.0, 0
        self._batch = None
        client = self._client
        if client is not None:
            for m in batch.messages:
                client.ack(m.mid, 1)
        self.stats.acked += len(batch.messages)
        return len(batch.messages)

    def _land(self, messages: list[_Message]) -> None:
        by_tenant: dict[str, list[_Message]] = {}
        refused: list[_Message] = []
        for m in messages:
            if m.reason is None and m.tenant is not None:
                by_tenant.setdefault(m.tenant, []).append(m)
            else:
                refused.append(m)
        if refused:
            self._quarantine(refused)
        for tenant, items in sorted(by_tenant.items()):
            data = b"".join(
                frame(m.topic, m.device or "", m.received_at, m.mid, m.dup, m.payload)
                for m in items
            )
            landed = self.landing.land(
                "iot",
                tenant,
                data,
                "frames",
                content_type=MQTT_FRAMES,
                meta={
                    "transport": "mqtt",
                    "client_id": self.settings.mqtt_client_id,
                    "messages": str(len(items)),
                },
            )
            self.stats.objects += 1
            self.stats.accepted += len(items)
            log.debug("landed %d MQTT message(s) as %s", len(items), landed.event.key)

    def _quarantine(self, refused: list[_Message]) -> None:
        now = self.clock()
        by_tenant: dict[str, list[_Message]] = {}
        for m in refused:
            tenant = m.tenant if m.tenant and _TENANT.match(m.tenant) else "_unknown"
            by_tenant.setdefault(tenant, []).append(m)
        day = now.astimezone(self._tz).date()
        for tenant, items in sorted(by_tenant.items()):
            lines = [
                json.dumps(
                    {
                        "reason": m.reason,
                        "category": m.category,
                        "topic": m.topic,
                        "mid": m.mid,
                        "received_at": m.received_at.isoformat(),
                        **payload_fields(m.payload),
                        "bytes": len(m.payload),
                        "table": QUARANTINE_TABLE,
                        "tenant_id": tenant,
                        "source": "iot",
                        "client_id": self.settings.mqtt_client_id,
                        "rejected_at": now.isoformat(),
                        "replayable": False,
                    },
                    ensure_ascii=False,
                )
                for m in items
            ]
            data = ("\n".join(lines) + "\n").encode()
            key = quarantine_key(QUARANTINE_TABLE, tenant, day, content_id(data))
            self.lake.put(key, data)
            self.stats.quarantine_objects += 1
            for m in items:
                self.stats.rejected[m.category or "internal"] += 1

    # -- logging -------------------------------------------------------------------------------

    def _warn(self, category: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warn_window > _LOG_EVERY:
            suppressed = sum(max(0, n - _WARNINGS_PER_BURST) for n in self._warned.values())
            if suppressed:
                log.warning("%d similar warning(s) suppressed", suppressed)
            self._warned.clear()
            self._warn_window = now
        self._warned[category] += 1
        if self._warned[category] <= _WARNINGS_PER_BURST:
            log.warning("%s (%s)", text, category)

    def _summary(self) -> None:
        now = time.monotonic()
        if now - self._last_summary >= _LOG_EVERY * 6:
            self._last_summary = now
            log.info("MQTT subscriber: %s", self.stats.as_dict())


def payload_fields(payload: bytes) -> dict[str, str]:
    """A refused message's bytes, exactly as received, for its quarantine line.

    ``{"payload": text}`` when the bytes are valid UTF-8 (the text encodes back to the very same
    bytes), else ``{"payload_base64": ...}``; never cut, never decoded with replacement characters.
    """
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payload_base64": base64.b64encode(payload).decode("ascii")}


class ControlPlaneOwners:
    """:class:`DeviceOwners` from the control plane's device list, refreshed every ``ttl`` s."""

    def __init__(self, control: Any, ttl: float = 60.0) -> None:
        self._control = control
        self._ttl = ttl
        self._loaded = -float("inf")
        self._owners: dict[str, tuple[str, ...]] = {}

    def __call__(self, device_id: str) -> tuple[str, ...]:
        """Tenants that registered ``device_id`` (empty when none did)."""
        if time.monotonic() - self._loaded > self._ttl:
            owners: dict[str, list[str]] = {}
            for tenant in self._control.list_tenants():
                for device in self._control.list_devices(tenant.tenant_id):
                    owners.setdefault(device.device_id, []).append(tenant.tenant_id)
            self._owners = {k: tuple(v) for k, v in owners.items()}
            self._loaded = time.monotonic()
        return self._owners.get(device_id, ())


def broker_reachable(settings: Settings, timeout: float = 0.5) -> bool:
    """Whether the configured MQTT broker accepts TCP connections."""
    import socket

    try:
        with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=timeout):
            return True
    except OSError:
        return False


def mqtt_wanted(settings: Settings) -> bool:
    """Whether `serve all` runs the subscriber: ``mqtt_enabled``, or (unset) a reachable broker."""
    if settings.mqtt_enabled is not None:
        return settings.mqtt_enabled
    return broker_reachable(settings)
