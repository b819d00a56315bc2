"""``POST /v1/video/{camera_id}/chunks``: an edge recorder's closed MP4 chunk into the lake.

The key must hold ``video:write`` and the camera must be a registered ``rgb_camera`` of the
key's tenant (403 otherwise). The body is checked (media type, SHA-256, frame count; see
:mod:`tenpo.video.chunks`) and landed at ``video/tenant=/camera=/date=/{start}.mp4`` through
the landing zone's claim-then-write path, then announced on ``video.chunks`` for the
analyzer. Idempotent on (camera, start): the same bytes again → 202 ``created: false``;
other bytes for the same start → 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.concurrency import run_in_threadpool

from tenpo.core.checks import read_body
from tenpo.core.errors import Forbidden
from tenpo.gateway._routes import INGEST_ERRORS, GatewayState, StateDep, VideoWriter
from tenpo.gateway.ingest import IngestReceipt, Principal
from tenpo.lake.landing import LandingZone
from tenpo.video.chunks import (
    FRAMES_HEADER,
    MP4,
    SHA256_HEADER,
    START_HEADER,
    ChunkUpload,
    check_chunk,
    land_chunk,
    parse_chunk_headers,
)

router = APIRouter()

CAMERA_KIND = "rgb_camera"

_CHUNK_DOC = {
    "requestBody": {
        "required": True,
        "description": "One closed MP4 chunk (H.264) as the recorder wrote it.",
        "content": {MP4: {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/v1/video/{camera_id}/chunks",
    status_code=202,
    responses=INGEST_ERRORS,
    openapi_extra=_CHUNK_DOC,
    tags=["video"],
)
async def post_video_chunk(
    camera_id: Annotated[
        str,
        Path(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
            description="A registered rgb_camera of the key's tenant.",
        ),
    ],
    request: Request,
    state: StateDep,
    principal: VideoWriter,
    start: Annotated[
        str | None,
        Header(alias=START_HEADER, description="First frame's capture time, ISO 8601 + offset."),
    ] = None,
    frames: Annotated[
        str | None, Header(alias=FRAMES_HEADER, description="Frames in the chunk.")
    ] = None,
    sha256: Annotated[
        str | None, Header(alias=SHA256_HEADER, description="Hex SHA-256 of the body.")
    ] = None,
) -> IngestReceipt:
    """Keep a recorded chunk at its video key and announce it to the analyzer."""
    upload = parse_chunk_headers(start, frames, sha256)
    timezone = await run_in_threadpool(_camera_timezone, state, principal, camera_id)
    body = await read_body(request, state.settings.video_max_chunk_bytes)
    return await run_in_threadpool(
        _land,
        state,
        principal,
        camera_id,
        timezone,
        upload,
        body,
        request.headers.get("Content-Type"),
    )


def _camera_timezone(state: GatewayState, principal: Principal, camera_id: str) -> str:
    device = state.control.directory().device(principal.tenant_id, camera_id)
    if device is None or device.kind != CAMERA_KIND:
        raise Forbidden(
            f"camera {camera_id!r} is not a registered {CAMERA_KIND} of tenant"
            f" {principal.tenant_id!r}",
            camera_id=camera_id,
        )
    return str(device.timezone)


def _land(
    state: GatewayState,
    principal: Principal,
    camera_id: str,
    timezone: str,
    upload: ChunkUpload,
    body: bytes,
    content_type: str | None,
) -> IngestReceipt:
    check_chunk(body, content_type, upload)
    landing = LandingZone(state.lake, state.bus, timezone)
    landed = land_chunk(
        landing,
        principal.tenant_id,
        camera_id,
        timezone,
        upload,
        body,
        meta={"key_id": principal.key_id},
    )
    event = landed.event
    return IngestReceipt(
        object_id=event.object_id,
        key=event.key,
        bytes=event.size,
        created=landed.created,
        counts={"frames": upload.frames},
    )
