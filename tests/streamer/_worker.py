"""A streamer process for the SIGKILL test: ``python -m tests.streamer._worker DATA_DIR``.

Runs the streamer over the SQLite bus with the test JSON Pre-ETL (slowed down a little so
the test can kill it mid-run) until SIGTERM.
"""

from __future__ import annotations

import sys
import time

from tenpo.bus import open_bus
from tenpo.control.directory import Directory, StaticDirectory
from tenpo.core.logging import setup_logging
from tenpo.core.preetl import ParseResult
from tenpo.core.settings import Settings
from tenpo.lake import ObjectRegistered, open_lake
from tenpo.streamer import Streamer, stop_on_signals
from tests.streamer._fakes import JsonPreEtl


class SlowJsonPreEtl(JsonPreEtl):
    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        time.sleep(0.005)
        return super().parse(event, data, directory)


def main(data_dir: str, batch: int, ack_wait: float) -> None:
    setup_logging("INFO")
    cfg = Settings(data_dir=data_dir, streamer_batch_objects=batch, bus_ack_wait_s=ack_wait)
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, StaticDirectory(), {"test_json": SlowJsonPreEtl()})
    with stop_on_signals() as stop:
        streamer.run_forever(stop)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
