"""Server-side failures, the lifespan, serve_in_thread over real HTTP, and `tenpo serve`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tenpo.bus.memory import MemoryBus
from tenpo.control import ControlPlane
from tenpo.core.errors import LakeError
from tenpo.core.settings import Settings
from tenpo.gateway import create_app, serve_in_thread
from tenpo.lake import FsspecLake, open_lake
from tests.gateway.conftest import SAMPLES, Gateway, Keys

DEVICE_EVENTS = (SAMPLES / "device_events.json").read_bytes()


class BrokenLake(FsspecLake):
    """A lake whose writes fail the way ``fail`` says."""

    def __init__(self, root: str, fail: Exception) -> None:
        super().__init__(root)
        self.fail = fail

    def put(self, key: str, data: bytes) -> None:
        raise self.fail

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise self.fail

    def put_unsynced(self, key: str, data: bytes) -> None:
        raise self.fail

    def put_if_absent_unsynced(self, key: str, data: bytes) -> bool:
        raise self.fail

    def exists(self, key: str) -> bool:
        if key == "landing":  # the health probe
            raise self.fail
        return super().exists(key)


@contextmanager
def client_with_lake(
    settings: Settings, control: ControlPlane, lake: FsspecLake
) -> Iterator[TestClient]:
    app = create_app(settings, control=control, lake=lake, bus=MemoryBus())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def keys(seeded_control_db: tuple[Any, Keys]) -> Keys:
    return seeded_control_db[1]


def test_unexpected_error_is_500_without_internals(
    settings: Settings, control: ControlPlane, keys: Keys
) -> None:
    lake = BrokenLake(settings.lake_root, RuntimeError("disk at /secret/path exploded"))
    with client_with_lake(settings, control, lake) as client:
        resp = client.post(
            "/v1/iot/events",
            content=DEVICE_EVENTS,
            headers={"Authorization": f"Bearer {keys.acme}"},
        )

    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"] == "urn:tenpo:problem:internal-error"
    assert body["title"] == "Internal Server Error"
    assert "unexpected server error (error id err-" in body["detail"]
    assert "secret" not in resp.text


def test_lake_outage_is_503_with_retry_after(
    settings: Settings, control: ControlPlane, keys: Keys
) -> None:
    lake = BrokenLake(settings.lake_root, LakeError("cannot write /secret/landing/x: EIO"))
    with client_with_lake(settings, control, lake) as client:
        resp = client.post(
            "/v1/iot/events",
            content=DEVICE_EVENTS,
            headers={"Authorization": f"Bearer {keys.acme}"},
        )
        health = client.get("/healthz")

    assert resp.status_code == 503
    body = resp.json()
    assert body["title"] == "Datalake unavailable"
    assert body["detail"].startswith("Datalake unavailable; retry later (error id err-")
    assert resp.headers["retry-after"] == "5"
    assert "secret" not in resp.text
    assert health.status_code == 503
    assert health.json() == {"status": "degraded", "lake": "unreachable", "bus": "ok", "backlog": 0}


def test_lifespan_opens_the_control_plane_from_settings(
    settings: Settings, control: ControlPlane, keys: Keys
) -> None:
    # ``control`` copied the seeded database to settings.control_db_url; the app opens its own.
    lake = open_lake(settings.lake_root)
    app = create_app(settings, lake=lake, bus=MemoryBus())
    with TestClient(app) as client:
        resp = client.post(
            "/v1/iot/events",
            content=DEVICE_EVENTS,
            headers={"Authorization": f"Bearer {keys.acme}"},
        )
        assert resp.status_code == 202, resp.text
    assert app.state.gateway is None  # what the lifespan opened, it closed
    assert lake.list("landing/iot/") == [resp.json()["key"]]


def test_a_key_revoked_elsewhere_is_refused_within_auth_cache_seconds(
    settings: Settings, control: ControlPlane, keys: Keys
) -> None:
    settings = settings.model_copy(update={"auth_cache_seconds": 0.5})
    app = create_app(settings, lake=open_lake(settings.lake_root), bus=MemoryBus())
    writer = next(k for k in control.list_api_keys("acme") if k.name == "writer")
    headers = {"Authorization": f"Bearer {keys.acme}"}
    with TestClient(app) as client:
        first = client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)
        assert first.status_code == 202
        control.revoke_api_key("acme", writer.key_id)  # another process's control plane
        time.sleep(0.6)
        resp = client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)
    assert resp.status_code == 401
    assert "revoked" in resp.json()["detail"]


def test_openapi_documents_the_endpoints(gateway: Gateway) -> None:
    spec = gateway.client.get("/openapi.json").json()

    assert set(spec["paths"]) == {
        "/v1/pos/{vendor}/sales",
        "/v1/pos/{vendor}/master",
        "/v1/pos/batches/{object_id}",
        "/v1/iot/events",
        "/v1/video/visitor-events",
        "/v1/video/{camera_id}/chunks",
        "/healthz",
    }
    sales = spec["paths"]["/v1/pos/{vendor}/sales"]["post"]
    assert "202" in sales["responses"] and "413" in sales["responses"]
    assert set(sales["requestBody"]["content"]) == {"text/csv; charset=cp932", "application/json"}
    json_body = sales["requestBody"]["content"]["application/json"]
    assert [s["title"] for s in json_body["schema"]["anyOf"]] == ["smaregi", "vendor_b"]
    assert set(json_body["examples"]) == {"smaregi", "vendor_b"}


# -- real HTTP -------------------------------------------------------------------------------


def bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


def test_serve_in_thread_over_real_http(gateway: Gateway) -> None:
    app = gateway.client.app
    assert isinstance(app, FastAPI)
    server, thread = serve_in_thread(app, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{bound_port(server)}"
        with httpx.Client(base_url=base, timeout=10) as http:
            health = http.get("/healthz")
            ok = http.post("/v1/iot/events", content=DEVICE_EVENTS, headers=gateway.auth())
            limit = gateway.settings.max_body_bytes
            chunked = (b"x" * 4096 for _ in range(limit // 4096 + 2))  # no Content-Length
            too_large = http.post("/v1/iot/events", content=chunked, headers=gateway.auth())
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    assert health.json() == {"status": "ok", "lake": "ok", "bus": "ok", "backlog": 0}
    assert ok.status_code == 202 and ok.json()["counts"] == {"events": 2}
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    assert not thread.is_alive()
    assert len(gateway.landed("iot")) == 1


def test_serve_in_thread_fails_loudly_when_the_port_is_taken(gateway: Gateway) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} failed to start"):
            serve_in_thread(gateway.client.app, "127.0.0.1", port, timeout=10)


# -- CLI -------------------------------------------------------------------------------------


def test_serve_gateway_command_serves_the_gateway(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenpo.cli import app as cli
    from tenpo.cli import serve

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        serve,
        "serve_one",
        lambda app, host, port, s: calls.append({"app": app, "host": host, "port": port, "s": s}),
    )

    default = CliRunner().invoke(cli, ["serve", "gateway"])
    custom = CliRunner().invoke(cli, ["serve", "gateway", "--host", "0.0.0.0", "--port", "9101"])

    assert default.exit_code == 0, default.output
    assert custom.exit_code == 0, custom.output
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 8001), ("0.0.0.0", 9101)]
    assert all(isinstance(c["app"], FastAPI) for c in calls)
    assert all(isinstance(c["s"], Settings) for c in calls)  # its deadlines reach uvicorn
    assert calls[0]["app"].title == "tenpo ingest gateway"


# -- the contract with the streamer ------------------------------------------------------------


def test_streamer_loads_what_the_gateway_landed(gateway: Gateway) -> None:
    pytest.importorskip("tenpo.pos")
    import pyarrow.dataset as ds

    from tenpo.streamer import Streamer

    resp = gateway.client.post(
        "/v1/pos/vendor_b/sales",
        content=(SAMPLES / "vendor_b_sales.json").read_bytes(),
        headers=gateway.auth(),
    )
    assert resp.status_code == 202, resp.text

    streamer = Streamer(gateway.settings, gateway.lake, gateway.bus, gateway.control.directory())
    try:
        stats = streamer.run_once()
    finally:
        streamer.close()

    assert stats.fetched == 1
    files = gateway.lake.list("tables/raw_pos_transactions/tenant=acme/")
    assert files, stats
    table = ds.dataset([gateway.lake.path(f) for f in files], format="parquet").to_table()
    [row] = table.to_pylist()
    store = gateway.control.directory().store_by_code("acme", "T01")
    assert store is not None
    assert (row["tenant_id"], row["store_id"]) == ("acme", store.store_id)
    assert row["source_object_id"] == resp.json()["object_id"]
    assert str(row["total_excl_tax"]) == "259.26"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_all_runs_gateway_api_and_streamer_until_sigint(
    tmp_path: Path, seeded_control_db: tuple[Path, Keys]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(seeded_control_db[0], data_dir / "control.db")
    gw_port, api_port = free_port(), free_port()
    env = {**os.environ, "TENPO_DATA_DIR": str(data_dir)}
    env.pop("TENPO_CONFIG", None)
    tenpo = str(Path(sys.executable).parent / "tenpo")
    cmd = [tenpo, "serve", "all", "--gateway-port", str(gw_port), "--api-port", str(api_port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=5) as http:
            while True:
                try:
                    gw = http.get(f"http://127.0.0.1:{gw_port}/healthz")
                    api = http.get(f"http://127.0.0.1:{api_port}/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.communicate()[0].decode()
                    assert time.monotonic() < deadline, "serve all did not start"
                    time.sleep(0.2)
            sent = http.post(
                f"http://127.0.0.1:{gw_port}/v1/pos/vendor_b/sales",
                content=(SAMPLES / "vendor_b_sales.json").read_bytes(),
                headers={"Authorization": f"Bearer {seeded_control_db[1].acme}"},
            )
        assert gw.json()["status"] == "ok" and api.status_code == 200
        assert sent.status_code == 202, sent.text
        lake = open_lake(str(data_dir / "lake"))
        while not lake.list("tables/raw_pos_transactions/tenant=acme/"):
            assert time.monotonic() < deadline, "the streamer loaded nothing"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=60)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output
    assert "streamer stopped" in output
