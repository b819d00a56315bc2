"""Alembic migrations: upgrade to head, downgrade to base, and models matching the schema."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tenpo.control import migrate
from tenpo.control.db import (
    create_control_engine,
    current_revision,
    downgrade,
    head_revision,
)
from tenpo.control.models import Base

TABLES = {
    "tenants",
    "stores",
    "devices",
    "pos_registers",
    "api_keys",
    "users",
    "user_stores",
    "initiatives",
    "budgets",
    "initiative_stores",
    "alert_rules",
    "staff_members",
    "alert_deliveries",
    "alert_acks",
}


def _tables(url: str) -> set[str]:
    engine = create_control_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_control_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    assert _revision(empty_db_url) is None

    migrate(empty_db_url)
    assert _revision(empty_db_url) == head_revision() == "0009"
    assert TABLES <= _tables(empty_db_url)

    migrate(empty_db_url)  # idempotent
    assert _revision(empty_db_url) == "0009"

    downgrade(empty_db_url, "base")
    assert _revision(empty_db_url) is None
    assert not TABLES & _tables(empty_db_url)

    migrate(empty_db_url)
    assert TABLES <= _tables(empty_db_url)


def test_models_match_migrations(empty_db_url: str) -> None:
    migrate(empty_db_url)
    engine = create_control_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "version_table": "alembic_version_control"},
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrate_creates_missing_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'control.db'}"
    migrate(url)
    assert TABLES <= _tables(url)


def test_concurrent_migrations_are_serialised(empty_db_url: str) -> None:
    # Gateway, streamer and API may start together; each migrates on start.
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(migrate, empty_db_url) for _ in range(3)]:
            future.result()
    assert _revision(empty_db_url) == head_revision()
    assert TABLES <= _tables(empty_db_url)
