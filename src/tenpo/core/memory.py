"""Giving freed memory back to the operating system after a big unit of work.

Arrow's default pool (mimalloc) and glibc's malloc keep the pages of freed blocks for reuse.
After a stage of the scale harness (a stream of millions of rows) that is hundreds of MiB the
process no longer uses but still holds, and the next stage's working set came on top of it: at
700 stores × 3 days the marts stage started at 1.5 GiB, what the stream stage had left.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["release_unused_memory"]

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], Any] | None:
    """glibc's ``malloc_trim`` (None on another C library)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim: Callable[[int], Any] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_unused_memory() -> None:
    """Return the freed memory of Arrow's default pool and of the C heap to the OS.

    Costs a few milliseconds: call it after a big unit of work, not per row or request.
    Live data is untouched; a failure is logged and ignored.
    """
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
        trim = _malloc_trim()
        if trim is not None:
            trim(0)
    except Exception:  # noqa: BLE001 - an optimisation only
        log.debug("could not release unused memory", exc_info=True)
