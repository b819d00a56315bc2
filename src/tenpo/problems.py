"""RFC 9457 problem details shared by tenpo's HTTP adapters (gateway and read API).

Only the adapters import this module (it needs FastAPI); domain code raises
:mod:`tenpo.core.errors` and never builds responses. ``type`` is ``urn:tenpo:problem:<slug>``
for tenpo's own errors and ``about:blank`` for plain HTTP statuses (``title`` is then the
status phrase).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenpo.core.errors import AuthError, Forbidden, TenpoError

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="tenpo"'


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


def problem_type(exc: TenpoError) -> str:
    """``urn:tenpo:problem:<slug>`` of an error class (``NotFound`` → ``not-found``)."""
    slug = re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()
    return f"urn:tenpo:problem:{slug}"


def auth_headers(request: Request, exc: TenpoError) -> dict[str, str]:
    """``WWW-Authenticate`` for 401s (RFC 6750: no error code when no credentials were sent)."""
    if isinstance(exc, AuthError) and not isinstance(exc, Forbidden):
        return {
            "WWW-Authenticate": (
                f'{BEARER_CHALLENGE}, error="invalid_token"'
                if "authorization" in request.headers
                else BEARER_CHALLENGE
            )
        }
    return {}


def context_extensions(exc: TenpoError, reserved: frozenset[str]) -> dict[str, Any]:
    """The error's scalar context (``scope``, ``device_id``...) as problem extension members."""
    return {
        k: v
        for k, v in exc.context.items()
        if k not in reserved and isinstance(v, str | int) and not isinstance(v, bool)
    }


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's validation errors as ``{"loc", "msg", "type"}`` items."""
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e["type"]}
        for e in exc.errors()
    ]


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Plain HTTP errors (unknown route, wrong method) as ``about:blank`` problems."""
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


def lone_surrogate_problem(request: Request, exc: BaseException) -> JSONResponse | None:
    """The 422 of a request whose text holds a lone surrogate (or a NUL that PostgreSQL
    refuses), when that is why ``exc`` (or an error it was raised from) happened; else None.

    JSON may escape one (``"\\ud800"``) and ``json.loads`` reads it, but it is no Unicode
    text: a database, a file or a table refuses it with ``UnicodeEncodeError``. Only a
    request brings such a character in, so it is the caller's error, not the server's.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnicodeEncodeError) and isinstance(seen.object, str):
            bad = seen.object[seen.start : seen.end]
            if bad and all("\ud800" <= ch <= "\udfff" for ch in bad):
                return problem(
                    422,
                    f"the request holds a lone surrogate (U+{ord(bad[0]):04X}, the JSON escape"
                    f" \\u{ord(bad[0]):04x}): not Unicode text; send the text as UTF-8",
                    title="Invalid input",
                    type_="urn:tenpo:problem:bad-input",
                    instance=request.url.path,
                )
        if _nul_refused(seen):
            return problem(
                422,
                "the request holds a NUL character (U+0000, the JSON escape \\u0000 or %00),"
                " which PostgreSQL text cannot store",
                title="Invalid input",
                type_="urn:tenpo:problem:bad-input",
                instance=request.url.path,
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _nul_refused(exc: BaseException) -> bool:
    """True when ``exc`` is PostgreSQL's driver refusing a NUL in a text parameter: psycopg's
    ``DataError`` ("cannot contain NUL (0x00) bytes"), asyncpg's SQLSTATE 22021 (no stored
    text holds one: the parameter came with the request)."""
    kind = type(exc).__name__
    text = str(exc)
    if kind == "DataError" and "NUL (0x00)" in text:
        return True
    return getattr(exc, "sqlstate", None) == "22021" and "0x00" in text


def input_error_types() -> tuple[type[Exception], ...]:
    """The exception types :func:`lone_surrogate_problem` may recognise, for an app's own
    handler entries (a handler of ``Exception`` answers, then Starlette re-raises to the
    server, which drops the connection): encoding errors and the SQL drivers' data errors."""
    import sqlalchemy as sa

    found: list[type[Exception]] = [UnicodeEncodeError, sa.exc.DataError]
    try:
        import psycopg

        found.append(psycopg.DataError)
    except ImportError:  # pragma: no cover - the PostgreSQL extra is not installed
        pass
    try:
        import asyncpg

        found.append(asyncpg.exceptions.DataError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)
