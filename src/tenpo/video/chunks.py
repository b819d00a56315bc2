"""Recorded chunks as objects: their lake key, their upload contract, their landing.

A chunk is one MP4 whose frame ``i`` was captured at ``start + i/fps``. It lives at
``video_key(tenant, camera, local date of start, format_chunk_ts(start))`` and is announced
on :data:`VIDEO_CHUNKS` with an ``ObjectRegistered`` payload (source :data:`SOURCE`, meta
``camera_id`` and ``frames``). The recorder writes chunks there directly (edge lake) or the
gateway does on ``POST /v1/video/{camera_id}/chunks``; both go through the same names.

Upload contract (headers of the POST; the body is the MP4):

- ``X-Chunk-Start``: capture time of the first frame, ISO 8601 with an offset;
- ``X-Chunk-Frames``: number of frames (≥ 1), checked against the MP4's own count;
- ``X-Chunk-SHA256``: hex SHA-256 of the body, checked (a truncated upload is refused).

The object id is ``{camera}-{start}``: one (camera, start) names one chunk for ever, so a
retry of the same bytes answers ``created: false`` and other bytes are a conflict (409).
Errors: :class:`MalformedChunk` (400), :class:`UnsupportedMedia` (415),
:class:`tenpo.core.errors.Conflict` (409).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from tenpo.core.errors import BadInput, Conflict
from tenpo.lake.keys import video_key
from tenpo.lake.landing import Landed, LandingZone

__all__ = [
    "FRAMES_HEADER",
    "MP4",
    "SHA256_HEADER",
    "SOURCE",
    "START_HEADER",
    "VIDEO_CHUNKS",
    "ChunkUpload",
    "MalformedChunk",
    "UnsupportedMedia",
    "check_chunk",
    "chunk_object_id",
    "format_chunk_ts",
    "land_chunk",
    "parse_chunk_headers",
]

VIDEO_CHUNKS = "video.chunks"
"""Bus topic of recorded chunks: an ``ObjectRegistered`` payload whose key is under video/."""
SOURCE = "video_chunks"
MP4 = "video/mp4"
START_HEADER = "X-Chunk-Start"
FRAMES_HEADER = "X-Chunk-Frames"
SHA256_HEADER = "X-Chunk-SHA256"

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class MalformedChunk(BadInput):
    """The chunk or its headers are unusable (missing header, bad hash, unreadable MP4)."""

    http_status = 400
    title = "Malformed chunk"


class UnsupportedMedia(BadInput):
    """The body is not an MP4 (wrong Content-Type or no ``ftyp`` box)."""

    http_status = 415
    title = "Unsupported media type"


def format_chunk_ts(ts: datetime) -> str:
    """Chunk start as used in keys: UTC, ``YYYYMMDDTHHMMSS.mmmZ``."""
    utc = ts.astimezone(UTC)
    return utc.strftime("%Y%m%dT%H%M%S") + f".{utc.microsecond // 1000:03d}Z"


def chunk_object_id(camera_id: str, start: datetime) -> str:
    """The id that (camera, start) gives a chunk, whoever stores it."""
    return f"{camera_id}-{format_chunk_ts(start)}"


@dataclass(frozen=True)
class ChunkUpload:
    """What the sender declares about a chunk."""

    start: datetime
    frames: int
    sha256: str


def parse_chunk_headers(start: str | None, frames: str | None, sha256: str | None) -> ChunkUpload:
    """The declared start, frame count and hash; :class:`MalformedChunk` naming the header."""
    if not start:
        raise MalformedChunk(f"missing {START_HEADER} header (ISO 8601 with an offset)")
    try:
        when = datetime.fromisoformat(start.strip())
    except ValueError as exc:
        raise MalformedChunk(f"{START_HEADER} is not an ISO 8601 date-time: {start!r}") from exc
    if when.tzinfo is None:
        raise MalformedChunk(f"{START_HEADER} must carry a UTC offset: {start!r}")
    if not frames:
        raise MalformedChunk(f"missing {FRAMES_HEADER} header")
    if not frames.strip().isdigit() or not 1 <= int(frames) <= 10_000_000:
        raise MalformedChunk(f"{FRAMES_HEADER} must be a positive integer, got {frames!r}")
    if not sha256:
        raise MalformedChunk(f"missing {SHA256_HEADER} header (hex SHA-256 of the body)")
    if not _HEX64.match(sha256.strip()):
        raise MalformedChunk(f"{SHA256_HEADER} must be 64 hex digits, got {sha256[:80]!r}")
    return ChunkUpload(when, int(frames), sha256.strip().lower())


def check_chunk(body: bytes, content_type: str | None, upload: ChunkUpload) -> None:
    """Refuse a body that is not the declared MP4 (media type, hash, frame count)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != MP4:
        raise UnsupportedMedia(
            f"Content-Type must be {MP4}, got {content_type or 'none'!r}", content_type=media
        )
    if not body:
        raise MalformedChunk("request body is empty")
    if body[4:8] != b"ftyp":
        raise UnsupportedMedia("body is not an MP4 file (no ftyp box at its start)")
    digest = hashlib.sha256(body).hexdigest()
    if digest != upload.sha256:
        raise MalformedChunk(
            f"body SHA-256 {digest} differs from {SHA256_HEADER} {upload.sha256}"
            f" ({len(body)} bytes received: truncated or altered on the way?)",
            received_sha256=digest,
        )
    frames = mp4_frame_count(body)
    if frames != upload.frames:
        raise MalformedChunk(
            f"the MP4 holds {frames} frames, {FRAMES_HEADER} says {upload.frames}",
            frames=frames,
        )


def mp4_frame_count(body: bytes) -> int:
    """Frames of the MP4's first video stream, from its index (no decoding unless missing)."""
    import av  # heavy: only when a chunk arrives

    try:
        with av.open(io.BytesIO(body), mode="r") as container:
            if not container.streams.video:
                raise MalformedChunk("the MP4 has no video stream")
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for _ in container.demux(stream) if _.size)
    except av.error.FFmpegError as exc:
        raise MalformedChunk(f"the MP4 cannot be read: {exc}") from exc


def land_chunk(
    landing: LandingZone,
    tenant_id: str,
    camera_id: str,
    timezone: str,
    upload: ChunkUpload,
    body: bytes,
    meta: dict[str, str] | None = None,
) -> Landed:
    """Keep the chunk at its ``video/...`` key and announce it on :data:`VIDEO_CHUNKS`."""
    day: date = upload.start.astimezone(ZoneInfo(timezone)).date()
    stamp = format_chunk_ts(upload.start)
    key = video_key(tenant_id, camera_id, day, stamp)
    try:
        return landing.land_at(
            key,
            SOURCE,
            tenant_id,
            chunk_object_id(camera_id, upload.start),
            body,
            day=day,
            topic=VIDEO_CHUNKS,
            content_type=MP4,
            meta={"camera_id": camera_id, "frames": str(upload.frames), **(meta or {})},
        )
    except Conflict as exc:
        raise Conflict(
            f"camera {camera_id!r} already has a different chunk starting at {stamp}",
            camera_id=camera_id,
            start=stamp,
        ) from exc
