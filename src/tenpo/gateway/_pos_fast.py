"""The POS upload's hot path: ``POST /v1/pos/{vendor}/sales`` answered below FastAPI's routing.

The common upload — an API key already in the auth cache holding ``pos:write``, a vendor whose
body names its stores, no query string, at most one well-formed ``Idempotency-Key`` — is
served by :class:`PosSalesFastPath`, an ASGI middleware, without routing, dependency
resolution or parameter validation (on this path they cost more CPU than the checks and the
landing). It makes the same calls as the route (:func:`tenpo.core.checks.read_body`,
:meth:`tenpo.gateway.ingest.Ingestor.pos_sales_async`) and gives the same answers, byte for
byte: the 202 of :func:`tenpo.gateway._routes.accepted`, and for every :class:`TenpoError`
after the body was read (malformed, too large, another tenant's store, an Idempotency-Key
reused, the lake down) the app's own problem handler's.

Everything it would not serve goes on to the app untouched, decided before the body is
read: an uncached, unknown or revoked key, a missing scope, an unknown vendor or one that
needs ``?store=``, any query string, a repeated or out-of-bounds header — the route then
answers it (problem JSON, OpenAPI, validation all stay FastAPI's).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenpo.core.checks import body_too_large, check_declared_length
from tenpo.core.errors import Forbidden, TenpoError
from tenpo.gateway._problems import tenpo_error
from tenpo.gateway._routes import GatewayState, accepted

__all__ = ["PosSalesFastPath"]

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/pos/([^/]+)/sales$")
"""The route's path (``{vendor}`` is Starlette's default ``[^/]+``)."""
_WRITE_SCOPE = "pos:write"
_MAX_IDEMPOTENCY_KEY = 255
"""The route's bounds of ``Idempotency-Key`` (1 to 255 characters; others are its 422)."""


class PosSalesFastPath:
    """ASGI middleware serving the plain POS sales upload itself (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not scope["query_string"]
            and (match := _PATH.match(scope["path"])) is not None
        ):
            accepted_call = self._accepts(scope, match[1])
            if accepted_call is not None:
                await self._serve(scope, receive, send, *accepted_call)
                return
        await self.app(scope, receive, send)

    def _accepts(
        self, scope: Scope, vendor: str
    ) -> tuple[GatewayState, Any, str | None, str] | None:
        """(state, principal, Idempotency-Key, Content-Length as sent or "") when this path
        serves the request, else None (the app answers it). Reads nothing of the body."""
        state: GatewayState | None = getattr(scope["app"].state, "gateway", None)
        if state is None:
            return None
        cached = getattr(state.control, "cached_principal", None)
        found = state.ingestor.registry.get(vendor)
        if cached is None or found is None or found.sales.store_from_upload:
            return None
        authorization = idempotency_key = length = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                if authorization is not None:
                    return None
                authorization = value.decode("latin-1")
            elif key == b"idempotency-key":
                if idempotency_key is not None:
                    return None
                idempotency_key = value.decode("latin-1")
            elif key == b"content-length" and length is None:  # (the first, as Starlette)
                length = value.decode("latin-1")
        scheme, token = get_authorization_scheme_param(authorization)
        if scheme.lower() != "bearer" or not token:
            return None
        if idempotency_key is not None and not 0 < len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY:
            return None
        principal = cached(token)
        if principal is None:
            return None
        try:
            principal.require(_WRITE_SCOPE)
        except Forbidden:
            return None
        return state, principal, idempotency_key, length or ""

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: GatewayState,
        principal: Any,
        idempotency_key: str | None,
        length: str,
    ) -> None:
        """Read, check and land the body; answer as the route would (202 or problem)."""
        vendor = _PATH.match(scope["path"])[1]  # type: ignore[index] # matched by the caller
        response: Response
        try:
            body = await _read_body(receive, length, state.settings.pos_max_body_bytes)
            receipt = await state.ingestor.pos_sales_async(
                principal, vendor, body, idempotency_key, None
            )
        except TenpoError as exc:
            response = await tenpo_error(Request(scope, receive), exc)
        else:
            response = accepted(receipt)
        await response(scope, receive, send)


async def _read_body(receive: Receive, length: str, limit: int) -> bytes:
    """:func:`tenpo.core.checks.read_body` straight from the ASGI messages (the same checks,
    errors and ``ClientDisconnect`` as through Starlette's ``Request.stream``, without
    building the request and its headers)."""
    check_declared_length(length, limit)
    received = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.request":
            received += message.get("body", b"")
            if len(received) > limit:
                raise body_too_large(limit)
            if not message.get("more_body", False):
                return bytes(received)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
