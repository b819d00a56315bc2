"""Dagster's local SQLite event log, with one SQLAlchemy engine per database file kept open.

Dagster's ``SqliteEventLogStorage`` creates (and disposes) a SQLAlchemy engine for every
write: each event of a run costs a new engine, its dialect set-up and, since SQLAlchemy caches
compiled statements per engine, a fresh compilation of the same INSERT. A materialization of
the marts over a month writes hundreds of events (one per asset partition, check and step),
and that set-up was a quarter of its CPU time. This storage is the same one — same files,
schema, locking and ``NullPool`` (no connection is held between writes, so other processes,
e.g. ``dagster dev``, still read and write the files) — except that it keeps each file's engine
for the storage's life. ``dagster.yaml`` (written by ``tenpo.pipelines.run.ensure_dagster_home``)
names it as the event log storage; runs and schedules keep Dagster's own SQLite storages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

__all__ = ["SqliteEventLogStorageKeepingEngines"]


class SqliteEventLogStorageKeepingEngines(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that creates each shard's engine once instead of per write."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: dict[str, Engine] = {}
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: Any, config_value: dict[str, Any]
    ) -> SqliteEventLogStorageKeepingEngines:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                create_db_conn_string(self._base_dir, shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._engines[shard] = engine
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            # A wipe or an upgrade empties the set: the file is checked (created) again.
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
