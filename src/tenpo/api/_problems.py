"""RFC 9457 problem details: every 4xx/5xx of the read API is ``application/problem+json``.

The shape matches the gateway's: ``type`` is ``urn:tenpo:problem:<slug>`` for tenpo's own
errors and ``about:blank`` for plain HTTP statuses (``title`` is then the status phrase);
request validation failures list each bad parameter under ``errors``. Server-side failures
never reveal internals: the answer carries an error id that is logged with the traceback.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenpo.core.errors import AuthError, Forbidden, TenpoError
from tenpo.core.ids import new_id

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="tenpo"'
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors"})


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
    """A problem+json response with ``status`` and ``title`` (default: the status phrase)."""
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
        error_id = new_id("err-")
        logger.error(
            "%s %s failed (%s): %s", request.method, request.url.path, error_id, exc, exc_info=exc
        )
        return problem(
            status,
            f"{exc.title}; retry later (error id {error_id})",
            title=exc.title,
            type_=f"urn:tenpo:problem:{_slug(exc)}",
            instance=request.url.path,
            headers=headers | {"Retry-After": "5"},
        )
    logger.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    retry_after = exc.context.get("retry_after")
    if isinstance(retry_after, int) and status in (429, 503):
        headers["Retry-After"] = str(retry_after)
    extensions: dict[str, Any] = {
        k: v
        for k, v in exc.context.items()
        if k not in _RESERVED and isinstance(v, str | int) and not isinstance(v, bool)
    }
    param = exc.context.get("param")
    if isinstance(param, str):
        extensions["errors"] = [
            {"loc": ["query", param], "msg": exc.message, "type": "value_error"}
        ]
    return problem(
        status,
        exc.message,
        title=exc.title,
        type_=f"urn:tenpo:problem:{_slug(exc)}",
        instance=request.url.path,
        headers=headers or None,
        **extensions,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e["type"]}
        for e in exc.errors()
    ]
    detail = "; ".join(_describe(e["loc"], e["msg"]) for e in errors) or "invalid request"
    return problem(
        422,
        detail,
        title="Invalid request",
        type_="urn:tenpo:problem:invalid-request",
        instance=request.url.path,
        errors=errors,
    )


def _describe(loc: list[str], msg: str) -> str:
    if len(loc) >= 2 and loc[0] in ("query", "path", "header"):
        return f"{loc[0]} parameter {'.'.join(loc[1:])!r}: {msg}"
    return f"{'.'.join(loc)}: {msg}"


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


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = new_id("err-")
    logger.error(
        "%s %s: datamart error (%s)", request.method, request.url.path, error_id, exc_info=exc
    )
    return problem(
        503,
        f"the datamart could not answer; retry later (error id {error_id})",
        title="Datamart unavailable",
        type_="urn:tenpo:problem:datamart-unavailable",
        instance=request.url.path,
        headers={"Retry-After": "5"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = new_id("err-")
    logger.error("%s %s crashed (%s)", request.method, request.url.path, error_id, exc_info=exc)
    return problem(
        500,
        f"unexpected server error (error id {error_id})",
        title="Internal error",
        type_="urn:tenpo:problem:internal-error",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem JSON."""
    app.add_exception_handler(TenpoError, _tenpo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa.exc.OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
