"""The read API's OpenAPI document says what the API sends.

FastAPI documents request validation failures as ``application/json`` ``HTTPValidationError``
and lists every ``responses`` model under ``application/json`` too; the API answers every
4xx/5xx as ``application/problem+json`` (``_problems``). :func:`install_openapi` rewrites
the generated document once: every error response is problem JSON only, and every
authenticated operation (each passes the per-caller rate limit) documents its 429, and
every operation the 503 of an unreachable database.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tenpo.problems import PROBLEM_JSON

__all__ = ["install_openapi"]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DEFAULT_ERRORS = ("HTTPValidationError", "ValidationError")
_TOO_MANY = "Rate limit of the key or user exceeded; see `Retry-After`."
_UNAVAILABLE = "A database did not answer; retry after `Retry-After` seconds."


def _rewrite(spec: dict[str, Any]) -> dict[str, Any]:
    for operations in spec.get("paths", {}).values():
        for op in operations.values():
            responses: dict[str, Any] = op.setdefault("responses", {})
            if op.get("security") and "429" not in responses:
                responses["429"] = {"description": _TOO_MANY}
            responses.setdefault("503", {"description": _UNAVAILABLE})
            for status, response in responses.items():
                if status[0] in "45":
                    if status == "422" and response.get("description") == "Validation Error":
                        response["description"] = "Invalid parameter or body (see `errors`)."
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    schemas = spec.get("components", {}).get("schemas", {})
    text = repr(spec["paths"])
    for name in _DEFAULT_ERRORS:
        if name in schemas and f"#/components/schemas/{name}" not in text:
            del schemas[name]
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with problem-JSON errors and 429s (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _rewrite(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
