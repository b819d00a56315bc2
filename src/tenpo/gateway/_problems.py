"""RFC 9457 problem details: every 4xx/5xx of the gateway is ``application/problem+json``.

``type`` is ``urn:tenpo:problem:<slug>`` for tenpo's own errors and ``about:blank`` for plain
HTTP statuses (unknown route, wrong method), where ``title`` is the status phrase.
Server-side failures never reveal internals: the answer carries an error id that is logged
with the traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenpo.core.errors import TenpoError
from tenpo.core.ids import new_id
from tenpo.problems import (
    BEARER_CHALLENGE,
    PROBLEM_JSON,
    auth_headers,
    context_extensions,
    http_error,
    input_error_types,
    lone_surrogate_problem,
    problem,
    problem_type,
    validation_errors,
)

log = logging.getLogger(__name__)

__all__ = ["BEARER_CHALLENGE", "PROBLEM_JSON", "install_problem_handlers", "problem", "tenpo_error"]

_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "headers", "type_"})


async def tenpo_error(request: Request, exc: Exception) -> JSONResponse:
    """The problem answer to a :class:`TenpoError` (the app's handler; the POST fast path's)."""
    assert isinstance(exc, TenpoError)
    status = exc.http_status
    headers = auth_headers(request, exc)
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
    extensions = context_extensions(exc, _RESERVED)
    return problem(
        status,
        detail,
        title=exc.title,
        type_=problem_type(exc),
        instance=request.url.path,
        headers=headers or None,
        **(extensions if status < 500 else {}),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return problem(
        422,
        detail,
        title="Invalid request",
        type_="urn:tenpo:problem:invalid-request",
        instance=request.url.path,
        errors=errors,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    refused = lone_surrogate_problem(request, exc)
    if refused is not None:
        return refused
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
    app.add_exception_handler(TenpoError, tenpo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for kind in input_error_types():  # a request's unstorable text: a 422, not a crash
        app.add_exception_handler(kind, _unexpected_error)
    app.add_exception_handler(Exception, _unexpected_error)
