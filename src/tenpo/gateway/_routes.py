"""HTTP routes of the gateway: authenticate, read the body within the limit, hand it over.

Everything the routes need (settings, lake, bus, control plane, ingestor) comes from the
:class:`GatewayState` on ``app.state.gateway`` through dependencies. The ingest routes'
dependency chain is async: a cached API key is authenticated on the event loop (the
database only on a cache miss, in a worker thread), the blocking part of an upload (checks,
directory look-ups, unsynced lake writes) takes ONE worker-thread hop, and the group commit
(durable, then announced) is awaited on the loop (:meth:`Ingestor.pos_sales_async`). FastAPI
runs a sync ``def`` dependency in its threadpool: a hop per dependency per request, which is
what the hot path cannot afford.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tenpo.bus.base import OBJECT_REGISTERED, EventBus
from tenpo.control.auth import authenticate_off_loop
from tenpo.core.bodies import EVENT_FIELDS
from tenpo.core.checks import VISIBLE_CHAR, read_body
from tenpo.core.errors import AuthError, BadInput, Forbidden, NotFound
from tenpo.core.settings import Settings
from tenpo.gateway._problems import PROBLEM_JSON
from tenpo.gateway.ingest import (
    JSONL_UTF8,
    ControlPlane,
    Ingestor,
    IngestReceipt,
    Principal,
)
from tenpo.lake.base import Lake
from tenpo.pos.vendors import JSON_UTF8, built_in, upload_store

log = logging.getLogger(__name__)


class Ledger:
    """The streamer's load ledger as the gateway reads it (batch status): opened on first use
    from ``url`` unless one is injected, closed with the app (an injected one stays open)."""

    def __init__(self, url: str, ledger: Any = None) -> None:
        self.url = url
        self._ledger = ledger
        self._owned = ledger is None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The ledger (a :class:`tenpo.streamer.LoadLedger`), opening it the first time."""
        with self._lock:
            if self._ledger is None:
                from tenpo.streamer import LoadLedger

                self._ledger = LoadLedger(self.url)
            return self._ledger

    @property
    def is_open(self) -> bool:
        """True while a ledger is held (opened here or injected)."""
        return self._ledger is not None

    def close(self) -> None:
        """Close the ledger if this holder opened it."""
        with self._lock:
            if self._owned and self._ledger is not None:
                self._ledger.close()
                self._ledger = None


@dataclass(frozen=True)
class GatewayState:
    """The connections one gateway app serves with (built once, in the lifespan)."""

    settings: Settings
    lake: Lake
    bus: EventBus
    control: ControlPlane
    ingestor: Ingestor
    ledger: Ledger


async def get_state(request: Request) -> GatewayState:
    """The app's :class:`GatewayState`."""
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]

_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="A tenant API key: `tnp_<id>_<secret>`."
)


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Any:
    """The principal behind the bearer credentials (see :func:`authenticate`)."""
    if credentials is None:
        if request.headers.get("Authorization") is None:
            raise AuthError("missing Authorization header (expected 'Bearer <api key>')")
        raise AuthError("malformed Authorization header (expected 'Bearer <api key>')")
    return await authenticate_off_loop(request.app.state.gateway.control, credentials.credentials)


async def authenticate(request: Request, credentials: BearerDep) -> Principal:
    """The principal behind ``Authorization: Bearer <api key>``; :class:`AuthError` otherwise.

    A key in the control plane's auth cache is answered on the event loop; otherwise the
    database lookup (and the cache fill) runs in a worker thread.
    """
    principal: Principal = await _principal(request, credentials)
    return principal


def _scoped(scope: str) -> Any:
    # One flat dependency (no chain through authenticate/get_state): FastAPI solves each
    # level of a dependency tree anew on every request.
    async def require_scope(request: Request, credentials: BearerDep) -> Principal:
        principal: Principal = await _principal(request, credentials)
        principal.require(scope)
        return principal

    return Depends(require_scope)


PosWriter = Annotated[Principal, _scoped("pos:write")]
IotWriter = Annotated[Principal, _scoped("iot:write")]
VideoWriter = Annotated[Principal, _scoped("video:write")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Re-sending with the same key lands on the same object; other bytes → 409.",
    ),
]


def one_idempotency_key(request: Request) -> None:
    """:class:`BadInput` when the request sends ``Idempotency-Key`` more than once: which one
    names the object is the client's bug to fix (the header dependency would take the first)."""
    keys = request.headers.getlist("idempotency-key")
    if len(keys) > 1:
        raise BadInput(
            f"send one Idempotency-Key header, not {len(keys)}",
            param="Idempotency-Key",
        )


def _none_of(fields: frozenset[str]) -> dict[str, Any]:
    return {"not": {"anyOf": [{"required": [f]} for f in sorted(fields)]}}


EVENTS_BODY: dict[str, Any] = {
    "description": '{"events": [...]}, each event naming its device (the object is no event).',
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["device_id"],
                "properties": {"device_id": {"type": "string", "pattern": VISIBLE_CHAR}},
            },
        }
    },
    **_none_of(EVENT_FIELDS - {"events"}),
    "example": {
        "events": [
            {
                "v": 1,
                "device_id": "pc-001",
                "seq": 1041,
                "type": "count",
                "line": "entrance",
                "interval_start": "2026-11-02T10:00:00+09:00",
                "interval_end": "2026-11-02T10:01:00+09:00",
                "in": 5,
                "out": 3,
            }
        ]
    },  # FORMATS.md
}
"""What the gateway's cheap checks accept as a device-events body."""

_BINARY = {"type": "string", "format": "binary"}


def _body_doc(
    description: str,
    *media_types: str,
    json_schema: Any = None,
    json_examples: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        media: {"schema": json_schema if media == JSON_UTF8 and json_schema else _BINARY}
        for media in media_types
    }
    if json_examples and JSON_UTF8 in content:
        content[JSON_UTF8]["examples"] = json_examples
    return {"requestBody": {"required": True, "description": description, "content": content}}


_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, **_PROBLEM}
    for status, text in {
        400: "Malformed body (empty, undecodable, invalid JSON/CSV)",
        401: "Missing, malformed, unknown or revoked API key",
        403: "Key lacks the scope, or names another tenant's store or device",
        404: "Unknown vendor or endpoint",
        409: "Idempotency-Key reused for different content",
        413: "Body larger than max_body_bytes (pos_max_body_bytes for POS)",
        415: "Text in another encoding than the vendor's (e.g. UTF-8 sent to a CP932 vendor)",
        422: "Invalid header or parameter",
        503: "Datalake or event bus unavailable",
    }.items()
}

router = APIRouter()

_VENDORS = built_in()
_SALES_DOC = "The vendor's native sales body: " + "; ".join(
    f"{v.key} `{v.sales.content_type}`" for v in _VENDORS.values()
)
_STORE_LESS = [k for k, v in _VENDORS.items() if v.sales.store_from_upload]
_JSON_SALES = {k: dict(v.sales.json_schema) for k, v in _VENDORS.items() if v.sales.json_schema}
SALES_JSON_BODY: dict[str, Any] = {
    "description": "A JSON sales body, as the path's vendor sends it: "
    + "; ".join(f"{k}: {s.get('description', '')}" for k, s in _JSON_SALES.items()),
    "anyOf": [
        {"title": k, **{f: v for f, v in s.items() if f != "example"}}
        for k, s in _JSON_SALES.items()
    ],
}
"""What the gateway's cheap checks accept as a JSON sales body: the ``anyOf`` of every JSON
vendor's schema (:attr:`tenpo.pos.vendors.Upload.json_schema`; the vendor is in the path)."""
SALES_JSON_EXAMPLES = {
    k: {"summary": f"{k} (POST /v1/pos/{k}/sales)", "value": s["example"]}
    for k, s in _JSON_SALES.items()
    if "example" in s
}
"""The documented example body of each JSON vendor, by vendor key."""
_MASTERS = {k: v.master for k, v in _VENDORS.items() if v.master is not None}
_MASTER_DOC = "The vendor's POS master: " + "; ".join(
    f"{k} `{u.content_type}`" for k, u in _MASTERS.items()
)


@router.post(
    "/v1/pos/{vendor}/sales",
    status_code=202,
    response_model=IngestReceipt,
    responses=INGEST_ERRORS,
    openapi_extra=_body_doc(
        _SALES_DOC,
        *dict.fromkeys(v.sales.content_type for v in _VENDORS.values()),
        json_schema=SALES_JSON_BODY,
        json_examples=SALES_JSON_EXAMPLES,
    ),
    tags=["pos"],
)
async def post_pos_sales(
    vendor: Annotated[
        str,
        Path(
            description=f"POS vendor: {', '.join(_VENDORS)} or a declarative vendor.",
            examples=list(_VENDORS),
        ),
    ],
    request: Request,
    principal: PosWriter,
    idempotency_key: IdempotencyKey = None,
    store: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Store code of the store the file belongs to, for a vendor whose "
            f"files name no store ({', '.join(_STORE_LESS) or 'none built in'}); refused for "
            "the others.",
        ),
    ] = None,
) -> Response:
    """Keep a POS sales body as received and announce it to the streamer."""
    state: GatewayState = request.app.state.gateway
    upload = state.ingestor.check_vendor(vendor, "sales").sales
    upload_store(vendor, upload, store)  # refused before the body is read
    one_idempotency_key(request)
    body = await read_body(request, state.settings.pos_max_body_bytes)
    return accepted(
        await state.ingestor.pos_sales_async(principal, vendor, body, idempotency_key, store)
    )


@router.post(
    "/v1/pos/{vendor}/master",
    status_code=202,
    response_model=IngestReceipt,
    responses=INGEST_ERRORS,
    openapi_extra=_body_doc(_MASTER_DOC, *dict.fromkeys(u.content_type for u in _MASTERS.values())),
    tags=["pos"],
)
async def post_pos_master(
    vendor: Annotated[
        str, Path(description=f"POS vendor sending a master: {', '.join(_MASTERS)}.")
    ],
    request: Request,
    state: StateDep,
    principal: PosWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Keep a POS register→store master as received and announce it."""
    state.ingestor.check_vendor(vendor, "master")
    one_idempotency_key(request)
    body = await read_body(request, state.settings.pos_max_body_bytes)
    return accepted(await state.ingestor.pos_master_async(principal, vendor, body, idempotency_key))


async def _pos_reader(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """The caller, when it may write POS data or read its tenant's data."""
    try:
        principal.require("pos:write")
    except Forbidden:
        principal.require("read")
    return principal


PosReader = Annotated[Principal, Depends(_pos_reader)]
ObjectId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="The object id a POST answered with.",
    ),
]


@router.get("/v1/pos/batches/{object_id}", responses=INGEST_ERRORS, tags=["pos"])
async def get_pos_batch(
    object_id: ObjectId,
    request: Request,
    state: StateDep,
    principal: PosReader,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="First quarantine entry of the page.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Quarantine entries per page.")] = 100,
) -> Any:
    """Status of a POS upload of the caller's tenant: landed, loaded, partially quarantined or
    rejected, with the accepted rows and one page of the quarantined records and their
    reasons (alike rejects of a large body come grouped, with their line numbers)."""
    from tenpo.streamer import object_status

    ledger = await run_in_threadpool(state.ledger.get)
    found = await run_in_threadpool(
        partial(object_status, offset=offset, limit=limit),
        state.lake,
        ledger,
        principal.tenant_id,
        object_id,
        state.ingestor.pos_sources,
    )
    if found is None:
        raise NotFound(f"no POS upload {object_id!r} for this tenant", object_id=object_id)
    return found


@router.post(
    "/v1/iot/events",
    status_code=202,
    response_model=IngestReceipt,
    responses=INGEST_ERRORS,
    openapi_extra=_body_doc(
        'Device events: {"events": [...]} (FORMATS.md).', JSON_UTF8, json_schema=EVENTS_BODY
    ),
    tags=["iot"],
)
async def post_iot_events(
    request: Request,
    state: StateDep,
    principal: IotWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Keep a batch of device events as received and announce it."""
    one_idempotency_key(request)
    body = await read_body(request, state.settings.max_body_bytes)
    return accepted(await state.ingestor.iot_events_async(principal, body, idempotency_key))


@router.post(
    "/v1/video/visitor-events",
    status_code=202,
    response_model=IngestReceipt,
    responses=INGEST_ERRORS,
    openapi_extra=_body_doc("Visitor events, one JSON object per line.", JSONL_UTF8),
    tags=["video"],
)
async def post_visitor_events(
    request: Request,
    state: StateDep,
    principal: VideoWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Keep a JSON Lines batch of visitor events as received and announce it."""
    one_idempotency_key(request)
    body = await read_body(request, state.settings.max_body_bytes)
    return accepted(await state.ingestor.visitor_events_async(principal, body, idempotency_key))


def accepted(receipt: IngestReceipt) -> Response:  # also the POST fast path's answer
    """The 202 answer, serialized once by pydantic's core (no response-model round trip)."""
    return Response(receipt.model_dump_json(), status_code=202, media_type=JSON_UTF8)


STREAMER_CONSUMER = "streamer"
"""The streamer's durable consumer (``tenpo.streamer.CONSUMER``, not imported: it is heavy)."""


@router.get("/healthz", tags=["health"])
def healthz(state: StateDep) -> JSONResponse:
    """``{"status": "ok", "lake": "ok", "bus": "ok", "backlog": n}``; 503 ``degraded`` on failure.

    ``backlog`` counts landed objects the streamer has not loaded yet (None when unknown).
    """
    lake = _probe_lake(state.lake)
    bus, backlog = _probe_bus(state.bus)
    healthy = lake == bus == "ok"
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "lake": lake, "bus": bus, "backlog": backlog},
        status_code=200 if healthy else 503,
    )


def _probe_lake(lake: Lake) -> str:
    try:
        lake.exists("landing")
    except Exception:
        log.warning("health: lake at %s unreachable", lake.root, exc_info=True)
        return "unreachable"
    return "ok"


def _probe_bus(bus: EventBus) -> tuple[str, int | None]:
    try:
        return "ok", bus.pending(OBJECT_REGISTERED, STREAMER_CONSUMER)
    except NotImplementedError:
        return "ok", None
    except Exception:
        log.warning("health: event bus unreachable", exc_info=True)
        return "unreachable", None
