"""Per-engine memory that a module's datamart tables exist, re-checked now and then.

Each ``ensure_*_schema`` creates its tables once per engine and then skips the work. The
datamart is derived and may be dropped and rebuilt under a running process (API, Dagster
code server): a memory kept for good would then make every later call fail until a restart.
So a remembered engine is re-checked (one ``has_table`` per table) once ``recheck_s`` has
passed since the last check, and the tables are created again when one is gone.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["SchemaMemo"]

logger = logging.getLogger(__name__)


class SchemaMemo:
    """Runs ``create(engine)`` the first time, then only when a table of ``tables`` is found
    missing by a check made at most every ``recheck_s`` seconds."""

    def __init__(self, tables: Iterable[str], create: Callable[[Engine], None], *,
                 recheck_s: float = 30.0) -> None:  # fmt: skip
        self.tables = tuple(tables)
        self.recheck_s = recheck_s
        self._create = create
        self._checked: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def ensure(self, engine: Engine) -> None:
        """Create the tables on ``engine`` unless known present (checked recently)."""
        with self._lock:
            checked = self._checked.get(engine)
            if checked is not None:
                if time.monotonic() - checked < self.recheck_s:
                    return
                inspector = sa.inspect(engine)
                gone = [t for t in self.tables if not inspector.has_table(t)]
                if not gone:
                    self._checked[engine] = time.monotonic()
                    return
                logger.warning("datamart tables %s are gone (dropped?): creating them", gone)
            self._create(engine)
            self._checked[engine] = time.monotonic()

    def forget(self, engine: Engine) -> None:
        """Check ``engine`` again on the next call."""
        with self._lock:
            self._checked.pop(engine, None)
