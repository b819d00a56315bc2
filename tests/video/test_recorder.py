"""Recorder: 15 FPS resampling, chunk boundaries, reconnects, retention, file sources."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from tenpo.bus.memory import MemoryBus
from tenpo.core.errors import BadInput
from tenpo.lake.base import FsspecLake
from tenpo.video.codec import decode_mp4, encode_mp4
from tenpo.video.recorder import (
    VIDEO_CHUNKS,
    FrameSource,
    OpenCvSource,
    Recorder,
    SourceDisconnected,
    chunk_start,
)

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo


def marked(n: int) -> np.ndarray:
    """A small frame encoding ``n`` (< 256) as 8 black/white bars (robust to H.264)."""
    image = np.zeros((64, 96, 3), np.uint8)
    for bit in range(8):
        if n >> bit & 1:
            image[:, bit * 12 : bit * 12 + 12] = 255
    return image


def number(image: np.ndarray) -> int:
    """The ``n`` that :func:`marked` encoded."""
    return sum(1 << bit for bit in range(8) if image[:, bit * 12 + 3 : bit * 12 + 9].mean() > 128)


class ScriptedSource(FrameSource):
    """Input frames at ``rate`` fps; raises once at each index in ``drops``."""

    def __init__(
        self,
        state: dict[str, int],
        count: int,
        rate: float,
        drops: set[int],
        gap_after: int | None = None,
        gap_s: float = 0.0,
    ) -> None:
        self.state, self.count, self.rate, self.drops = state, count, rate, drops
        self.gap_after, self.gap_s = gap_after, gap_s

    def read(self) -> tuple[datetime, np.ndarray] | None:
        n = self.state["n"]
        if n in self.drops:
            self.drops.discard(n)
            raise SourceDisconnected("network drop")
        if n >= self.count:
            return None
        self.state["n"] = n + 1
        t = n / self.rate
        if self.gap_after is not None and n > self.gap_after:
            t += self.gap_s
        return T0 + timedelta(seconds=t), marked(n)


def record(
    tmp_path: Path, source: ScriptedSource, **kw: object
) -> tuple[Recorder, FsspecLake, MemoryBus]:
    lake = FsspecLake(str(tmp_path / "lake"))
    bus = MemoryBus()
    opened: list[int] = []

    def open_source() -> FrameSource:
        opened.append(1)
        return source

    rec = Recorder(
        lake=lake,
        bus=bus,
        tenant_id="t1",
        camera_id="cam-1",
        fps=15,
        chunk_seconds=2,
        sleep=lambda s: None,
        **kw,
    )  # type: ignore[arg-type]
    rec.run(open_source)
    rec.opened = len(opened)  # type: ignore[attr-defined]
    return rec, lake, bus


def decoded(lake: FsspecLake) -> list[tuple[datetime, int]]:
    """(capture time, encoded input number) of every stored frame, in key order."""
    out = []
    for key in lake.list("video/"):
        start = chunk_start(key)
        for t, image in decode_mp4(lake.get(key)):
            out.append((start + timedelta(seconds=t), number(image)))
    return out


def test_resamples_30fps_to_15fps_chunks_without_loss_or_duplicates(tmp_path: Path) -> None:
    rec, lake, bus = record(tmp_path, ScriptedSource({"n": 0}, 150, 30.0, set()))
    # 150 frames at 30 fps span 0..4.967 s: slots 0..74 at 15 fps, chunks of 2 s = 30 slots.
    assert [c.frames for c in rec.chunks] == [30, 30, 15]
    keys = lake.list("video/")
    assert keys == [
        "video/tenant=t1/camera=cam-1/date=2026-11-02/20261102T010000.000Z.mp4",
        "video/tenant=t1/camera=cam-1/date=2026-11-02/20261102T010002.000Z.mp4",
        "video/tenant=t1/camera=cam-1/date=2026-11-02/20261102T010004.000Z.mp4",
    ]
    frames = decoded(lake)
    assert len(frames) == 75
    for k, (ts, value) in enumerate(frames):
        assert abs((ts - T0).total_seconds() - k / 15) < 1e-3  # one frame per slot, in order
        assert value == 2 * k  # slot k holds input frame 2k (the latest before it)
    events = bus.fetch(VIDEO_CHUNKS, "test", max_events=10)
    assert [d.payload["key"] for d in events] == keys
    assert events[0].payload["source"] == "video_chunks"
    assert events[0].payload["meta"] == {"camera_id": "cam-1", "frames": "30"}


def test_slow_camera_repeats_frames_to_keep_15fps(tmp_path: Path) -> None:
    rec, lake, _ = record(tmp_path, ScriptedSource({"n": 0}, 25, 5.0, set()))
    frames = decoded(lake)
    assert len(frames) == 1 + 24 * 3  # 0..4.8 s at 15 fps
    assert [v for _, v in frames[:7]] == [0, 0, 0, 1, 1, 1, 2]


def test_reconnects_after_a_drop_without_losing_frames(tmp_path: Path) -> None:
    rec, lake, _ = record(tmp_path, ScriptedSource({"n": 0}, 150, 30.0, {61}))
    assert rec.reconnects == 1 and rec.opened == 2  # type: ignore[attr-defined]
    assert len(decoded(lake)) == 75


def test_a_long_drop_closes_the_chunk_and_resumes_on_the_grid(tmp_path: Path) -> None:
    source = ScriptedSource({"n": 0}, 60, 30.0, {20}, gap_after=20, gap_s=3.0)
    rec, lake, _ = record(tmp_path, source)
    frames = decoded(lake)
    slots = [(ts - T0).total_seconds() * 15 for ts, _ in frames]
    # Keys carry the start to the millisecond: every frame is on the 15 fps grid within that.
    assert all(abs(s - round(s)) < 0.02 for s in slots)
    times = [round(s) for s in slots]
    assert times == sorted(set(times))  # no duplicates, increasing
    assert times[11] >= 15 * 3  # resumed after the 3 s gap, not filled with a stale frame
    assert [c.frames for c in rec.chunks][0] == 11  # slots 0..10 before the drop


def test_gives_up_after_max_reconnects(tmp_path: Path) -> None:
    source = ScriptedSource({"n": 0}, 150, 30.0, set())
    source.read = lambda: (_ for _ in ()).throw(SourceDisconnected("down"))  # type: ignore[method-assign]
    with pytest.raises(SourceDisconnected, match="down"):
        record(tmp_path, source, max_reconnects=2)


def test_retention_deletes_old_chunks(tmp_path: Path) -> None:
    lake = FsspecLake(str(tmp_path / "lake"))
    old = "video/tenant=t1/camera=cam-1/date=2026-09-01/20260901T010000.000Z.mp4"
    recent = "video/tenant=t1/camera=cam-1/date=2026-10-20/20261020T010000.000Z.mp4"
    other = "video/tenant=t1/camera=cam-2/date=2026-09-01/20260901T010000.000Z.mp4"
    for key in (old, recent, other):
        lake.put(key, b"x")
    record(tmp_path, ScriptedSource({"n": 0}, 10, 30.0, set()))
    assert not lake.exists(old)
    assert lake.exists(recent) and lake.exists(other)
    assert date(2026, 11, 2) - date(2026, 10, 20) < timedelta(days=30)


def test_file_source_and_bad_inputs(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    clip.write_bytes(encode_mp4([marked(i) for i in range(20)], 10))
    lake = FsspecLake(str(tmp_path / "lake"))
    rec = Recorder(lake=lake, bus=None, tenant_id="t1", camera_id="cam-1", chunk_seconds=300)
    rec.run(lambda: OpenCvSource(str(clip), start=T0))
    frames = decoded(lake)
    assert len(frames) == 1 + 19 * 15 // 10  # 0..1.9 s at 15 fps
    with pytest.raises(BadInput, match="cannot open video"):
        OpenCvSource(str(tmp_path / "missing.mp4"))
    with pytest.raises(BadInput, match="at least one frame"):
        Recorder(lake=lake, bus=None, tenant_id="t1", camera_id="c", chunk_seconds=0.01)
    with pytest.raises(BadInput, match="not a chunk key"):
        chunk_start("video/x.mp4")
    with pytest.raises(BadInput, match="readable video"):
        list(decode_mp4(b"not a video"))
    assert cv2.__version__


def test_a_stop_request_closes_the_open_chunk_and_keeps_it(tmp_path: Path) -> None:
    """`tenpo video record` on SIGTERM/SIGINT: the event stops the loop between frames, the
    partial chunk is written, and nothing after the stop is read."""
    import threading

    stop = threading.Event()
    state = {"n": 0}

    class StoppingSource(ScriptedSource):
        def read(self) -> tuple[datetime, np.ndarray] | None:
            if state["n"] == 45:  # 1.5 s at 30 fps: mid-chunk
                stop.set()
            return super().read()

    lake = FsspecLake(str(tmp_path / "lake"))
    rec = Recorder(lake=lake, bus=MemoryBus(), tenant_id="t1", camera_id="cam-1", fps=15,
                   chunk_seconds=2, sleep=lambda s: None)  # fmt: skip
    source = StoppingSource(state, 300, 30.0, set())
    chunks = rec.run(lambda: source, stop=stop)
    assert state["n"] == 46  # the frame read when the stop came is the last
    assert [c.frames for c in chunks] == [23] and len(lake.list("video/")) == 1
