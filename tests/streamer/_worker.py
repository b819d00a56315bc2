"""A streamer process for the SIGKILL tests: ``python -m tests.streamer._worker DATA_DIR BATCH
ACK_WAIT [WRITE_DELAY]``.

Runs the streamer with the test JSON Pre-ETL (slowed down a little so the test can kill it
mid-run) until SIGTERM, over the bus and ledger the ``TENPO_*`` environment names (the SQLite
bus and ledger by default). ``WRITE_DELAY`` seconds after each raw-table part written widen
the window in which the process holds pending parts.
"""

from __future__ import annotations

import sys
import threading
import time

from tenpo.bus import open_bus
from tenpo.control.directory import Directory, StaticDirectory
from tenpo.core.logging import setup_logging
from tenpo.core.preetl import ParseResult
from tenpo.core.settings import Settings
from tenpo.lake import Lake, ObjectRegistered, open_lake
from tenpo.streamer import Streamer, stop_on_signals
from tests.streamer._fakes import JsonPreEtl


class SlowJsonPreEtl(JsonPreEtl):
    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        time.sleep(0.005)
        return super().parse(event, data, directory)


def slow_part_writes(lake: Lake, delay: float) -> None:
    """Make every raw-table part write of ``lake`` take ``delay`` seconds longer, one part at a
    time (a slow disk: the streamer's parallel puts of a batch do not overlap their delays)."""
    put = lake.put
    disk = threading.Lock()

    def slow_put(key: str, data: bytes) -> None:
        if not key.startswith("tables/"):
            put(key, data)
            return
        with disk:
            put(key, data)
            time.sleep(delay)

    lake.put = slow_put  # type: ignore[method-assign]


def main(data_dir: str, batch: int, ack_wait: float, write_delay: float = 0.0) -> None:
    setup_logging("INFO")
    cfg = Settings(data_dir=data_dir, streamer_batch_objects=batch, bus_ack_wait_s=ack_wait)
    lake = open_lake(cfg.lake_root)
    if write_delay:
        slow_part_writes(lake, write_delay)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, StaticDirectory(), {"test_json": SlowJsonPreEtl()})
    try:
        with stop_on_signals() as stop:
            streamer.run_forever(stop)
    finally:
        streamer.close()
        bus.close()


if __name__ == "__main__":
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), delay)
