"""Staff enrolment: ``POST /v1/admin/staff`` (photos → face descriptors), ``GET`` and
``DELETE /v1/admin/staff/{id}``.

The photos (``multipart/form-data`` fields ``store``, ``name`` and one or more ``photo``
files, or JSON ``{"store", "name", "photos": [base64, ...]}``) are decoded in memory,
turned into the analyzer's face descriptors (:func:`tenpo.video.enrol.photo_descriptors`)
and dropped: only the descriptors reach the control plane. Bytes that are no image → 415,
a photo without exactly one face → 422, both problem JSON.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import json
from email.parser import BytesParser
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tenpo.api._problems import problem
from tenpo.api.deps import ADMIN_OBJECT_ERRORS, Admin, Control, Page, TenantParam
from tenpo.control import StaffInfo
from tenpo.core.checks import media_type, read_body
from tenpo.core.errors import BadInput

__all__ = ["staff_router"]

staff_router = APIRouter(prefix="/v1/admin", tags=["admin"])

MAX_STAFF_BODY = 40 * 1024 * 1024  # ten photos of up to 10 MiB, base64 included, roughly

_DOC = (
    "Enrol a member of staff from photos of their face (one person per photo): "
    "`multipart/form-data` with fields `store` (id or code), `name` and one or more `photo` "
    'files, or JSON `{"store": "S001", "name": "...", "photos": ["<base64>", ...]}`. '
    "Only face descriptors are stored — never a photo. 415: not an image; 422: no face, "
    "several faces, or a bad field; 413: body over 40 MiB."
)


@staff_router.post(
    "/staff",
    response_model=StaffInfo,
    status_code=201,
    responses={
        **ADMIN_OBJECT_ERRORS,
        413: {**ADMIN_OBJECT_ERRORS[422], "description": "Body over 40 MiB."},
        415: {
            **ADMIN_OBJECT_ERRORS[422],
            "description": "A photo is not an image (or a wrong body type).",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": _DOC,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["store", "name", "photo"],
                        "properties": {
                            "store": {"type": "string"},
                            "name": {"type": "string"},
                            "photo": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                        },
                    }
                },
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
    description=_DOC,
)
async def enroll_staff(
    request: Request, caller: Admin, control: Control, tenant: TenantParam = None
) -> Any:
    """Enrol a member of staff (face descriptors from the photos; photos not kept)."""
    from tenpo.video.enrol import photo_descriptors

    tenant_id = caller.tenant(tenant)
    path = request.url.path
    body = await read_body(request, MAX_STAFF_BODY, "staff enrolment body")
    kind = media_type(request.headers.get("content-type"))
    names: list[str] = []
    if kind == "multipart/form-data":
        store, name, photos, names = _multipart(request.headers["content-type"], body)
    elif kind == "application/json":
        store, name, photos = _json_body(body)
    else:
        return problem(
            415,
            f"send multipart/form-data or application/json, not {kind or 'nothing'!r}",
            instance=path,
        )
    del body
    if not isinstance(store, str) or not store:
        raise BadInput("field 'store' (store id or code) is required")
    if not isinstance(name, str) or not name.strip():
        raise BadInput("field 'name' is required")
    # Fail fast on the store (404) before the seconds of face work.
    await run_in_threadpool(control.list_staff, tenant_id, store)
    vectors = await run_in_threadpool(photo_descriptors, photos, names=names or None)
    del photos
    return await run_in_threadpool(control.enroll_staff, tenant_id, store, name, vectors)


def _multipart(content_type: str, body: bytes) -> tuple[Any, Any, list[bytes], list[str]]:
    """Fields and photo files of a multipart body, parsed in memory (Starlette's form parser
    spools parts over 1 MiB to a temporary file: a photo must never touch the disk)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise BadInput("multipart body has no parts (missing or wrong boundary)")
    fields: dict[str, str] = {}
    photos: list[bytes] = []
    names: list[str] = []
    parts = list(msg.iter_parts())
    if len(parts) > 20:
        raise BadInput(f"{len(parts)} multipart parts; expected store, name and ≤ 10 photos")
    for part in parts:
        field = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if field == "photo":
            photos.append(data)
            names.append(part.get_filename() or f"photo {len(photos)}")
        elif field in ("store", "name"):
            fields[str(field)] = data.decode("utf-8", errors="replace").strip()
    return fields.get("store"), fields.get("name"), photos, names


def _json_body(body: bytes) -> tuple[Any, Any, list[bytes]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"staff body is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("photos"), list):
        raise BadInput('staff JSON must be {"store": ..., "name": ..., "photos": [base64, ...]}')
    photos: list[bytes] = []
    for n, item in enumerate(doc["photos"], start=1):
        if not isinstance(item, str):
            raise BadInput(f"photos[{n - 1}] must be a base64 string")
        try:
            photos.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise BadInput(f"photos[{n - 1}] is not valid base64") from None
    return doc.get("store"), doc.get("name"), photos


@staff_router.get("/staff", response_model=Page[StaffInfo], responses=ADMIN_OBJECT_ERRORS)
def list_staff(
    caller: Admin, control: Control, tenant: TenantParam = None, store: str | None = None
) -> Page[StaffInfo]:
    """The tenant's enrolled staff (``?store=`` id or code: one store's), by name."""
    return Page[StaffInfo](items=control.list_staff(caller.tenant(tenant), store))


@staff_router.delete("/staff/{staff_id}", response_model=StaffInfo, responses=ADMIN_OBJECT_ERRORS)
def delete_staff(
    staff_id: str, caller: Admin, control: Control, tenant: TenantParam = None
) -> StaffInfo:
    """Remove a member of staff and their face descriptors (404 for another tenant's)."""
    return control.remove_staff(caller.tenant(tenant), staff_id)
