"""``MemoryBus``: an in-process :class:`EventBus` with the same semantics, for unit tests."""

from __future__ import annotations

import threading
import time
from typing import Any

from tenpo.bus.base import Delivery, EventBus


class MemoryBus(EventBus):
    """Thread-safe, not durable: progress and events vanish with the object."""

    def __init__(self, ack_wait: float = 30.0) -> None:
        self.ack_wait = ack_wait
        self._lock = threading.Condition()
        self._events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._ids: dict[str, set[str]] = {}
        # (consumer, topic) -> index -> (attempts, delivered_at or None, acked)
        self._state: dict[tuple[str, str], dict[int, list[Any]]] = {}

    def publish(self, topic: str, payload: dict[str, Any], event_id: str) -> None:
        with self._lock:
            ids = self._ids.setdefault(topic, set())
            if event_id in ids:
                return
            ids.add(event_id)
            self._events.setdefault(topic, []).append((event_id, dict(payload)))
            self._lock.notify_all()

    def fetch(
        self, topic: str, consumer: str, max_events: int = 100, timeout: float = 1.0
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                out = self._claim(topic, consumer, max_events)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._lock.wait(min(remaining, 0.05))

    def _claim(self, topic: str, consumer: str, max_events: int) -> list[Delivery]:
        state = self._state.setdefault((consumer, topic), {})
        now = time.monotonic()
        out: list[Delivery] = []
        for i, (event_id, payload) in enumerate(self._events.get(topic, [])):
            st = state.setdefault(i, [0, None, False])
            if st[2] or (st[1] is not None and now - st[1] < self.ack_wait):
                continue
            st[0] += 1
            st[1] = now
            out.append(Delivery(topic, event_id, payload, st[0], token=(consumer, i)))
            if len(out) >= max_events:
                break
        return out

    def ack(self, delivery: Delivery) -> None:
        consumer, i = delivery.token
        with self._lock:
            self._state[(consumer, delivery.topic)][i][2] = True

    def nak(self, delivery: Delivery) -> None:
        consumer, i = delivery.token
        with self._lock:
            self._state[(consumer, delivery.topic)][i][1] = None
            self._lock.notify_all()

    def pending(self, topic: str, consumer: str) -> int:
        with self._lock:
            state = self._state.get((consumer, topic), {})
            total = len(self._events.get(topic, []))
            return total - sum(1 for st in state.values() if st[2])
