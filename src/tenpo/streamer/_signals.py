"""Graceful stop: SIGTERM/SIGINT set an event that ``Streamer.run_forever`` watches."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (main thread only); old handlers come back after."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        # The handler runs on the main thread, which may be inside ``stop.wait`` holding the
        # event's lock: setting it right here can deadlock. Set it (and log) from a thread.
        def set_stop() -> None:
            log.info("received %s, stopping after the current batch", signal.Signals(signum).name)
            stop.set()

        threading.Thread(target=set_stop, name="tenpo-stop", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
