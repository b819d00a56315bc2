"""Operator methods of ``ControlPlane``: idempotent creates, updates, bulk import.

``ensure_*`` create a row or, when an identical one exists, return it unchanged (``created``
False); an existing row that differs is a :class:`Conflict` naming the differing fields. So a
retried request or a re-run import is harmless, and a contradicting one never overwrites.
``update_*`` change the fields given, validated like a create. :meth:`import_registry`
validates every row of a bulk registration first and applies all of them in one transaction.

Every value is checked by the same functions as the single creates (``_validate``, the row
builders of ``plane``); nothing here has rules of its own beyond "identical or conflict".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control import _validate
from tenpo.control import users as _users
from tenpo.control.models import ApiKey, Device, PosRegister, Store, Tenant, User, UserStore
from tenpo.control.records import (
    ApiKeyInfo,
    DeviceInfo,
    RegisterInfo,
    StoreInfo,
    TenantInfo,
    UserInfo,
)
from tenpo.core.errors import BadInput, Conflict, NotFound, TenpoError
from tenpo.core.ids import utcnow

logger = logging.getLogger(__name__)

_STORE_FIELDS = ("name", "timezone", "industry", "region", "floor_area_m2", "opening_hours")
_DEVICE_FIELDS = ("store_id", "kind", "lines", "zones", "config")


@dataclass(frozen=True)
class RowError:
    """One rejected row of a bulk import: which list, its row number, why."""

    kind: str
    row: int
    message: str


class ImportRejected(BadInput):
    """A bulk import had invalid or conflicting rows; nothing was applied (see ``errors``)."""

    title = "Import rejected"

    def __init__(self, errors: Sequence[RowError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"{len(errors)} invalid row(s), nothing imported: "
            f"{first.kind} row {first.row}: {first.message}{more}"
        )
        self.errors = list(errors)


@dataclass
class ImportReport:
    """What a bulk import did: rows created and rows already identical, per kind."""

    created: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)


def _differences(row: Any, wanted: Mapping[str, Any]) -> list[str]:
    return [name for name, value in wanted.items() if getattr(row, name) != value]


def _conflict(what: str, fields: list[str]) -> Conflict:
    return Conflict(f"{what} already exists with a different {', '.join(fields)}")


class AdminMethods:
    """Mixed into ``ControlPlane``; relies on its sessions and helpers (see ``plane``)."""

    _sessions: sessionmaker[Session]
    _write: Callable[[str], AbstractContextManager[Session]]
    _require_tenant: Callable[[Session, str], None]
    _store: Callable[[Session, str, str], Store]
    _auth_cache: Any

    # -- tenants -------------------------------------------------------------------------

    def ensure_tenant(self, tenant_id: str, name: str) -> tuple[TenantInfo, bool]:
        """Create the tenant, or return it when it exists with this name (else Conflict)."""
        from tenpo.control.plane import tenant_info

        _validate.tenant_id(tenant_id)
        wanted = _validate.text(name, "tenant name")
        with self._write(f"tenant {tenant_id!r} already exists") as session:
            row = session.get(Tenant, tenant_id)
            if row is not None:
                if row.name != wanted:
                    raise _conflict(f"tenant {tenant_id!r}", ["name"])
                return tenant_info(row), False
            row = Tenant(id=tenant_id, name=wanted, created_at=utcnow())
            session.add(row)
        logger.info("tenant %s created", tenant_id)
        return tenant_info(row), True

    def get_tenant(self, tenant_id: str) -> TenantInfo:
        """The tenant; :class:`NotFound` otherwise."""
        from tenpo.control.plane import tenant_info

        with self._sessions() as session:
            row = session.get(Tenant, tenant_id)
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} does not exist")
        return tenant_info(row)

    def update_tenant(self, tenant_id: str, *, name: str) -> TenantInfo:
        """Rename the tenant."""
        from tenpo.control.plane import tenant_info

        wanted = _validate.text(name, "tenant name")
        with self._write("tenant update raced") as session:
            row = session.get(Tenant, tenant_id)
            if row is None:
                raise NotFound(f"tenant {tenant_id!r} does not exist")
            row.name = wanted
        return tenant_info(row)

    # -- stores --------------------------------------------------------------------------

    def ensure_store(
        self, tenant_id: str, code: str, name: str, **fields: Any
    ) -> tuple[StoreInfo, bool]:
        """Create the store (fields as ``create_store``), or return the identical one by code."""
        from tenpo.control.plane import store_info, store_row

        row = store_row(tenant_id, code, name, **fields)
        with self._write(f"store code {row.code!r} already exists") as session:
            self._require_tenant(session, tenant_id)
            existing = session.scalar(
                sa.select(Store).where(Store.tenant_id == tenant_id, Store.code == row.code)
            )
            if existing is not None:
                wanted = {f: getattr(row, f) for f in _STORE_FIELDS}
                if fields.get("store_id"):
                    wanted["id"] = row.id
                if diff := _differences(existing, wanted):
                    raise _conflict(f"store {row.code!r}", diff)
                return store_info(existing), False
            if session.get(Store, row.id) is not None:
                raise Conflict(f"store id {row.id!r} already exists")
            session.add(row)
        logger.info("store %s (%s) created for %s", row.id, row.code, tenant_id)
        return store_info(row), True

    def update_store(self, tenant_id: str, store_id: str, changes: Mapping[str, Any]) -> StoreInfo:
        """Change the store's ``name``, ``timezone``, ``industry``, ``region``, area or hours."""
        from tenpo.control.plane import store_info

        values = _store_changes(changes)
        with self._write("store update raced") as session:
            row = self._store(session, tenant_id, store_id)
            for name, value in values.items():
                setattr(row, name, value)
        logger.info("store %s of %s updated: %s", store_id, tenant_id, sorted(values))
        return store_info(row)

    # -- devices -------------------------------------------------------------------------

    def ensure_device(
        self, tenant_id: str, device_id: str, store_id: str, kind: str, **fields: Any
    ) -> tuple[DeviceInfo, bool]:
        """Create the device (fields as ``create_device``), or return the identical one."""
        from tenpo.control.plane import device_info, device_row

        row = device_row(tenant_id, device_id, store_id, kind, **fields)
        with self._write(f"device {device_id!r} already exists") as session:
            self._store(session, tenant_id, store_id)
            existing = session.get(Device, (tenant_id, row.device_id))
            if existing is not None:
                if diff := _differences(existing, {f: getattr(row, f) for f in _DEVICE_FIELDS}):
                    raise _conflict(f"device {device_id!r}", diff)
                return device_info(existing), False
            session.add(row)
        logger.info("device %s (%s) created in %s/%s", device_id, kind, tenant_id, store_id)
        return device_info(row), True

    def get_device(self, tenant_id: str, device_id: str) -> DeviceInfo:
        """The tenant's device; :class:`NotFound` also for another tenant's."""
        from tenpo.control.plane import device_info

        with self._sessions() as session:
            row = session.get(Device, (tenant_id, device_id))
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} has no device {device_id!r}")
        return device_info(row)

    def update_device(
        self, tenant_id: str, device_id: str, changes: Mapping[str, Any]
    ) -> DeviceInfo:
        """Move the device (``store_id``), change its lines, zones, config, or (de)activate it."""
        from tenpo.control.plane import device_info

        unknown = sorted(set(changes) - {"store_id", "lines", "zones", "config", "active"})
        if unknown:
            raise BadInput(f"cannot change device field(s) {unknown}")
        with self._write("device update raced") as session:
            row = session.get(Device, (tenant_id, device_id))
            if row is None:
                raise NotFound(f"tenant {tenant_id!r} has no device {device_id!r}")
            if "store_id" in changes:
                row.store_id = self._store(session, tenant_id, str(changes["store_id"])).id
            if "lines" in changes:
                row.lines = _validate.names(changes["lines"], "line")
            if "zones" in changes:
                row.zones = _validate.names(changes["zones"], "zone")
            if "config" in changes:
                row.config = _validate.json_object(changes["config"], "device config")
            if "active" in changes:
                if not isinstance(changes["active"], bool):
                    raise BadInput("active must be true or false")
                row.active = changes["active"]
        logger.info("device %s of %s updated: %s", device_id, tenant_id, sorted(changes))
        return device_info(row)

    # -- registers -----------------------------------------------------------------------

    def ensure_register(
        self,
        tenant_id: str,
        vendor: str,
        register_code: str,
        store_id: str,
        valid_from: date,
        valid_to: date | None = None,
    ) -> tuple[RegisterInfo, bool]:
        """Create the assignment, or return the identical one (same register, store, dates)."""
        from tenpo.control.plane import register_info

        code = _validate.text(register_code, "register code", max_len=64)
        with self._sessions() as session:
            existing = session.scalar(
                sa.select(PosRegister).where(
                    PosRegister.tenant_id == tenant_id,
                    PosRegister.vendor == vendor,
                    PosRegister.register_code == code,
                    PosRegister.valid_from == valid_from,
                )
            )
        if existing is not None:
            diff = _differences(existing, {"store_id": store_id, "valid_to": valid_to})
            if diff:
                raise _conflict(f"register {vendor}/{code} from {valid_from}", diff)
            return register_info(existing), False
        create = getattr(self, "create_register")  # noqa: B009 - defined by ControlPlane
        info: RegisterInfo = create(tenant_id, vendor, code, store_id, valid_from, valid_to)
        return info, True

    def get_register(self, tenant_id: str, register_id: int) -> RegisterInfo:
        """The tenant's register assignment ``register_id``."""
        from tenpo.control.plane import register_info

        with self._sessions() as session:
            row = session.get(PosRegister, register_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id!r} has no register assignment {register_id}")
        return register_info(row)

    def update_register(
        self, tenant_id: str, register_id: int, *, valid_to: date | None
    ) -> RegisterInfo:
        """End (or re-open, with None) an assignment; refuses an overlap with the next one."""
        from tenpo.control.plane import register_info
        from tenpo.control.sql_directory import check_no_overlap

        with self._write("register update raced") as session:
            row = session.get(PosRegister, register_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no register assignment {register_id}")
            if valid_to is not None and valid_to < row.valid_from:
                raise BadInput(f"valid_to {valid_to} is before valid_from {row.valid_from}")
            others = session.execute(
                sa.select(PosRegister.valid_from, PosRegister.valid_to).where(
                    PosRegister.tenant_id == tenant_id,
                    PosRegister.vendor == row.vendor,
                    PosRegister.register_code == row.register_code,
                    PosRegister.id != row.id,
                )
            ).all()
            try:
                check_no_overlap(
                    row.register_code, [*((f, t) for f, t in others), (row.valid_from, valid_to)]
                )
            except BadInput as exc:
                raise Conflict(f"{exc} with an existing assignment") from None
            row.valid_to = valid_to
        return register_info(row)

    # -- API keys ------------------------------------------------------------------------

    def ensure_api_key(
        self, tenant_id: str, name: str, scopes: Iterable[str]
    ) -> tuple[ApiKeyInfo, str | None, bool]:
        """A new key and its token, or the tenant's active key of that name and scopes (no token).

        Keys are identified by name among the tenant's unrevoked keys, so a retried create
        does not mint a second key; its token was shown once, when it was created.
        """
        from tenpo.control.auth import normalize_scopes
        from tenpo.control.plane import key_info

        wanted_name = _validate.text(name, "API key name")
        wanted_scopes = list(normalize_scopes(list(scopes)))
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            existing = session.scalars(
                sa.select(ApiKey).where(
                    ApiKey.tenant_id == tenant_id,
                    ApiKey.name == wanted_name,
                    ApiKey.revoked_at.is_(None),
                )
            ).first()
        if existing is not None:
            if sorted(existing.scopes) != wanted_scopes:
                raise _conflict(f"API key {wanted_name!r}", ["scopes"])
            return key_info(existing), None, False
        create = getattr(self, "create_api_key")  # noqa: B009 - defined by ControlPlane
        info, token = create(tenant_id, wanted_name, wanted_scopes)
        return info, token, True

    def get_api_key(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        """The tenant's key (without secret); :class:`NotFound` also for another tenant's."""
        from tenpo.control.plane import key_info

        with self._sessions() as session:
            row = session.get(ApiKey, key_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id!r} has no API key {key_id!r}")
        return key_info(row)

    # -- users ---------------------------------------------------------------------------

    def ensure_user(
        self, tenant_id: str, email: str, password: str, role: str, store_ids: Iterable[str] = ()
    ) -> tuple[UserInfo, bool]:
        """Create the user, or return it when it exists identically (same password too)."""
        from tenpo.control.plane import user_info

        address = _users.normalize_email(email)
        stores = sorted(dict.fromkeys(store_ids))
        with self._sessions() as session:
            row = session.scalar(sa.select(User).where(User.email == address))
            if row is not None:
                have = sorted(
                    session.scalars(
                        sa.select(UserStore.store_id).where(UserStore.user_id == row.id)
                    )
                )
        if row is None:
            create = getattr(self, "create_user")  # noqa: B009 - defined by ControlPlane
            info: UserInfo = create(tenant_id, address, password, role, stores)
            return info, True
        # The same answer whatever tenant holds the address: it never reveals which.
        if row.tenant_id != tenant_id:
            raise Conflict(f"a user with email {address!r} already exists")
        diff = _differences(row, {"role": role})
        if have != stores:
            diff.append("store_ids")
        if not _users.hasher().verify(str(password), row.password_hash):
            diff.append("password")
        if diff:
            raise _conflict(f"user {address!r}", diff)
        return user_info(row, have), False

    def update_user(self, tenant_id: str, user_id: str, changes: Mapping[str, Any]) -> UserInfo:
        """Disable or enable the user, set its password, or replace a manager's stores."""
        from tenpo.control.plane import user_info

        unknown = sorted(set(changes) - {"disabled", "password", "store_ids"})
        if unknown:
            raise BadInput(f"cannot change user field(s) {unknown}")
        with self._write("user update raced") as session:
            row = session.get(User, user_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no user {user_id!r}")
            if "disabled" in changes:
                if not isinstance(changes["disabled"], bool):
                    raise BadInput("disabled must be true or false")
                row.disabled_at = (row.disabled_at or utcnow()) if changes["disabled"] else None
            if "password" in changes:
                row.password_hash = _users.hasher().hash(_users.check_password(changes["password"]))
            if changes.get("disabled") or "password" in changes:
                # As remove_user and set_password: every session the user had ends now.
                row.session_version = (row.session_version or 0) + 1
            if "store_ids" in changes:
                stores = list(dict.fromkeys(changes["store_ids"] or ()))
                if row.role == "tenant_admin" and stores:
                    raise BadInput("a tenant_admin sees every store; assign stores to managers")
                for store_id in stores:
                    self._store(session, tenant_id, store_id)
                session.execute(sa.delete(UserStore).where(UserStore.user_id == user_id))
                session.add_all(
                    UserStore(user_id=user_id, tenant_id=tenant_id, store_id=s) for s in stores
                )
            session.flush()
            have = list(
                session.scalars(
                    sa.select(UserStore.store_id)
                    .where(UserStore.user_id == user_id)
                    .order_by(UserStore.store_id)
                )
            )
        logger.info("user %s of %s updated: %s", user_id, tenant_id, sorted(changes))
        return user_info(row, have)

    # -- bulk ----------------------------------------------------------------------------

    def import_registry(
        self,
        tenant_id: str,
        *,
        stores: Sequence[tuple[int, Mapping[str, Any]]] = (),
        devices: Sequence[tuple[int, Mapping[str, Any]]] = (),
        registers: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> ImportReport:
        """Register many stores, devices and register assignments of one tenant at once.

        Each row comes with its number (a CSV line, a list position) for error reports. Every
        row is validated first — values, references (``store_code`` of a device or register:
        a store of this import or an existing one), duplicates, conflicts with stored rows —
        and :class:`ImportRejected` lists every bad row; otherwise all rows are applied in one
        transaction. Rows identical to stored ones are counted as unchanged, so a re-run
        import changes nothing.
        """
        from tenpo.control.plane import device_row, store_row
        from tenpo.control.sql_directory import check_no_overlap

        errors: list[RowError] = []
        report = ImportReport()
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            stored_stores = {
                s.code: s
                for s in session.scalars(sa.select(Store).where(Store.tenant_id == tenant_id))
            }
            stored_devices = {
                d.device_id: d
                for d in session.scalars(sa.select(Device).where(Device.tenant_id == tenant_id))
            }
            stored_registers: dict[tuple[str, str], list[PosRegister]] = {}
            for r in session.scalars(
                sa.select(PosRegister).where(PosRegister.tenant_id == tenant_id)
            ):
                stored_registers.setdefault((r.vendor, r.register_code), []).append(r)

        new_stores: list[Store] = []
        codes: dict[str, str] = {code: s.id for code, s in stored_stores.items()}
        seen_codes: dict[str, int] = {}
        for number, raw in stores:
            try:
                row = store_row(tenant_id, **_store_args(raw))
                if row.code in seen_codes:
                    raise BadInput(f"store code {row.code!r} repeats row {seen_codes[row.code]}")
                seen_codes[row.code] = number
                existing = stored_stores.get(row.code)
                if existing is not None:
                    wanted = {f: getattr(row, f) for f in _STORE_FIELDS}
                    if diff := _differences(existing, wanted):
                        raise _conflict(f"store {row.code!r}", diff)
                    report.unchanged["stores"] = report.unchanged.get("stores", 0) + 1
                    continue
                codes[row.code] = row.id
                new_stores.append(row)
            except TenpoError as exc:
                errors.append(RowError("stores", number, exc.message))

        new_devices: list[Device] = []
        seen_devices: dict[str, int] = {}
        for number, raw in devices:
            try:
                args = _device_args(raw)
                store_id = _store_ref(codes, args.pop("store_code"))
                device = device_row(tenant_id, store_id=store_id, **args)
                if device.device_id in seen_devices:
                    raise BadInput(
                        f"device {device.device_id!r} repeats row {seen_devices[device.device_id]}"
                    )
                seen_devices[device.device_id] = number
                existing_device = stored_devices.get(device.device_id)
                if existing_device is not None:
                    wanted = {f: getattr(device, f) for f in _DEVICE_FIELDS}
                    if diff := _differences(existing_device, wanted):
                        raise _conflict(f"device {device.device_id!r}", diff)
                    report.unchanged["devices"] = report.unchanged.get("devices", 0) + 1
                    continue
                new_devices.append(device)
            except TenpoError as exc:
                errors.append(RowError("devices", number, exc.message))

        new_registers: list[PosRegister] = []
        spans: dict[tuple[str, str], list[tuple[date, date | None]]] = {
            k: [(r.valid_from, r.valid_to) for r in v] for k, v in stored_registers.items()
        }
        for number, raw in registers:
            try:
                args = _register_args(raw)
                store_id = _store_ref(codes, args["store_code"])
                vendor = _validate.safe_id(args["vendor"], "POS vendor")
                code = _validate.text(args["register_code"], "register code", max_len=64)
                first, last = args["valid_from"], args["valid_to"]
                if last is not None and last < first:
                    raise BadInput(f"valid_to {last} is before valid_from {first}")
                same = [
                    r
                    for r in stored_registers.get((vendor, code), [])
                    if r.valid_from == first and r.store_id == store_id and r.valid_to == last
                ]
                if same:
                    report.unchanged["registers"] = report.unchanged.get("registers", 0) + 1
                    continue
                key = (vendor, code)
                try:
                    check_no_overlap(code, [*spans.get(key, []), (first, last)])
                except BadInput as exc:
                    raise Conflict(f"{exc} with another assignment") from None
                spans.setdefault(key, []).append((first, last))
                new_registers.append(
                    PosRegister(
                        tenant_id=tenant_id,
                        vendor=vendor,
                        register_code=code,
                        store_id=store_id,
                        valid_from=first,
                        valid_to=last,
                    )
                )
            except TenpoError as exc:
                errors.append(RowError("registers", number, exc.message))

        if errors:
            raise ImportRejected(errors)
        with self._write("a row was registered concurrently; run the import again") as session:
            # Stores first: devices and registers reference them (flush orders the inserts).
            session.add_all(new_stores)
            session.flush()
            session.add_all(new_devices)
            session.add_all(new_registers)
        report.created = {
            "stores": len(new_stores),
            "devices": len(new_devices),
            "registers": len(new_registers),
        }
        logger.info(
            "import for %s: created %s, unchanged %s", tenant_id, report.created, report.unchanged
        )
        return report


def _store_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(_STORE_FIELDS))
    if unknown:
        raise BadInput(f"cannot change store field(s) {unknown}")
    checks: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: _validate.text(v, "store name"),
        "timezone": _validate.timezone,
        "industry": lambda v: _validate.optional_text(v, "industry"),
        "region": lambda v: _validate.optional_text(v, "region"),
        "floor_area_m2": _validate.floor_area,
        "opening_hours": _validate.opening_hours,
    }
    return {name: checks[name](value) for name, value in changes.items()}


def _text_or_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _json_field(value: Any, what: str) -> Any:
    """A JSON value given as text (CSV) or already parsed (JSON bodies)."""
    import json

    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{what}: invalid JSON ({exc.msg})") from None
    return value


def _list_field(value: Any) -> list[str]:
    """Names given as ``a;b`` (CSV) or a list (JSON bodies)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return list(value)


def _only(raw: Mapping[str, Any], allowed: set[str], required: set[str]) -> dict[str, Any]:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise BadInput(f"unknown column(s) {unknown}; expected {sorted(allowed)}")
    values = {k: _text_or_none(v) for k, v in raw.items()}
    missing = sorted(k for k in required if values.get(k) in (None, ""))
    if missing:
        raise BadInput(f"missing {', '.join(missing)}")
    return values


_STORE_COLUMNS = {"code", "name", "store_id", *_STORE_FIELDS}


def _store_args(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = _only(raw, _STORE_COLUMNS, {"code", "name"})
    args: dict[str, Any] = {"code": values["code"], "name": values["name"]}
    for name in ("industry", "region", "floor_area_m2", "store_id"):
        if values.get(name) is not None:
            args[name] = values[name]
    if values.get("timezone") is not None:
        args["timezone"] = values["timezone"]
    if values.get("opening_hours") is not None:
        args["opening_hours"] = _json_field(values["opening_hours"], "opening_hours")
    return args


_DEVICE_COLUMNS = {"device_id", "store_code", "kind", "lines", "zones", "config"}


def _device_args(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = _only(raw, _DEVICE_COLUMNS, {"device_id", "store_code", "kind"})
    return {
        "device_id": values["device_id"],
        "store_code": values["store_code"],
        "kind": values["kind"],
        "lines": _list_field(values.get("lines")),
        "zones": _list_field(values.get("zones")),
        "config": _json_field(values.get("config"), "config"),
    }


_REGISTER_COLUMNS = {"vendor", "register_code", "store_code", "valid_from", "valid_to"}


def _register_args(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = _only(raw, _REGISTER_COLUMNS, {"vendor", "register_code", "store_code", "valid_from"})
    return {
        "vendor": str(values["vendor"]),
        "register_code": str(values["register_code"]),
        "store_code": str(values["store_code"]),
        "valid_from": _date(values["valid_from"], "valid_from"),
        "valid_to": _date(values.get("valid_to"), "valid_to"),
    }


def _date(value: Any, what: str) -> Any:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadInput(f"{what}: invalid date {value!r} (expected YYYY-MM-DD)") from None


def _store_ref(codes: Mapping[str, str], code: Any) -> str:
    store_id = codes.get(str(code))
    if store_id is None:
        raise NotFound(f"no store with code {code!r} (neither stored nor in this import)")
    return store_id


def iter_errors(errors: Iterable[RowError]) -> Iterator[dict[str, Any]]:
    """Row errors as JSON-ready dicts (problem ``errors`` members, CLI tables)."""
    for e in errors:
        yield {"kind": e.kind, "row": e.row, "message": e.message}
