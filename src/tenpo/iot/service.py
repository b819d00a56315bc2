"""Wiring of the IoT services for `tenpo serve iot` and `serve all`: subscriber + late monitor."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from tenpo.core.settings import Settings
from tenpo.iot.late import LateDataMonitor
from tenpo.iot.mqtt import ControlPlaneOwners, MqttSubscriber
from tenpo.lake.base import Lake

__all__ = ["IotService"]

log = logging.getLogger(__name__)


class IotService:
    """The MQTT subscriber and the late-data monitor over the settings' stores.

    ``control`` and ``lake`` may be injected (``serve all`` shares them); the bus connections
    are the service's own (one per thread) and closed by :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        control: Any = None,
        lake: Lake | None = None,
        mqtt: bool = True,
        late: bool = True,
    ) -> None:
        from tenpo.bus import open_bus
        from tenpo.lake import LandingZone, open_lake

        self._cleanup = contextlib.ExitStack()
        if control is None:
            from tenpo.control import ControlPlane

            control = ControlPlane.open(settings.control_db_url)
            self._cleanup.callback(control.dispose)
        lake = lake or open_lake(settings.lake_root)
        self.subscriber: MqttSubscriber | None = None
        self.monitor: LateDataMonitor | None = None
        if mqtt:
            bus = open_bus(settings)
            self._cleanup.callback(bus.close)
            self.subscriber = MqttSubscriber(
                settings,
                lake,
                LandingZone(lake, bus, timezone=settings.default_timezone),
                control.directory(),
                owners=ControlPlaneOwners(control),
            )
        if late:
            late_bus = open_bus(settings)
            self._cleanup.callback(late_bus.close)
            self.monitor = LateDataMonitor(late_bus, settings.default_timezone)
        self._threads: list[threading.Thread] = []

    def start(self, stop: threading.Event) -> None:
        """Run the enabled services in daemon threads until ``stop`` is set."""
        if self.subscriber is not None:
            self._spawn("mqtt-subscriber", self.subscriber.run, stop)
        if self.monitor is not None:
            self._spawn("late-monitor", self.monitor.run_forever, stop)

    def _spawn(self, name: str, target: Any, stop: threading.Event) -> None:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the threads (after ``stop`` was set)."""
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s did not stop within %.0fs", thread.name, timeout)

    def write_stats(self, path: Path) -> None:
        """Write the subscriber's counters and whether it is subscribed to ``path`` (atomic)."""
        sub = self.subscriber
        stats = {
            "subscribed": sub is not None and sub.subscribed.is_set(),
            **(sub.stats.as_dict() if sub is not None else {}),
            "late_partitions": self.monitor.stats.late if self.monitor is not None else 0,
        }
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
        os.replace(tmp, path)

    def close(self) -> None:
        """Release the service's own connections."""
        self._cleanup.close()
