"""Child-process entry points of the bus tests (kept apart so children skip importing pytest)."""

from __future__ import annotations

from pathlib import Path

from tenpo.bus.base import OBJECT_REGISTERED
from tenpo.bus.sqlite import SqliteBus


def publish_worker(path: str, prefix: str, n: int) -> None:
    """Publish ``n`` events ``{prefix}-{i}`` one by one on the SQLite bus at ``path``."""
    with SqliteBus(Path(path), ack_wait=30) as bus:
        for i in range(n):
            bus.publish(OBJECT_REGISTERED, {"producer": prefix, "i": i}, event_id=f"{prefix}-{i}")
