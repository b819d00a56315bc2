"""RFC 9457 problem details: every 4xx/5xx of the read API is ``application/problem+json``.

The shape matches the gateway's: ``type`` is ``urn:tenpo:problem:<slug>`` for tenpo's own
errors and ``about:blank`` for plain HTTP statuses (``title`` is then the status phrase);
request validation failures list each bad parameter under ``errors``. Server-side failures
never reveal internals: the answer carries an error id that is logged with the traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenpo.api.models import Problem
from tenpo.control import ImportRejected, iter_errors
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

logger = logging.getLogger(__name__)

__all__ = [
    "BEARER_CHALLENGE",
    "PROBLEM_JSON",
    "install_problem_handlers",
    "problem",
    "problem_doc",
    "rows_rejected",
    "tenpo_error",
]

MAX_ROW_ERRORS = 100
"""Row errors listed in a 422 of a rejected upload (the count is in the detail)."""


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry: a problem+json answer meaning ``description``."""
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}


def rows_rejected(
    request: Request, exc: ImportRejected, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """The 422 problem of an upload whose rows were refused, each bad row under ``errors``
    (default: the first :data:`MAX_ROW_ERRORS` of ``exc``)."""
    return problem(
        422,
        exc.message,
        title=exc.title,
        type_=problem_type(exc),
        instance=request.url.path,
        errors=errors if errors is not None else list(iter_errors(exc.errors))[:MAX_ROW_ERRORS],
    )


_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors"})


async def tenpo_error(request: Request, exc: Exception) -> JSONResponse:
    """The problem answer of a :class:`TenpoError` (also the KPI fast path's 404)."""
    assert isinstance(exc, TenpoError)
    status = exc.http_status
    headers = auth_headers(request, exc)
    if status >= 500:
        error_id = new_id("err-")
        logger.error(
            "%s %s failed (%s): %s", request.method, request.url.path, error_id, exc, exc_info=exc
        )
        return problem(
            status,
            f"{exc.title}; retry later (error id {error_id})",
            title=exc.title,
            type_=problem_type(exc),
            instance=request.url.path,
            headers=headers | {"Retry-After": "5"},
        )
    # DEBUG: a flood of refusals must not become a flood of log lines (issue 11).
    logger.debug("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    retry_after = exc.context.get("retry_after")
    if isinstance(retry_after, int) and status in (429, 503):
        headers["Retry-After"] = str(retry_after)
    extensions = context_extensions(exc, _RESERVED)
    param = exc.context.get("param")
    if isinstance(param, str):
        extensions["errors"] = [
            {"loc": ["query", param], "msg": exc.message, "type": "value_error"}
        ]
    return problem(
        status,
        exc.message,
        title=exc.title,
        type_=problem_type(exc),
        instance=request.url.path,
        headers=headers or None,
        **extensions,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
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
    refused = lone_surrogate_problem(request, exc)
    if refused is not None:
        return refused
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
    app.add_exception_handler(TenpoError, tenpo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa.exc.OperationalError, _database_error)
    for kind in input_error_types():  # a request's unstorable text: a 422, not a crash
        app.add_exception_handler(kind, _unexpected_error)
    app.add_exception_handler(Exception, _unexpected_error)
