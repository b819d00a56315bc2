"""``GET /v1/video/audits/{camera_id}``: the latest counting-accuracy audit of a camera's day."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tenpo.api._problems import problem_doc
from tenpo.api.deps import READER_ERRORS, Control, LakeDep, Reader
from tenpo.core.errors import BadInput, NotFound
from tenpo.video.audit import AuditReport, load_report

__all__ = ["video_router"]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


video_router = APIRouter()


@video_router.get(
    "/v1/video/audits/{camera_id}",
    response_model=AuditReport,
    responses=READER_ERRORS
    | {
        404: problem_doc("No such camera of the caller's stores, or no audit of that date."),
        422: problem_doc("`date` is not a date as YYYY-MM-DD."),
    },
    tags=["video"],
)
def video_audit(
    caller: Reader,
    control: Control,
    lake: LakeDep,
    camera_id: Annotated[str, Path(description="The rgb_camera's device id.")],
    date_: Annotated[
        str,
        Query(
            alias="date",
            description="Business date, YYYY-MM-DD.",
            json_schema_extra={"format": "date"},
        ),
    ],
) -> AuditReport:
    """The report `tenpo video audit` saved for the camera and date: per direction the
    hand-counted and counted crossings, precision, recall and count accuracy; the
    re-identification figures (same person same ID, false merges); the misses."""
    if not _ISO_DATE.match(date_):
        raise BadInput(f"query parameter 'date' must be a date as YYYY-MM-DD, got {date_!r}")
    try:
        day = date.fromisoformat(date_)
    except ValueError:
        raise BadInput(
            f"query parameter 'date' must be a date as YYYY-MM-DD, got {date_!r}"
        ) from None
    device = control.directory().device(caller.tenant_id, camera_id)
    if device is None or device.kind != "rgb_camera" or not caller.sees_store(device.store_id):
        raise NotFound(f"no camera {camera_id!r}")
    report = load_report(lake, caller.tenant_id, camera_id, day)
    if report is None:
        raise NotFound(f"no counting audit of camera {camera_id!r} on {day}")
    return report
