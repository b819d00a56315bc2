"""``/v1/admin/*``: tenants, stores, devices, registers, API keys and users over HTTP.

Behind an API key holding the ``admin`` scope (dashboard sessions never administer). A key
manages its own tenant only: another tenant's objects answer 404 exactly like unknown ones,
and naming another tenant (``?tenant=``) is 403. Keys of ``settings.operator_tenant`` are the
platform operator's: they create tenants and act on any tenant through ``?tenant=``.

Creates are idempotent: the same body again answers 200 with the stored object (201 the
first time), a body contradicting the stored object answers 409 naming the differing fields.
``POST /v1/admin/import`` registers many stores, devices and register assignments in one
transaction after validating every row (422 lists each bad row). Every rule lives in
:class:`tenpo.control.ControlPlane`; these routes only translate HTTP.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._problems import problem_doc, rows_rejected
from tenpo.api.deps import (
    ADMIN_OBJECT_ERRORS,
    Admin,
    Control,
    Page,
    TenantParam,
    created_status,
)
from tenpo.control import (
    ApiKeyInfo,
    ControlPlane,
    DeviceInfo,
    ImportRejected,
    RegisterInfo,
    StoreInfo,
    TenantInfo,
    UserInfo,
    iter_errors,
)
from tenpo.control.auth import ADMIN_SCOPE
from tenpo.core.errors import BadInput, Forbidden, NotFound

__all__ = ["admin_router"]

admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


_ERRORS = ADMIN_OBJECT_ERRORS


# -- models ----------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Body):
    """A new tenant (operator keys only)."""

    tenant_id: str = Field(description="Lowercase slug, e.g. `acme`.", examples=["acme"])
    name: str = Field(description="Display name.", examples=["Acme Retail"])


class TenantPatch(_Body):
    """Fields of a tenant that can change."""

    name: str


class StoreCreate(_Body):
    """A new store of the tenant; ``code`` identifies it (as in POS masters)."""

    code: str = Field(examples=["S001"])
    name: str = Field(examples=["本町店"])
    timezone: str = Field("Asia/Tokyo", description="IANA timezone.")
    industry: str | None = None
    region: str | None = None
    floor_area_m2: Decimal | None = Field(None, gt=0)
    opening_hours: dict[str, list[str] | None] | None = Field(
        None, description='Per weekday, e.g. {"mon": ["10:00", "21:00"], "sun": null}.'
    )
    store_id: str | None = Field(None, description="Chosen id (default: generated).")


class StorePatch(_Body):
    """Fields of a store that can change (only those sent are changed)."""

    name: str | None = None
    timezone: str | None = None
    industry: str | None = None
    region: str | None = None
    floor_area_m2: Decimal | None = Field(None, gt=0)
    opening_hours: dict[str, list[str] | None] | None = None


class DeviceCreate(_Body):
    """A new device in one of the tenant's stores (by ``store_id`` or ``store_code``)."""

    device_id: str = Field(examples=["pc-s001"])
    kind: str = Field(examples=["people_counter"])
    store_id: str | None = None
    store_code: str | None = None
    lines: list[str] = Field(default_factory=list, examples=[["entrance", "passby"]])
    zones: list[str] = Field(default_factory=list)
    config: dict[str, Any] | None = None


class DevicePatch(_Body):
    """Fields of a device that can change (only those sent are changed)."""

    store_id: str | None = None
    lines: list[str] | None = None
    zones: list[str] | None = None
    config: dict[str, Any] | None = None
    active: bool | None = None


class RegisterCreate(_Body):
    """A POS register assigned to a store from ``valid_from`` to ``valid_to`` (inclusive)."""

    vendor: str = Field(examples=["vendor_a"])
    register_code: str = Field(examples=["0001"])
    store_id: str | None = None
    store_code: str | None = None
    valid_from: date
    valid_to: date | None = None


class RegisterPatch(_Body):
    """End an assignment (``valid_to``), or re-open it with null."""

    valid_to: date | None


class KeyCreate(_Body):
    """A new API key; an unrevoked key of the same name and scopes is returned instead."""

    name: str = Field(examples=["pos"])
    scopes: list[str] = Field(examples=[["pos:write", "read"]])


class KeyPatch(_Body):
    """Revoke a key (revocation is final)."""

    revoked: bool


class ApiKeyCreated(ApiKeyInfo):
    """The key, with its token when it was just created (shown only this once)."""

    token: str | None = Field(description="The bearer token; null when the key existed already.")


class UserCreate(_Body):
    """A dashboard user; a store manager sees only ``store_ids``."""

    email: str
    password: str = Field(min_length=10, max_length=256)
    role: str = Field(examples=["tenant_admin", "store_manager"])
    store_ids: list[str] = Field(default_factory=list)


class UserPatch(_Body):
    """Disable or enable a user, set its password, or replace a manager's stores."""

    disabled: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=256)
    store_ids: list[str] | None = None


class ImportBody(_Body):
    """Stores, devices and register assignments to register in one transaction.

    Rows have the columns of ``tenpo admin import`` CSV files; devices and registers name
    their store by ``store_code`` (a store of this import or an existing one).
    """

    stores: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    devices: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    registers: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)


class ImportResult(BaseModel):
    """Rows created and rows already identical, per kind."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    created: dict[str, int]
    unchanged: dict[str, int]


def _changes(body: BaseModel) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise BadInput("nothing to change: send at least one field")
    return changes


def _store_id(control: ControlPlane, tenant: str, store_id: str | None, code: str | None) -> str:
    if (store_id is None) == (code is None):
        raise BadInput("name the store by exactly one of store_id and store_code")
    if store_id is not None:
        return control.get_store(tenant, store_id).store_id
    assert code is not None
    return control.store_by_code(tenant, code).store_id


# -- tenants ---------------------------------------------------------------------------------


@admin_router.post(
    "/tenants", response_model=TenantInfo, status_code=201, responses=_ERRORS, summary="Tenant"
)
def create_tenant(
    body: TenantCreate, caller: Admin, control: Control, response: Response
) -> TenantInfo:
    """Create a tenant (operator keys only); the same body again answers 200."""
    if not caller.operator:
        raise Forbidden("only the operator's admin keys create tenants", scope=ADMIN_SCOPE)
    tenant, created = control.ensure_tenant(body.tenant_id, body.name)
    created_status(response, created)
    return tenant


@admin_router.get("/tenants", response_model=Page[TenantInfo], responses=_ERRORS)
def list_tenants(caller: Admin, control: Control) -> Page[TenantInfo]:
    """The key's tenant (every tenant for operator keys)."""
    if caller.operator:
        return Page[TenantInfo](items=control.list_tenants())
    return Page[TenantInfo](items=[control.get_tenant(caller.principal.tenant_id)])


@admin_router.get("/tenants/{tenant_id}", response_model=TenantInfo, responses=_ERRORS)
def get_tenant(tenant_id: str, caller: Admin, control: Control) -> TenantInfo:
    """One tenant: the key's own (any for operator keys)."""
    if not caller.operator and tenant_id != caller.principal.tenant_id:
        raise NotFound(f"tenant {tenant_id!r} does not exist")
    return control.get_tenant(tenant_id)


@admin_router.patch("/tenants/{tenant_id}", response_model=TenantInfo, responses=_ERRORS)
def patch_tenant(tenant_id: str, body: TenantPatch, caller: Admin, control: Control) -> TenantInfo:
    """Rename a tenant (the key's own, any for operator keys)."""
    if not caller.operator and tenant_id != caller.principal.tenant_id:
        raise NotFound(f"tenant {tenant_id!r} does not exist")
    return control.update_tenant(tenant_id, name=body.name)


# -- stores ----------------------------------------------------------------------------------


@admin_router.post("/stores", response_model=StoreInfo, status_code=201, responses=_ERRORS)
def create_store(
    body: StoreCreate,
    caller: Admin,
    control: Control,
    response: Response,
    tenant: TenantParam = None,
) -> StoreInfo:
    """Create a store; the same body again answers 200 with the stored store."""
    fields = body.model_dump(exclude={"code", "name"}, exclude_none=True)
    store, created = control.ensure_store(caller.tenant(tenant), body.code, body.name, **fields)
    created_status(response, created)
    return store


@admin_router.get("/stores", response_model=Page[StoreInfo], responses=_ERRORS)
def list_stores(caller: Admin, control: Control, tenant: TenantParam = None) -> Page[StoreInfo]:
    """The tenant's stores, by code."""
    return Page[StoreInfo](items=control.list_stores(caller.tenant(tenant)))


@admin_router.get("/stores/{store_id}", response_model=StoreInfo, responses=_ERRORS)
def get_store(
    store_id: str, caller: Admin, control: Control, tenant: TenantParam = None
) -> StoreInfo:
    """One of the tenant's stores."""
    return control.get_store(caller.tenant(tenant), store_id)


@admin_router.patch("/stores/{store_id}", response_model=StoreInfo, responses=_ERRORS)
def patch_store(
    store_id: str, body: StorePatch, caller: Admin, control: Control, tenant: TenantParam = None
) -> StoreInfo:
    """Change fields of a store (served by the API after the next pipeline run)."""
    return control.update_store(caller.tenant(tenant), store_id, _changes(body))


# -- devices ---------------------------------------------------------------------------------


@admin_router.post("/devices", response_model=DeviceInfo, status_code=201, responses=_ERRORS)
def create_device(
    body: DeviceCreate,
    caller: Admin,
    control: Control,
    response: Response,
    tenant: TenantParam = None,
) -> DeviceInfo:
    """Register a device; the same body again answers 200 with the stored device."""
    tenant_id = caller.tenant(tenant)
    store_id = _store_id(control, tenant_id, body.store_id, body.store_code)
    device, created = control.ensure_device(
        tenant_id,
        body.device_id,
        store_id,
        body.kind,
        lines=body.lines,
        zones=body.zones,
        config=body.config,
    )
    created_status(response, created)
    return device


@admin_router.get("/devices", response_model=Page[DeviceInfo], responses=_ERRORS)
def list_devices(caller: Admin, control: Control, tenant: TenantParam = None) -> Page[DeviceInfo]:
    """The tenant's devices, by id."""
    return Page[DeviceInfo](items=control.list_devices(caller.tenant(tenant)))


@admin_router.get("/devices/{device_id}", response_model=DeviceInfo, responses=_ERRORS)
def get_device(
    device_id: str, caller: Admin, control: Control, tenant: TenantParam = None
) -> DeviceInfo:
    """One of the tenant's devices."""
    return control.get_device(caller.tenant(tenant), device_id)


@admin_router.patch("/devices/{device_id}", response_model=DeviceInfo, responses=_ERRORS)
def patch_device(
    device_id: str, body: DevicePatch, caller: Admin, control: Control, tenant: TenantParam = None
) -> DeviceInfo:
    """Move, reconfigure, deactivate or reactivate a device."""
    return control.update_device(caller.tenant(tenant), device_id, _changes(body))


# -- registers -------------------------------------------------------------------------------


@admin_router.post("/registers", response_model=RegisterInfo, status_code=201, responses=_ERRORS)
def create_register(
    body: RegisterCreate,
    caller: Admin,
    control: Control,
    response: Response,
    tenant: TenantParam = None,
) -> RegisterInfo:
    """Assign a POS register to a store; the same body again answers 200, 409 when it
    overlaps another assignment."""
    tenant_id = caller.tenant(tenant)
    store_id = _store_id(control, tenant_id, body.store_id, body.store_code)
    register, created = control.ensure_register(
        tenant_id, body.vendor, body.register_code, store_id, body.valid_from, body.valid_to
    )
    created_status(response, created)
    return register


@admin_router.get("/registers", response_model=Page[RegisterInfo], responses=_ERRORS)
def list_registers(
    caller: Admin, control: Control, tenant: TenantParam = None, vendor: str | None = None
) -> Page[RegisterInfo]:
    """The tenant's register assignments (of one vendor when given)."""
    return Page[RegisterInfo](items=control.list_registers(caller.tenant(tenant), vendor))


@admin_router.get("/registers/{register_id}", response_model=RegisterInfo, responses=_ERRORS)
def get_register(
    register_id: int, caller: Admin, control: Control, tenant: TenantParam = None
) -> RegisterInfo:
    """One register assignment."""
    return control.get_register(caller.tenant(tenant), register_id)


@admin_router.patch("/registers/{register_id}", response_model=RegisterInfo, responses=_ERRORS)
def patch_register(
    register_id: int,
    body: RegisterPatch,
    caller: Admin,
    control: Control,
    tenant: TenantParam = None,
) -> RegisterInfo:
    """End an assignment (e.g. the register moved to another store)."""
    return control.update_register(caller.tenant(tenant), register_id, valid_to=body.valid_to)


# -- API keys --------------------------------------------------------------------------------


@admin_router.post("/keys", response_model=ApiKeyCreated, status_code=201, responses=_ERRORS)
def create_key(
    body: KeyCreate, caller: Admin, control: Control, response: Response, tenant: TenantParam = None
) -> ApiKeyCreated:
    """Create an API key; its token is in this answer only (201). Same body again: 200, no token."""
    key, token, created = control.ensure_api_key(caller.tenant(tenant), body.name, body.scopes)
    created_status(response, created)
    return ApiKeyCreated(**key.model_dump(), token=token)


@admin_router.get("/keys", response_model=Page[ApiKeyInfo], responses=_ERRORS)
def list_keys(caller: Admin, control: Control, tenant: TenantParam = None) -> Page[ApiKeyInfo]:
    """The tenant's API keys, revoked ones included, never their secrets."""
    return Page[ApiKeyInfo](items=control.list_api_keys(caller.tenant(tenant)))


@admin_router.get("/keys/{key_id}", response_model=ApiKeyInfo, responses=_ERRORS)
def get_key(key_id: str, caller: Admin, control: Control, tenant: TenantParam = None) -> ApiKeyInfo:
    """One API key."""
    return control.get_api_key(caller.tenant(tenant), key_id)


@admin_router.patch("/keys/{key_id}", response_model=ApiKeyInfo, responses=_ERRORS)
def patch_key(
    key_id: str, body: KeyPatch, caller: Admin, control: Control, tenant: TenantParam = None
) -> ApiKeyInfo:
    """Revoke a key (refused in at most the auth cache's TTL everywhere)."""
    tenant_id = caller.tenant(tenant)
    if not body.revoked:
        current = control.get_api_key(tenant_id, key_id)
        if current.revoked_at is not None:
            raise BadInput("a revoked key cannot be restored; create a new one")
        return current
    return control.revoke_api_key(tenant_id, key_id)


# -- users -----------------------------------------------------------------------------------


@admin_router.post("/users", response_model=UserInfo, status_code=201, responses=_ERRORS)
def create_user(
    body: UserCreate,
    caller: Admin,
    control: Control,
    response: Response,
    tenant: TenantParam = None,
) -> UserInfo:
    """Create a dashboard user; the same body again answers 200."""
    user, created = control.ensure_user(
        caller.tenant(tenant), body.email, body.password, body.role, body.store_ids
    )
    created_status(response, created)
    return user


@admin_router.get("/users", response_model=Page[UserInfo], responses=_ERRORS)
def list_users(caller: Admin, control: Control, tenant: TenantParam = None) -> Page[UserInfo]:
    """The tenant's dashboard users, by email."""
    return Page[UserInfo](items=control.list_users(caller.tenant(tenant)))


@admin_router.get("/users/{user_id}", response_model=UserInfo, responses=_ERRORS)
def get_user(user_id: str, caller: Admin, control: Control, tenant: TenantParam = None) -> UserInfo:
    """One dashboard user of the tenant."""
    tenant_id = caller.tenant(tenant)
    try:
        user = control.get_user(user_id)
    except NotFound:
        user = None
    if user is None or user.tenant_id != tenant_id:
        raise NotFound(f"tenant {tenant_id!r} has no user {user_id!r}")
    return user


@admin_router.patch("/users/{user_id}", response_model=UserInfo, responses=_ERRORS)
def patch_user(
    user_id: str, body: UserPatch, caller: Admin, control: Control, tenant: TenantParam = None
) -> UserInfo:
    """Disable or enable a user, set its password, or replace a manager's stores."""
    return control.update_user(caller.tenant(tenant), user_id, _changes(body))


# -- bulk ------------------------------------------------------------------------------------


@admin_router.post(
    "/import",
    response_model=ImportResult,
    responses={
        **_ERRORS,
        422: problem_doc("Invalid rows (listed under `errors`); nothing applied."),
    },
)
def bulk_import(
    request: Request,
    body: ImportBody,
    caller: Admin,
    control: Control,
    tenant: TenantParam = None,
) -> ImportResult | JSONResponse:
    """Register stores, devices and registers in one transaction (all rows or none).

    Each error names its list and row (1-based position) and, as ``pointer``, the JSON
    pointer of the row in the body.
    """
    tenant_id = caller.tenant(tenant)
    try:
        report = control.import_registry(
            tenant_id,
            stores=list(enumerate(body.stores, start=1)),
            devices=list(enumerate(body.devices, start=1)),
            registers=list(enumerate(body.registers, start=1)),
        )
    except ImportRejected as exc:
        errors = [e | {"pointer": f"/{e['kind']}/{e['row'] - 1}"} for e in iter_errors(exc.errors)]
        return rows_rejected(request, exc, errors)
    return ImportResult(tenant_id=tenant_id, created=report.created, unchanged=report.unchanged)
