"""Fixtures: a migrated control plane on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tenpo.control import ControlPlane


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty control database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def plane(db_url: str) -> Iterator[ControlPlane]:
    """A migrated control plane on ``db_url``."""
    cp = ControlPlane.open(db_url)
    yield cp
    cp.dispose()


@pytest.fixture
def sqlite_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A migrated control plane on a SQLite file (for tests that need no PostgreSQL run)."""
    cp = ControlPlane.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield cp
    cp.dispose()
