"""Fixtures: control databases on a SQLite file and on PostgreSQL.

``empty_db_url`` is a never-migrated database (a fresh PostgreSQL database per test, which
is slow to create); ``db_url`` is a migrated, emptied one (one PostgreSQL database per
session, truncated before each test).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenpo.control import ControlPlane, migrate

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
_TABLES = (
    "alert_acks, alert_deliveries, staff_members, alert_rules, budgets, initiative_stores, "
    "initiatives, user_stores, users, api_keys, pos_registers, devices, stores, tenants"
)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, never-migrated control database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(scope="session")
def pg_control_url(pg_server_url: str) -> Iterator[str]:
    """A migrated PostgreSQL control database shared by the session's tests."""
    name = f"tenpo_ctl_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(False)
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite control database to copy (migrating each time is slower)."""
    path = tmp_path_factory.mktemp("control-template") / "control.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated control database without rows."""
    if request.param == "sqlite":
        path = tmp_path / "control.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_control_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {_TABLES} RESTART IDENTITY"))
    finally:
        engine.dispose()
    return str(url)


@pytest.fixture
def plane(db_url: str) -> Iterator[ControlPlane]:
    """A control plane on ``db_url``."""
    cp = ControlPlane.open(db_url)
    yield cp
    cp.dispose()


@pytest.fixture
def sqlite_plane(tmp_path: Path, sqlite_template: Path) -> Iterator[ControlPlane]:
    """A control plane on a migrated SQLite file (for tests that need no PostgreSQL run)."""
    shutil.copyfile(sqlite_template, tmp_path / "control.db")
    cp = ControlPlane.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield cp
    cp.dispose()
