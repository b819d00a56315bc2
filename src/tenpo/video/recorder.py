"""The recorder: camera → 15 FPS by timestamp → MP4 chunks in the lake (``video/...``).

A :class:`FrameSource` yields timestamped frames (OpenCV: an RTSP/HTTP URL, a device index,
or a video file standing in for a camera). :class:`Resampler` puts them on a fixed
``fps`` grid anchored at the first frame: slot ``k`` (time ``t0 + k/fps``) holds the latest
frame captured at or before it, so a faster camera drops frames and a slower one repeats
them. Slots are grouped into chunks of ``fps × chunk_seconds`` slots aligned on the grid;
each chunk is one MP4 at ``video_key(tenant, camera, local date, start)`` where frame ``i``
was captured at ``start + i/fps``. A slot belongs to exactly one chunk, so no frame is lost
or repeated at a boundary. When the source drops, the recorder reconnects (with back-off);
the gap closes the current chunk early and recording goes on at the next slot after the gap.
Each chunk is announced on the bus topic :data:`VIDEO_CHUNKS` (an ``ObjectRegistered``
payload, source ``video_chunks``), and chunks older than the retention are deleted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import cv2

from tenpo.bus.base import EventBus
from tenpo.core.errors import BadInput, TenpoError
from tenpo.core.ids import utcnow
from tenpo.lake.base import Lake
from tenpo.lake.keys import video_key
from tenpo.lake.landing import ObjectRegistered
from tenpo.video.analyzer import Frame
from tenpo.video.chunks import SOURCE, VIDEO_CHUNKS, format_chunk_ts
from tenpo.video.codec import encode_mp4
from tenpo.video.detect import Image
from tenpo.video.spool import ChunkSpool

__all__ = [
    "VIDEO_CHUNKS",
    "ChunkWritten",
    "FrameSource",
    "OpenCvSource",
    "Recorder",
    "Resampler",
    "SourceDisconnected",
    "chunk_start",
    "delete_expired_chunks",
    "format_chunk_ts",
]

log = logging.getLogger(__name__)


class SourceDisconnected(TenpoError):
    """The camera stopped delivering frames (network drop, device unplugged)."""


class FrameSource(ABC):
    """A camera: timestamped BGR frames until the stream ends."""

    @abstractmethod
    def read(self) -> tuple[datetime, Image] | None:
        """The next frame and its capture time; None at the end of a finite stream.

        Raises :class:`SourceDisconnected` when a live source drops.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device or connection."""


class OpenCvSource(FrameSource):
    """OpenCV ``VideoCapture`` over a URL, a device index or a file.

    Live sources (URLs with a scheme, device indexes) are stamped with the wall clock; a
    file is stamped ``start + its position``, so a file replays a camera deterministically.
    """

    def __init__(self, source: str | int, *, start: datetime | None = None) -> None:
        self.source = source
        self.live = isinstance(source, int) or "://" in str(source)
        self.start = start or utcnow()
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            self._cap.release()
            if self.live:
                raise SourceDisconnected(f"cannot open camera {source!r}")
            raise BadInput(f"cannot open video {source!r}")

    def read(self) -> tuple[datetime, Image] | None:
        """Next frame; None at a file's end; :class:`SourceDisconnected` on a live drop."""
        ok, image = self._cap.read()
        if not ok:
            if self.live:
                raise SourceDisconnected(f"camera {self.source!r} stopped sending frames")
            return None
        if self.live:
            return utcnow(), cast(Image, image)
        msec = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return self.start + timedelta(milliseconds=msec), cast(Image, image)

    def close(self) -> None:
        """Release the capture."""
        self._cap.release()


class Resampler:
    """Puts timestamped frames on a fixed ``fps`` grid; a gap over ``max_gap_s`` is skipped."""

    def __init__(self, fps: int, max_gap_s: float = 1.0) -> None:
        if fps < 1:
            raise BadInput(f"fps must be at least 1, got {fps}")
        self.fps = fps
        self.max_gap_s = max_gap_s
        self.t0: datetime | None = None
        self.next_k = 0
        self._last: tuple[datetime, Image] | None = None

    def slot_time(self, k: int) -> datetime:
        """Capture time of slot ``k``."""
        assert self.t0 is not None
        return self.t0 + timedelta(microseconds=round(k * 1_000_000 / self.fps))

    def push(self, ts: datetime, image: Image) -> Iterator[tuple[int, Image]]:
        """Feed one frame; the slots (index, frame) that are now decided."""
        if self._last is None:
            if self.t0 is None:
                self.t0 = ts
            self._last = (ts, image)
            return
        last_ts, last_img = self._last
        if ts <= last_ts:
            return  # a repeated or out-of-order frame: keep the grid monotonic
        if (ts - last_ts).total_seconds() > self.max_gap_s:
            # After a drop do not fill the gap with a stale frame: emit what the last frame
            # covered, then resume at the first slot at or after the new frame.
            while self.slot_time(self.next_k) <= last_ts:
                yield self.next_k, last_img
                self.next_k += 1
            self.next_k = max(self.next_k, self._slot_at_or_after(ts))
        else:
            while self.slot_time(self.next_k) < ts:
                yield self.next_k, last_img
                self.next_k += 1
        self._last = (ts, image)

    def _slot_at_or_after(self, ts: datetime) -> int:
        assert self.t0 is not None
        return math.ceil((ts - self.t0).total_seconds() * self.fps - 1e-6)

    def flush(self) -> Iterator[tuple[int, Image]]:
        """End of stream: the last frame fills the slots up to its own time."""
        if self._last is not None:
            last_ts, last_img = self._last
            while self.slot_time(self.next_k) <= last_ts:
                yield self.next_k, last_img
                self.next_k += 1
            self._last = None


def chunk_start(key: str) -> datetime:
    """The capture time of a chunk's first frame, from its key."""
    name = key.rsplit("/", 1)[-1].removesuffix(".mp4")
    try:
        return datetime.strptime(name, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadInput(f"not a chunk key (no start time): {key}") from exc


def delete_expired_chunks(
    lake: Lake, tenant_id: str, camera_id: str, retention_days: int, today: date
) -> int:
    """Delete the camera's chunks of business dates older than ``retention_days``."""
    oldest = today - timedelta(days=retention_days)
    removed = 0
    for key in lake.list(f"video/tenant={tenant_id}/camera={camera_id}/"):
        part = key.split("/date=", 1)[-1][:10]
        try:
            day = date.fromisoformat(part)
        except ValueError:
            continue
        if day < oldest:
            lake.delete(key)
            removed += 1
    if removed:
        log.info(
            "video retention: %d chunks of %s/%s before %s", removed, tenant_id, camera_id, oldest
        )
    return removed


@dataclass(frozen=True)
class ChunkWritten:
    """One chunk stored in the lake."""

    key: str
    start: datetime
    frames: int
    size: int


@dataclass
class _Open:
    first_k: int
    frames: list[Image] = field(default_factory=list)


class Recorder:
    """Records one camera of one tenant into lake chunks (optionally feeding an analyzer)."""

    def __init__(
        self,
        *,
        lake: Lake | None,
        bus: EventBus | None,
        tenant_id: str,
        camera_id: str,
        timezone: str = "Asia/Tokyo",
        fps: int = 15,
        chunk_seconds: float = 300.0,
        retention_days: int = 30,
        max_reconnects: int = 10,
        reconnect_delay_s: float = 1.0,
        on_frame: Callable[[Frame], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        spool: ChunkSpool | None = None,
    ) -> None:
        self.frames_per_chunk = round(fps * chunk_seconds)
        if self.frames_per_chunk < 1:
            raise BadInput(f"a chunk must hold at least one frame ({fps} fps × {chunk_seconds} s)")
        self.lake = lake
        self.bus = bus
        self.tenant_id = tenant_id
        self.camera_id = camera_id
        self.tz = ZoneInfo(timezone)
        self.fps = fps
        self.retention_days = retention_days
        self.max_reconnects = max_reconnects
        self.reconnect_delay_s = reconnect_delay_s
        self.on_frame = on_frame
        self.spool = spool
        if lake is None and spool is None:
            raise BadInput("a recorder needs a lake or an upload spool")
        self._sleep = sleep
        self.resampler = Resampler(fps)
        self.chunks: list[ChunkWritten] = []
        self.reconnects = 0
        self._open: _Open | None = None
        self._last_k = -1

    def run(
        self,
        open_source: Callable[[], FrameSource],
        *,
        max_frames: int | None = None,
        stop: threading.Event | None = None,
    ) -> list[ChunkWritten]:
        """Record until the source ends, ``max_frames`` input frames, or ``stop`` is set (the
        open chunk is closed and kept); the chunks written.

        Reconnects through ``open_source`` after a drop, up to ``max_reconnects`` times in a
        row (a frame read successfully resets the count).
        """
        source = open_source()
        read = 0
        failures = 0
        try:
            while (max_frames is None or read < max_frames) and not (stop and stop.is_set()):
                try:
                    item = source.read()
                except SourceDisconnected as exc:
                    failures += 1
                    self.reconnects += 1
                    if failures > self.max_reconnects:
                        raise
                    log.warning("%s; reconnecting (%d/%d)", exc, failures, self.max_reconnects)
                    source.close()
                    self._sleep(self.reconnect_delay_s * min(failures, 10))
                    try:
                        source = open_source()
                    except SourceDisconnected as again:
                        log.warning("%s", again)
                        source = _Dead(again)
                    continue
                if item is None:
                    break
                failures = 0
                read += 1
                for k, image in self.resampler.push(*item):
                    self._add(k, image)
            for k, image in self.resampler.flush():
                self._add(k, image)
            self._close_chunk()
        finally:
            source.close()
        return self.chunks

    def _add(self, k: int, image: Image) -> None:
        cur = self._open
        if cur is not None and (
            k // self.frames_per_chunk != cur.first_k // self.frames_per_chunk
            or k != self._last_k + 1
        ):
            self._close_chunk()
            cur = None
        if cur is None:
            cur = self._open = _Open(k)
        cur.frames.append(image)
        self._last_k = k
        if self.on_frame is not None:
            self.on_frame(Frame(image, self.resampler.slot_time(k)))

    def _close_chunk(self) -> None:
        cur, self._open = self._open, None
        if cur is None or not cur.frames:
            return
        start = self.resampler.slot_time(cur.first_k)
        data = encode_mp4(cur.frames, self.fps)
        day = start.astimezone(self.tz).date()
        key = video_key(self.tenant_id, self.camera_id, day, format_chunk_ts(start))
        if self.spool is not None:
            # Edge mode: the chunk waits in the local spool until the uploader sends it.
            self.spool.put(start, len(cur.frames), data)
            self.chunks.append(ChunkWritten(key, start, len(cur.frames), len(data)))
            return
        assert self.lake is not None
        self.lake.put(key, data)
        if self.bus is not None:
            event = ObjectRegistered(
                key=key,
                source=SOURCE,
                tenant_id=self.tenant_id,
                business_date=day,
                object_id=key.rsplit("/", 1)[-1].removesuffix(".mp4"),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_type="video/mp4",
                registered_at=utcnow(),
                meta={"camera_id": self.camera_id, "frames": str(len(cur.frames))},
            )
            self.bus.publish(VIDEO_CHUNKS, event.model_dump(mode="json"), event_id=key)
        written = ChunkWritten(key, start, len(cur.frames), len(data))
        self.chunks.append(written)
        log.info("chunk %s: %d frames, %d bytes", key, written.frames, written.size)
        delete_expired_chunks(self.lake, self.tenant_id, self.camera_id, self.retention_days, day)


class _Dead(FrameSource):
    """Stands in for a source that could not be reopened: fails on read (next retry)."""

    def __init__(self, exc: SourceDisconnected) -> None:
        self._exc = exc

    def read(self) -> tuple[datetime, Image] | None:
        raise self._exc
