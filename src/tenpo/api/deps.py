"""What a read-API route may ask for, as typed dependencies (full-stack-fastapi-template's
``api/deps.py``): routes declare ``engine: Datamart`` or ``caller: Reader`` and never read
``app.state``.

- ``Datamart``: the datamart engine; ``Control``: the control plane (404 problem when the app
  was built over an object that only authenticates); ``LakeDep``: the lake, opened once;
  ``SettingsDep``: the app's settings; ``State``: the whole :class:`ApiState`.
- ``Reader``: the caller holding ``read`` (an API key or a dashboard session), whose
  ``tenant_id`` and ``store_ids`` every read model filters by; ``Admin``: a key holding
  ``admin``, acting on its own tenant (or, operator keys, on ``?tenant=``).

The connection dependencies are ``async``: each is an attribute read, which must not cost a
thread-pool hop.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from tenpo.api._auth import AdminCaller, admin_caller, reader
from tenpo.api._problems import problem_doc
from tenpo.api._state import ApiState, api_state
from tenpo.control import ControlPlane, Principal
from tenpo.core.errors import BadInput, NotFound
from tenpo.core.settings import Settings
from tenpo.lake import Lake

__all__ = [
    "ADMIN_ERRORS",
    "ADMIN_TENANT_ERRORS",
    "READER_ERRORS",
    "Admin",
    "AdminCaller",
    "ApiState",
    "Control",
    "Datamart",
    "LakeDep",
    "Reader",
    "SettingsDep",
    "State",
    "TenantParam",
    "api_state",
]


async def get_state(request: Request) -> ApiState:
    """The app's :class:`ApiState`."""
    return api_state(request.app)


async def get_datamart(request: Request) -> Engine:
    """The datamart engine the app serves from."""
    return api_state(request.app).datamart


async def get_control(request: Request) -> ControlPlane:
    """The control plane; NotFound when the app only has an authenticator (tests)."""
    control = api_state(request.app).control
    if not isinstance(control, ControlPlane):  # a test double that only authenticates
        raise NotFound("this API has no control plane to administer")
    return control


def get_lake(request: Request) -> Lake:
    """The lake (sync: its first use opens it, which may touch the disk or network)."""
    return api_state(request.app).lake


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return api_state(request.app).settings


State = Annotated[ApiState, Depends(get_state)]
Datamart = Annotated[Engine, Depends(get_datamart)]
Control = Annotated[ControlPlane, Depends(get_control)]
LakeDep = Annotated[Lake, Depends(get_lake)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[AdminCaller, Depends(admin_caller)]

READER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Missing, malformed, unknown or revoked API key, or no valid session."),
    403: problem_doc("The API key lacks the `read` scope."),
    429: problem_doc("Rate limit of the key or user exceeded; see `Retry-After`."),
}
"""OpenAPI ``responses`` of a route taking ``Reader``: what refusing the caller answers."""
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Missing or invalid API key."),
    403: problem_doc("The key lacks the `admin` scope."),
    429: problem_doc("Too many requests for this key."),
}
"""OpenAPI ``responses`` of a route taking ``Admin``."""

TenantParam = Annotated[
    str | None,
    Query(alias="tenant", description="Tenant to act on (default: the key's; operator keys only)."),
]
"""``?tenant=`` of an admin route, for ``Admin.tenant(tenant)``."""
ADMIN_TENANT_ERRORS = ADMIN_ERRORS | {
    403: problem_doc("The key lacks the `admin` scope, or names another tenant.")
}
"""OpenAPI ``responses`` of a route taking ``Admin`` and ``TenantParam``."""
ADMIN_OBJECT_ERRORS = ADMIN_TENANT_ERRORS | {
    404: problem_doc("No such object in the caller's tenant."),
    409: problem_doc("An object with this identity exists with different values."),
    422: problem_doc("Invalid body or parameters."),
}
"""OpenAPI ``responses`` of an admin route on one object kind (create, list, get, change)."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """Every object of a kind in the tenant."""

    model_config = ConfigDict(extra="forbid")

    items: list[T]


# Business dates of years 1900..2999: further out is a typo, and date arithmetic (the sales
# tree's previous period) must not overflow. The pattern says the same in OpenAPI.
DATE_PATTERN = r"^(19|2\d)\d{2}-\d{2}-\d{2}$"
_ISO_DATE = re.compile(DATE_PATTERN)

FromDate = Annotated[
    str,
    Query(
        alias="from",
        description="First business date, YYYY-MM-DD (years 1900–2999).",
        # documented, checked by parse_date (its message names the expected form)
        json_schema_extra={"format": "date", "pattern": DATE_PATTERN},
        examples=["2026-10-05"],
    ),
]
"""``?from=`` of a date range, for :func:`parse_date`."""
ToDate = Annotated[
    str,
    Query(
        description="Last business date (inclusive), YYYY-MM-DD (years 1900–2999), not "
        "before `from` and at most `api_max_kpi_days` (default 366) days from it.",
        # documented, checked by parse_date (its message names the expected form)
        json_schema_extra={"format": "date", "pattern": DATE_PATTERN},
        examples=["2026-10-18"],
    ),
]
"""``?to=`` of a date range, for :func:`parse_date`."""


def parse_date(param: str, value: str) -> date:
    """The business date of query parameter ``param``; :class:`BadInput` (422) naming the
    expected form (YYYY-MM-DD of years 1900–2999) otherwise."""
    try:
        if not _ISO_DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"query parameter {param!r} must be a date as YYYY-MM-DD of years 1900–2999, "
            f"got {value!r}",
            param=param,
        ) from None


def created_status(response: Response, created: bool) -> None:
    """The status of an idempotent create (``ensure_*``): 201 when it created the object, 200
    when the same body found it already there (the stored object is the answer either way)."""
    response.status_code = 201 if created else 200
