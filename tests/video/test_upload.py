"""Chunk upload: the gateway route (hostile input, idempotency, tenant binding) and the edge
spool + uploader (restart, outage, disk full)."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tenpo.gateway import create_app, serve_in_thread
from tenpo.video.chunks import VIDEO_CHUNKS
from tenpo.video.codec import decode_mp4, encode_mp4
from tenpo.video.recorder import FrameSource, Recorder
from tenpo.video.spool import ChunkSpool, ChunkUploader
from tests.gateway.conftest import Gateway, control, gateway, seeded_control_db  # noqa: F401

T0 = datetime(2026, 11, 2, 14, 58, 30, tzinfo=UTC)  # 23:58:30 in Tokyo: chunks cross midnight


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return encode_mp4(frames(6), 15)


@pytest.fixture
def cams(gateway: Gateway) -> Gateway:  # noqa: F811
    """Cameras: acme's cam-1 (Tokyo; the gateway seed's), beta's cam-9."""
    store = gateway.control.list_stores("beta")[0]
    gateway.control.create_device("beta", "cam-9", store.store_id, "rgb_camera")
    assert gateway.control.directory().device("acme", "cam-1") is not None
    return gateway


def headers(body: bytes, start: datetime = T0, n: int = 6, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "video/mp4",
        "X-Chunk-Start": start.isoformat(),
        "X-Chunk-Frames": str(n),
        "X-Chunk-SHA256": hashlib.sha256(body).hexdigest(),
        **extra,
    }


def post(
    gw: Gateway, body: bytes, hdrs: dict[str, str], cam: str = "cam-1", token: str = ""
) -> httpx.Response:
    return gw.client.post(
        f"/v1/video/{cam}/chunks", content=body, headers={**gw.auth(token or None), **hdrs}
    )


def chunk_events(gw: Gateway) -> list[dict[str, object]]:
    ds = gw.bus.fetch(VIDEO_CHUNKS, "t", max_events=100, timeout=0.2)
    for d in ds:
        gw.bus.ack(d)
    return [d.payload for d in ds]


def test_upload_lands_at_the_video_key_and_is_announced(cams: Gateway, mp4: bytes) -> None:
    resp = post(cams, mp4, headers(mp4))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    key = "video/tenant=acme/camera=cam-1/date=2026-11-02/20261102T145830.000Z.mp4"
    assert body == {
        "object_id": "cam-1-20261102T145830.000Z",
        "key": key,
        "bytes": len(mp4),
        "created": True,
        "counts": {"frames": 6},
    }
    assert cams.lake.get(key) == mp4
    [event] = chunk_events(cams)
    assert event["key"] == key and event["source"] == "video_chunks"
    assert event["meta"] == {"camera_id": "cam-1", "frames": "6", "key_id": event["meta"]["key_id"]}  # type: ignore[index]
    assert len(list(decode_mp4(cams.lake.get(key)))) == 6
    # A start after local midnight lands on the next business date.
    later = T0 + timedelta(minutes=2)
    resp = post(cams, mp4, headers(mp4, later))
    assert resp.json()["key"].startswith("video/tenant=acme/camera=cam-1/date=2026-11-03/")


def test_upload_is_idempotent_on_camera_and_start(cams: Gateway, mp4: bytes) -> None:
    first = post(cams, mp4, headers(mp4))
    again = post(cams, mp4, headers(mp4))
    assert first.status_code == again.status_code == 202
    assert again.json()["created"] is False and again.json()["key"] == first.json()["key"]
    other = encode_mp4(frames(6, seed=1), 15)
    clash = post(cams, other, headers(other))
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == "application/problem+json"
    assert "already has a different chunk" in clash.json()["detail"]
    assert cams.lake.get(first.json()["key"]) == mp4  # the first bytes stay
    assert len(cams.lake.list("video/")) == 1


def test_tenant_binding_and_scope(cams: Gateway, mp4: bytes) -> None:
    # acme's key cannot write beta's camera, nor an unknown one, nor a people counter.
    for cam in ("cam-9", "nope", "pc-001"):
        resp = post(cams, mp4, headers(mp4), cam=cam)
        assert resp.status_code == 403, (cam, resp.text)
        assert resp.json()["camera_id"] == cam
    assert post(cams, mp4, headers(mp4), token=cams.keys.acme_read).status_code == 403
    assert post(cams, mp4, headers(mp4), token=cams.keys.acme_revoked).status_code == 401
    assert post(cams, mp4, headers(mp4), cam="cam-9", token=cams.keys.beta).status_code == 202
    assert cams.lake.list("video/") == [
        "video/tenant=beta/camera=cam-9/date=2026-11-02/20261102T145830.000Z.mp4"
    ]


@pytest.mark.parametrize(
    ("mutate", "status", "phrase"),
    [
        (lambda b, h: (b, {**h, "Content-Type": "application/json"}), 415, "Content-Type"),
        (lambda b, h: (b"\x00" * 64, headers(b"\x00" * 64)), 415, "ftyp"),
        (lambda b, h: (b[: len(b) // 2], h), 400, "SHA-256"),
        (lambda b, h: (b, {**h, "X-Chunk-Frames": "7"}), 400, "holds 6 frames"),
        (lambda b, h: (b, {**h, "X-Chunk-Frames": "-1"}), 400, "positive integer"),
        (lambda b, h: (b, {**h, "X-Chunk-Start": "2026-11-02T10:00:00"}), 400, "offset"),
        (lambda b, h: (b, {**h, "X-Chunk-Start": "yesterday"}), 400, "ISO 8601"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Chunk-SHA256"}), 400, "missing"),
        (lambda b, h: (b, {**h, "X-Chunk-SHA256": "zz"}), 400, "64 hex"),
        (lambda b, h: (b"", headers(b"")), 400, "empty"),
    ],
)
def test_hostile_input_is_refused_with_problem_json(
    cams: Gateway, mp4: bytes, mutate: object, status: int, phrase: str
) -> None:
    body, hdrs = mutate(mp4, headers(mp4))  # type: ignore[operator]
    resp = post(cams, body, hdrs)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert phrase in resp.json()["detail"]
    assert cams.lake.list("video/") == [] and chunk_events(cams) == []


def test_a_fake_mp4_with_an_ftyp_box_but_no_video_is_400(cams: Gateway) -> None:
    junk = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200
    resp = post(cams, junk, headers(junk))
    assert resp.status_code == 400 and "MP4" in resp.json()["detail"]


def test_oversized_chunk_is_413(cams: Gateway, mp4: bytes) -> None:
    small = cams.settings.model_copy(update={"video_max_chunk_bytes": 100})
    app = create_app(small, control=cams.control, lake=cams.lake, bus=cams.bus)
    with TestClient(app) as client:
        resp = client.post(
            "/v1/video/cam-1/chunks", content=mp4, headers={**cams.auth(), **headers(mp4)}
        )
    assert resp.status_code == 413, resp.text
    assert "limit of 100 bytes" in resp.json()["detail"] and cams.lake.list("video/") == []


# --- edge: spool and uploader ------------------------------------------------------------


class ListSource(FrameSource):
    def __init__(self, n: int) -> None:
        self.items = [(T0 + timedelta(seconds=i / 15), f) for i, f in enumerate(frames(n))]

    def read(self) -> tuple[datetime, np.ndarray] | None:
        return self.items.pop(0) if self.items else None


@pytest.fixture
def served(cams: Gateway) -> Iterator[tuple[Gateway, str]]:
    app = cams.client.app
    assert isinstance(app, FastAPI)
    server, thread = serve_in_thread(app, "127.0.0.1", 0)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    yield cams, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_spool_survives_an_outage_and_a_restart(
    tmp_path: Path, served: tuple[Gateway, str]
) -> None:
    gw, url = served
    spool_dir = tmp_path / "spool"
    rec = Recorder(
        lake=None,
        bus=None,
        tenant_id="acme",
        camera_id="cam-1",
        fps=15,
        chunk_seconds=1.0,
        spool=ChunkSpool(spool_dir),
    )
    chunks = rec.run(lambda: ListSource(45))
    assert [c.frames for c in chunks] == [15, 15, 15]
    # The gateway is unreachable (nothing listens on this port): all chunks stay spooled.
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=2) as down:
        up = ChunkUploader(ChunkSpool(spool_dir), down, "cam-1", gw.keys.acme, base_delay_s=0.01)
        result = up.drain()
        assert result.retry and result.uploaded == 0 and up.delay() == 0.01
        up.drain()
        assert up.delay() == 0.02  # back-off grows
    # A restart (a new spool over the same folder) with the network back sends each once.
    spool = ChunkSpool(spool_dir)
    assert len(spool.pending()) == 3
    with httpx.Client(base_url=url, timeout=30) as client:
        up = ChunkUploader(spool, client, "cam-1", gw.keys.acme)
        assert up.drain().uploaded == 3
        # A crash after the gateway's 202 but before the local delete re-sends: harmless.
        spool.put(chunks[0].start, 15, gw.lake.get(gw.lake.list("video/")[0]))
        again = up.drain()
        assert (again.uploaded, again.already) == (0, 1)
    assert spool.status() == {"pending": 0, "bytes": 0, "dropped": 0, "rejected": 0}
    keys = gw.lake.list("video/")
    assert len(keys) == 3
    got = [len(list(decode_mp4(gw.lake.get(k)))) for k in keys]
    assert got == [15, 15, 15]
    assert len(chunk_events(gw)) == 3  # re-sends reuse the event id


def test_refused_chunks_are_kept_aside_not_deleted(
    tmp_path: Path, cams: Gateway, mp4: bytes
) -> None:
    spool = ChunkSpool(tmp_path / "s")
    spool.put(T0, 9, mp4)  # declares 9 frames, holds 6: the gateway refuses it for good
    up = ChunkUploader(spool, cams.client, "cam-1", cams.keys.acme)
    result = up.drain()
    assert result.rejected == 1 and not result.retry
    assert spool.rejected() == ["20261102T145830.000Z_9.mp4"]
    reason = (tmp_path / "s" / "rejected" / "20261102T145830.000Z_9.reason.txt").read_text()
    assert "HTTP 400" in reason and "holds 6 frames" in reason
    # A revoked key is retried (an operator fixes the key), never dropped.
    spool.put(T0 + timedelta(seconds=1), 6, mp4)
    bad = ChunkUploader(spool, cams.client, "cam-1", cams.keys.acme_revoked)
    assert bad.drain().retry and len(spool.pending()) == 1


def test_full_spool_drops_the_oldest_and_reports_it(tmp_path: Path, mp4: bytes) -> None:
    size = len(mp4)
    spool = ChunkSpool(tmp_path / "s", max_bytes=3 * size)
    for i in range(5):
        spool.put(T0 + timedelta(seconds=i), 6, mp4)
    names = [e.start for e in spool.pending()]
    assert names == [T0 + timedelta(seconds=i) for i in (2, 3, 4)]
    dropped = spool.dropped()
    assert [d["chunk"] for d in dropped] == [
        "20261102T145830.000Z_6.mp4",
        "20261102T145831.000Z_6.mp4",
    ]
    assert spool.status()["dropped"] == 2 and "over" in str(dropped[0]["reason"])


def test_disk_full_drops_oldest_until_the_new_chunk_fits(tmp_path: Path, mp4: bytes) -> None:
    room = {"free": 2 * len(mp4)}

    def write(path: Path, data: bytes) -> None:  # a disk with ``free`` bytes left
        used = sum(p.stat().st_size for p in path.parent.glob("*.mp4"))
        if used + len(data) > room["free"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        path.write_bytes(data)

    spool = ChunkSpool(tmp_path / "s", write=write)
    for i in range(4):
        assert spool.put(T0 + timedelta(seconds=i), 6, mp4) is not None
    assert [e.start.second for e in spool.pending()] == [32, 33]
    assert [d["reason"] for d in spool.dropped()] == ["disk full", "disk full"]
    room["free"] = len(mp4) // 2  # not even one chunk fits: the new one is dropped, reported
    assert spool.put(T0 + timedelta(seconds=9), 6, mp4) is None
    assert spool.pending() == [] and spool.status()["dropped"] == 5
    assert not list((tmp_path / "s").glob("*.tmp"))


def test_a_crash_mid_write_leaves_no_half_chunk(tmp_path: Path, mp4: bytes) -> None:
    folder = tmp_path / "s"
    ChunkSpool(folder).put(T0, 6, mp4)
    (folder / "20261102T145831.000Z_6.tmp").write_bytes(mp4[:10])  # the crash
    spool = ChunkSpool(folder)  # restart
    assert [e.name for e in spool.pending()] == ["20261102T145830.000Z_6.mp4"]
    assert not list(folder.glob("*.tmp"))


def test_cli_record_upload_sends_every_chunk(tmp_path: Path, served: tuple[Gateway, str]) -> None:
    from typer.testing import CliRunner

    from tenpo.cli import app

    gw, url = served
    clip = tmp_path / "cam.mp4"
    clip.write_bytes(encode_mp4(frames(40), 15))
    args = ["video", "record", str(clip), "--camera", "cam-1", "--chunk-seconds", "1"]
    spool = tmp_path / "spool"
    out = CliRunner().invoke(
        app, [*args, "--upload", url, "--api-key", gw.keys.acme, "--spool", str(spool)]
    )
    assert out.exit_code == 0, out.output
    assert "in 3 chunks; uploaded 3, waiting 0" in out.output
    keys = gw.lake.list("video/tenant=acme/camera=cam-1/")
    assert sum(len(list(decode_mp4(gw.lake.get(k)))) for k in keys) == 40
    out = CliRunner().invoke(app, [*args, "--upload", url])
    assert out.exit_code != 0 and "--api-key" in out.output
