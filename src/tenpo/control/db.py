"""Engines and schema migrations of the control-plane database (SQLite or PostgreSQL).

``migrate(url)`` runs ``alembic upgrade head`` with a Config built in code, so it works
from an installed package. Concurrent callers (gateway, streamer and API starting at once)
are serialised: a PostgreSQL advisory lock, or SQLite's ``BEGIN IMMEDIATE`` write lock,
is held for the whole upgrade, which runs in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

_SCRIPT_LOCATION = "tenpo.control:migrations"
_VERSION_TABLE = "alembic_version_control"
# Arbitrary but fixed: the key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK_KEY = 0x7E4B0C01
_SQLITE_BUSY_MS = 30_000


def create_control_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` set up for the control plane (SQLite: foreign keys, WAL, busy wait).

    The parent folder of a SQLite file is created when missing; an in-memory SQLite URL gets a
    single shared connection so the schema outlives the first connection.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if _is_memory(database):
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        # Servers drop idle connections; a long-running gateway must not see them fail.
        kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(parsed, **kwargs)
    prepare_engine(engine)
    return engine


def prepare_engine(engine: Engine) -> None:
    """Install the SQLite connection settings on ``engine`` (idempotent; no-op elsewhere)."""
    if engine.dialect.name == "sqlite" and not sa.event.contains(
        engine, "connect", _sqlite_on_connect
    ):
        sa.event.listen(engine, "connect", _sqlite_on_connect)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    if not isinstance(dbapi_conn, sqlite3.Connection):
        return
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
    finally:
        cursor.close()


def _is_memory(database: str) -> bool:
    return database in ("", ":memory:") or database.startswith("file::memory:")


def _config(connection: Connection) -> Config:
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of tenpo."""
    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("no control-plane migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database at ``engine`` is at (None when never migrated)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": _VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` in one locked transaction."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade_engine(engine: Engine, revision: str = "base") -> None:
    """Take the database at ``engine`` back to ``revision`` (``base`` drops every table)."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def migrate(url: str) -> None:
    """Upgrade the control-plane database at ``url`` to the newest schema (idempotent)."""
    engine = create_control_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the control-plane database at ``url`` to ``revision``."""
    engine = create_control_engine(url)
    try:
        downgrade_engine(engine, revision)
    finally:
        engine.dispose()


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            _run_sqlite(conn, step)
        else:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                step(_config(conn))
    logger.info("control plane at %s migrated", engine.url.render_as_string(hide_password=True))


def _run_sqlite(conn: Connection, step: Callable[[Config], None]) -> None:
    # pysqlite opens transactions lazily and never before DDL; drive them by hand so the
    # whole migration is one transaction holding the database's write lock.
    raw = conn.connection.driver_connection
    if not isinstance(raw, sqlite3.Connection):  # pragma: no cover - other SQLite drivers
        with conn.begin():
            step(_config(conn))
        return
    previous = raw.isolation_level
    raw.isolation_level = None
    try:
        if not _is_memory(conn.engine.url.database or ""):
            # Persistent: readers (gateway, streamer) no longer block on the admin's writes.
            _enable_wal(raw)
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            step(_config(conn))
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
    finally:
        raw.isolation_level = previous
        conn.rollback()


def _enable_wal(raw: sqlite3.Connection) -> None:
    # Switching the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at
    # once (without its busy handler) while another process migrates: wait for it ourselves.
    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
    delay = 0.01
    while True:
        try:
            raw.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
