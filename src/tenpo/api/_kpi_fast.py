"""The KPI read's hot path: ``GET /v1/stores/{id}/kpis`` answered below FastAPI's routing.

On a PostgreSQL datamart, the common request — a bearer API key, only ``from``, ``to``,
``grain`` (not ``hour``) and ``format=json`` in the query, a JSON answer — is served by
:class:`KpiFastPath`, an ASGI middleware, without routing, dependency resolution or
parameter validation (together more CPU than the read itself). After its own reading of
the request it calls the route's core, :func:`tenpo.api._routes.kpi_response`: one read
and one encoding for both, byte for byte, with the same checks: the ``read`` scope, the
caller's rate limit, its tenant and stores. A key missing from the auth cache is checked
on a worker thread, as the route does.

Every other request goes on to the app, and so does every request the fast path would not
answer 200 or 304 — an unknown or revoked key, a bad date, an empty token bucket, a
database error: the route then answers it (problem JSON, OpenAPI, validation all stay
FastAPI's). A store the caller may not see gets the app's own 404 problem from here (its
rate-limit token spent once); only a database error makes the full path read again.
"""

from __future__ import annotations

import logging
import re
from typing import cast
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenpo.api._auth import READ_SCOPE
from tenpo.api._export import negotiate
from tenpo.api._problems import tenpo_error
from tenpo.api._routes import date_range, kpi_response
from tenpo.api._state import api_state
from tenpo.control.auth import authenticate_off_loop
from tenpo.core.errors import AuthError, BadInput, NotFound
from tenpo.datamart.read import ApiGrain

__all__ = ["KpiFastPath"]

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/stores/([^/]{1,64})/kpis$")
"""The route's path (its ``store_id`` has at most 64 characters)."""
_PARAMS = frozenset({"from", "to", "grain", "format"})
_GRAINS = frozenset({"day", "week", "month", "total"})
"""Grains served from the daily rows (``hour`` reads the hourly mart: the full path)."""


class KpiFastPath:
    """ASGI middleware serving the plain KPI JSON read itself (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and (match := _PATH.match(scope["path"])) is not None
        ):
            response = await self._answer(scope, match[1])
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, store_id: str) -> Response | None:
        """The route's answer, or None to let the app answer (or refuse) the request."""
        state = api_state(scope["app"])
        if state.kpi_reader is None:
            return None
        query: dict[str, str] = {}
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), True):
            if name not in _PARAMS or name in query:
                return None  # unknown or repeated: FastAPI's reading decides
            query[name] = value
        grain = query.get("grain", "day")
        if grain not in _GRAINS or query.get("format", "json") != "json":
            return None
        token = accept = etags = None
        for key, value in scope["headers"]:
            if key == b"authorization" and token is None:
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return None
                token = token.strip()
            elif key == b"accept" and accept is None:
                accept = value.decode("latin-1")
            elif key == b"if-none-match" and etags is None:
                etags = value.decode("latin-1")
        if not token or ("format" not in query and negotiate(None, accept) != "json"):
            return None
        try:
            start, end = date_range(
                query.get("from", ""), query.get("to", ""), state.settings.api_max_kpi_days
            )
            # A key the auth cache holds costs a look-up; a miss reads the control plane
            # on a worker thread (never on the loop), as the route's own check does.
            principal = await authenticate_off_loop(state.control, token)
        except (BadInput, AuthError):
            return None  # the route answers the problem
        if not principal.allows(READ_SCOPE):
            return None
        if state.rate_limiter.acquire(principal.key_id) > 0:
            return None  # the full path refuses it (429) with the same empty bucket
        state.known_credentials.remember(token, principal)
        grain_ = cast("ApiGrain", grain)
        try:
            return await kpi_response(state, etags, principal, store_id, start, end, grain_, "json")
        except NotFound as exc:  # the route's own problem answer (the token is spent once)
            return await tenpo_error(Request(scope), exc)
        except Exception:  # a database error: the full path tries again and answers it
            log.debug("KPI fast path declined %s", scope["path"], exc_info=True)
            return None
