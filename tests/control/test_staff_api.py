"""Staff by enrolment over HTTP and the CLI: photos → descriptors only (the photo bytes are
nowhere in the control DB or the data dir afterwards), list/delete, tenant isolation,
problem JSON for bad photos, and the analyzer's camera loading its store's staff — on a
SQLite and a PostgreSQL control plane."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tenpo.api import create_app
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings, get_settings
from tenpo.video.enrol import photo_descriptors
from tenpo.video.synthetic import face_sprite


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


@dataclass
class Env:
    client: TestClient
    control: ControlPlane
    settings: Settings
    a: dict[str, str]
    b: dict[str, str]
    store_a: str


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "data",
        control_url=db_url,
        datamart_url=f"sqlite:///{tmp_path / 'dm.db'}",
        api_rate_per_s=0,
    )
    control = ControlPlane.open(db_url)
    keys = {}
    for tenant in ("a", "b"):
        control.create_tenant(tenant, f"Tenant {tenant}")
        keys[tenant] = {
            "Authorization": f"Bearer {control.create_api_key(tenant, 'k', ['admin'])[1]}"
        }
    store = control.create_store("a", "S001", "本町店")
    control.create_store("b", "S001", "B store")
    with TestClient(create_app(settings, control=control)) as client:
        yield Env(client, control, settings, keys["a"], keys["b"], store.store_id)
    control.dispose()


def problem(resp: Any, status: int, part: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert part in resp.json()["detail"], resp.json()


def test_enrol_stores_descriptors_only_and_is_tenant_isolated(env: Env, tmp_path: Path) -> None:
    sprite = face_sprite("lfw46")
    jpeg, png = _jpeg(sprite), _png(cv2.resize(sprite, (220, 220)))
    # Over 1 MiB (Starlette would spool such a part to a temporary file; parsed in memory).
    noise = np.random.default_rng(7).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    noise[300:470, 300:470] = sprite
    big = _png(noise)
    assert len(big) > 1024 * 1024
    resp = env.client.post(
        "/v1/admin/staff",
        headers=env.a,
        data={"store": "S001", "name": "佐藤 花子"},
        files=[
            ("photo", ("a.jpg", jpeg, "image/jpeg")),
            ("photo", ("b.png", png, "image/png")),
            ("photo", ("c.png", big, "image/png")),
        ],
    )
    assert resp.status_code == 201, resp.text
    staff = resp.json()
    assert staff["store_id"] == env.store_a and staff["name"] == "佐藤 花子"
    assert staff["descriptors"] == 3 and staff["tenant_id"] == "a"

    # The held descriptors are exactly the analyzer's descriptors of the two photos.
    [(sid, held)] = env.control.staff_descriptors("a", env.store_a)
    assert sid == staff["staff_id"]
    want = photo_descriptors([jpeg, png, big])
    np.testing.assert_allclose(np.stack(held), np.stack(want), atol=1e-6)
    assert 0 < float(np.linalg.norm(held[0] - held[1])) < 0.6  # same person, two photos

    # Images never stored: no 48-byte window of either photo in the control DB or data dir.
    needles = [
        blob[i : i + 48] for blob in (jpeg, png, big) for i in range(600, len(blob) - 48, 997)
    ]
    assert len(needles) > 20
    haystacks = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".py"]
    engine = sa.create_engine(env.settings.control_db_url)
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                haystacks.append(
                    repr(tuple(row)).encode()
                    + b"".join(
                        v
                        for v in row
                        if isinstance(v, bytes | memoryview) and not isinstance(v, str)
                    )
                )
        blob = conn.execute(sa.text("SELECT descriptors FROM staff_members")).scalar_one()
    engine.dispose()
    assert len(bytes(blob)) == 3 * 128 * 4  # three float32 descriptors, nothing else
    assert any(n in png for n in needles)  # the scan would see a stored copy
    for hay in haystacks:
        assert not any(n in hay for n in needles)

    # Listing and deleting: own tenant only.
    assert [
        s["staff_id"] for s in env.client.get("/v1/admin/staff", headers=env.a).json()["items"]
    ] == [staff["staff_id"]]
    assert env.client.get("/v1/admin/staff", headers=env.b).json()["items"] == []
    problem(env.client.get("/v1/admin/staff?tenant=a", headers=env.b), 403, "own tenant")
    problem(
        env.client.delete(f"/v1/admin/staff/{staff['staff_id']}", headers=env.b), 404, "no member"
    )
    assert len(env.control.list_staff("a")) == 1
    resp = env.client.delete(f"/v1/admin/staff/{staff['staff_id']}", headers=env.a)
    assert resp.status_code == 200 and resp.json()["staff_id"] == staff["staff_id"]
    assert env.control.list_staff("a") == []
    assert env.control.staff_descriptors("a", env.store_a) == []


def test_bad_photos_are_problem_json(env: Env) -> None:
    post = env.client.post
    good = base64.b64encode(_jpeg(face_sprite("lfw0"))).decode()
    # JSON with base64 photos works too; b's store S001 is b's own.
    resp = post(
        "/v1/admin/staff", headers=env.b, json={"store": "S001", "name": "x", "photos": [good]}
    )
    assert resp.status_code == 201 and resp.json()["tenant_id"] == "b", resp.text
    assert len(env.control.list_staff("a")) == 0

    def send(photo: bytes, name: str = "p.jpg") -> Any:
        return post(
            "/v1/admin/staff",
            headers=env.a,
            data={"store": "S001", "name": "n"},
            files=[("photo", (name, photo, "image/jpeg"))],
        )

    problem(send(b"GIF89a not really an image at all"), 415, "not a JPEG/PNG")
    problem(send(b""), 415, "empty")
    wall = np.full((300, 300, 3), 180, dtype=np.uint8)
    problem(send(_jpeg(wall)), 422, "no face found")
    pair = np.hstack([face_sprite("lfw0"), face_sprite("astronaut")])
    problem(send(_png(pair), "two.png"), 422, "2 faces found")
    problem(post("/v1/admin/staff", headers=env.a, content=b"x", params={}), 415, "multipart")
    problem(
        post(
            "/v1/admin/staff", headers=env.a, json={"store": "S001", "name": "n", "photos": ["@@"]}
        ),
        422,
        "base64",
    )
    problem(
        post(
            "/v1/admin/staff", headers=env.a, json={"store": "S999", "name": "n", "photos": [good]}
        ),
        404,
        "S999",
    )
    problem(
        post("/v1/admin/staff", headers=env.a, json={"store": "S001", "name": "n", "photos": []}),
        422,
        "at least one",
    )
    garbled = {**env.a, "Content-Type": "multipart/form-data"}
    problem(post("/v1/admin/staff", headers=garbled, content=b"--x\r\n"), 422, "no parts")
    assert env.control.list_staff("a") == []  # nothing half-enrolled


def test_cli_enrol_and_camera_loads_store_staff(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from tenpo.cli import app
    from tenpo.cli.video import resolve_camera

    monkeypatch.setenv("TENPO_CONTROL_URL", env.settings.control_db_url)
    monkeypatch.setenv("TENPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TENPO_CONFIG", raising=False)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    env.control.create_device("a", "cam-1", env.store_a, "rgb_camera")
    photo = tmp_path / "hanako.jpg"
    photo.write_bytes(_jpeg(face_sprite("lfw46")))
    runner = CliRunner()
    args = ["admin", "staff", "enroll", "--tenant", "a", "--store", "S001", "--name", "Hanako"]
    result = runner.invoke(app, [*args, str(photo)])
    assert result.exit_code == 0, result.output
    assert "photos not stored" in result.output
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    result = runner.invoke(app, [*args, str(bad)])
    # (rich wraps the message at the terminal width, which depends on the tmp path's length)
    assert result.exit_code == 2 and "not a JPEG/PNG" in " ".join(result.output.split())
    [staff] = env.control.list_staff("a", "S001")
    assert staff.name == "Hanako" and staff.descriptors == 1

    cam = resolve_camera(env.settings, "cam-1", "a")
    assert cam.staff is not None and len(cam.staff) == 1
    from tenpo.features.faiss_store import FaissFeatureStore
    from tenpo.video.bulk import build_analyzer

    assert build_analyzer(cam, FaissFeatureStore(tmp_path / "f")).staff is cam.staff
    want = photo_descriptors([photo.read_bytes()])[0]
    assert cam.staff.match(want) == staff.staff_id
    assert cam.staff.match(photo_descriptors([_jpeg(face_sprite("astronaut"))])[0]) is None
