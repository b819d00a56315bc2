"""The MQTT ingest wait scales with the work: it fails on a stall, never on a fixed clock."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tenpo.core.errors import ConfigError
from tenpo.iot.publish import _wait_for_progress


class Info:
    def __init__(self) -> None:
        self.done = False

    def is_published(self) -> bool:
        return self.done


def feeder(infos: list[Info], sub: Any, step_s: float, stop_after: int | None = None) -> None:
    for i, info in enumerate(infos):
        if stop_after is not None and i >= stop_after:
            return
        time.sleep(step_s)
        info.done = True
        sub.stats.acked += 1


def test_slow_but_steady_progress_is_waited_for_beyond_the_stall_timeout() -> None:
    infos = [Info() for _ in range(12)]
    sub = SimpleNamespace(stats=SimpleNamespace(acked=0))
    seen: list[tuple[int, int]] = []
    t = threading.Thread(target=feeder, args=(infos, sub, 0.05))
    started = time.monotonic()
    t.start()
    # 12 × 0.05 s = 0.6 s of work, three times the stall timeout: still succeeds.
    _wait_for_progress(infos, sub, 0.2, lambda a, n: seen.append((a, n)))  # type: ignore[arg-type]
    t.join()
    assert time.monotonic() - started >= 0.5
    assert seen[-1] == (12, 12) and all(n == 12 for _, n in seen)


def test_a_stalled_subscriber_fails_naming_the_progress() -> None:
    infos = [Info() for _ in range(5)]
    sub = SimpleNamespace(stats=SimpleNamespace(acked=0))
    t = threading.Thread(target=feeder, args=(infos, sub, 0.01, 3))
    t.start()
    with pytest.raises(ConfigError, match=r"acknowledged 3 of 5 messages \(3 published\).*0s"):
        _wait_for_progress(infos, sub, 0.3, None)  # type: ignore[arg-type]
    t.join()


def test_device_messages_carry_the_events_as_read() -> None:
    import json

    from tenpo.iot.publish import device_messages

    events = [
        {"v": 1, "device_id": "pc-1", "seq": i, "type": "count", "in": i, "out": 0, "name": "入口"}
        for i in range(5)
    ] + [{"v": 1, "device_id": "pc-2", "seq": 1, "battery": 0.5, "big": 2**70}]
    body = json.dumps({"events": events}).encode()
    messages = device_messages(body, chunk=2)
    assert [d for d, _ in messages] == ["pc-1", "pc-1", "pc-1", "pc-2"]
    got = [ev for _, payload in messages for ev in json.loads(payload)]
    assert got == events
    assert json.loads(messages[-1][1])[0]["big"] == 2**70  # still an integer
    nan = json.dumps({"events": [{"device_id": "pc-3", "battery": float("nan")}]}).encode()
    assert b"NaN" in device_messages(nan)[0][1]  # written as it was read, not as null
