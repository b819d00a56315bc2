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

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy.engine import Engine

from tenpo.api._auth import AdminCaller, admin_caller, reader
from tenpo.api._problems import problem_doc
from tenpo.api._state import ApiState, api_state
from tenpo.control import ControlPlane, Principal
from tenpo.core.errors import NotFound
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
