"""RFC 9457 problem details: every 4xx/5xx of the gateway is ``application/problem+json``.

``type`` is ``urn:tenpo:problem:<slug>`` for tenpo's own errors and ``about:blank`` for plain
HTTP statuses (unknown route, wrong method), where ``title`` is the status phrase.
Server-side failures never reveal internals: the answer carries an error id that is logged
with the traceback.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenpo.core.errors import AuthError, Forbidden, TenpoError
from tenpo.core.ids import new_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="tenpo"'
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "headers", "type_"})


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response with ``status``, ``title`` (default: the status phrase)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _slug(exc: TenpoError) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()


async def _tenpo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TenpoError)
    status = exc.http_status
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError) and not isinstance(exc, Forbidden):
        # RFC 6750: no error code when the request carried no credentials at all.
        headers["WWW-Authenticate"] = (
            f'{BEARER_CHALLENGE}, error="invalid_token"'
            if "authorization" in request.headers
            else BEARER_CHALLENGE
        )
    if status >= 500:
        # Lake/bus outages: the message may hold paths or hosts, so it stays in the log.
        error_id = new_id("err-")
        log.error(
            "%s %s failed (%s): %s", request.method, request.url.path, error_id, exc, exc_info=exc
        )
        if status == 503:
            headers["Retry-After"] = "5"
        detail = f"{exc.title}; retry later (error id {error_id})"
    else:
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        detail = exc.message
    extensions = {
        k: v
        for k, v in exc.context.items()
        if k not in _RESERVED and isinstance(v, str | int) and not isinstance(v, bool)
    }
    return problem(
        status,
        detail,
        title=exc.title,
        type_=f"urn:tenpo:problem:{_slug(exc)}",
        instance=request.url.path,
        headers=headers or None,
        **(extensions if status < 500 else {}),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e["type"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return problem(
        422,
        detail,
        title="Invalid request",
        type_="urn:tenpo:problem:invalid-request",
        instance=request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}"
    return problem(
        exc.status_code,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = new_id("err-")
    log.exception("%s %s crashed (%s)", request.method, request.url.path, error_id, exc_info=exc)
    return problem(
        500,
        f"unexpected server error (error id {error_id})",
        type_="urn:tenpo:problem:internal-error",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem JSON."""
    app.add_exception_handler(TenpoError, _tenpo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
