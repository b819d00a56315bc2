"""``ControlPlane``: tenants, stores, devices, POS registers and API keys.

One object per process, over one SQLAlchemy engine (SQLite file by default, PostgreSQL at
scale). Every method takes the tenant explicitly and never returns another tenant's rows;
results are plain records (:mod:`tenpo.control.records`), never ORM objects.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control import _validate
from tenpo.control import users as _users
from tenpo.control._admin import AdminMethods
from tenpo.control._alert_rules import AlertRuleMethods
from tenpo.control._budgets import BudgetMethods
from tenpo.control._cache import RecentRefusals, TtlCache
from tenpo.control._initiatives import InitiativeMethods
from tenpo.control._staff import StaffMethods
from tenpo.control.auth import Principal, new_key, normalize_scopes, parse_token, secret_matches
from tenpo.control.db import create_control_engine, prepare_engine, upgrade_engine
from tenpo.control.models import ApiKey, Device, PosRegister, Store, Tenant, User, UserStore
from tenpo.control.records import (
    ApiKeyInfo,
    DeviceInfo,
    RegisterInfo,
    StoreInfo,
    TenantInfo,
    UserInfo,
)
from tenpo.control.sql_directory import SqlDirectory, check_no_overlap
from tenpo.core.errors import AuthError, BadInput, Conflict, NotFound
from tenpo.core.ids import utcnow

logger = logging.getLogger(__name__)

# last_used_at is bookkeeping, not audit: write it at most this often per key and process.
_LAST_USED_EVERY = timedelta(seconds=60)

AUTH_REFUSALS_KEPT = 4096
"""At most this many refused tokens are remembered per process (the oldest go first)."""
AUTH_REFUSAL_TTL = 1.0
"""Default seconds a refused token is refused from memory (capped by ``auth_cache_ttl``)."""


class ControlPlane(AdminMethods, InitiativeMethods, BudgetMethods, AlertRuleMethods, StaffMethods):
    """Reads and writes the control-plane database through ``engine``.

    Idempotent creates, updates and the bulk import are in :mod:`tenpo.control._admin`.

    ``auth_cache_ttl`` is how long a verified token is trusted without a database read; a
    key revoked in another process is refused after at most that many seconds. A key in use
    does not drop out of the cache: once less than half its time is left, a look-up
    (:meth:`cached_principal`) has it checked again on the control plane's own thread, so
    a busy server never pauses its requests for a burst of re-checks every TTL.

    A token refused after a read (unknown key, wrong secret, revoked) is refused from memory
    for ``auth_refusal_ttl`` seconds (default ``min(AUTH_REFUSAL_TTL, auth_cache_ttl)``), so a
    client retrying a bad key, or the API's fast path and route both checking it, costs one
    read; a key created meanwhile elsewhere is accepted after at most that long. At most
    :data:`AUTH_REFUSALS_KEPT` refusals are kept, so random keys cannot grow memory.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        auth_cache_ttl: float = 5.0,
        auth_refusal_ttl: float | None = None,
    ) -> None:
        prepare_engine(engine)
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._auth_cache: TtlCache[tuple[str, bytes], Principal] = TtlCache()
        self._auth_cache_ttl = auth_cache_ttl
        if auth_refusal_ttl is None:
            auth_refusal_ttl = min(AUTH_REFUSAL_TTL, auth_cache_ttl)
        self._auth_refused: RecentRefusals[tuple[str, bytes]] = RecentRefusals(
            auth_refusal_ttl, AUTH_REFUSALS_KEPT
        )
        # Bumped by every revocation (after its commit, before its discard): a check that
        # read the key before it does not leave it cached (see _check).
        self._auth_generation = 0
        self._generation_lock = threading.Lock()
        self._refreshing: set[tuple[str, bytes]] = set()
        self._refresher: ThreadPoolExecutor | None = None
        self._refresh_lock = threading.Lock()
        self._closed = False
        self._directory: SqlDirectory | None = None

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, auth_cache_ttl: float = 5.0) -> ControlPlane:
        """A control plane on the database at ``url``, first upgraded to the newest schema.

        ``auth_cache_ttl``: ``settings.auth_cache_seconds`` for the servers.
        """
        engine = create_control_engine(url)
        if migrate:
            upgrade_engine(engine)
        return cls(engine, auth_cache_ttl=auth_cache_ttl)

    @property
    def engine(self) -> Engine:
        """The engine this control plane uses."""
        return self._engine

    def dispose(self) -> None:
        """Stop the auth cache's re-checks and close every pooled connection."""
        with self._refresh_lock:
            self._closed = True
            refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.shutdown(wait=True, cancel_futures=True)
        self._engine.dispose()

    def directory(self) -> SqlDirectory:
        """The cached :class:`SqlDirectory` over this database (one per control plane)."""
        if self._directory is None:
            self._directory = SqlDirectory(self._engine)
        return self._directory

    # -- tenants -------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str, name: str) -> TenantInfo:
        """Register a tenant; :class:`Conflict` if the id is taken."""
        _validate.tenant_id(tenant_id)
        row = Tenant(id=tenant_id, name=_validate.text(name, "tenant name"), created_at=utcnow())
        with self._write(f"tenant {tenant_id!r} already exists") as session:
            if session.get(Tenant, tenant_id) is not None:
                raise Conflict(f"tenant {tenant_id!r} already exists", tenant_id=tenant_id)
            session.add(row)
        logger.info("tenant %s created", tenant_id)
        return tenant_info(row)

    def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by id."""
        with self._sessions() as session:
            return [tenant_info(t) for t in session.scalars(sa.select(Tenant).order_by(Tenant.id))]

    # -- stores --------------------------------------------------------------------------

    def create_store(
        self,
        tenant_id: str,
        code: str,
        name: str,
        *,
        timezone: str = "Asia/Tokyo",
        industry: str | None = None,
        region: str | None = None,
        floor_area_m2: Decimal | int | str | None = None,
        opening_hours: Mapping[str, Any] | None = None,
        store_id: str | None = None,
    ) -> StoreInfo:
        """Register a store; :class:`Conflict` if the code (or given id) is taken."""
        row = store_row(
            tenant_id,
            code,
            name,
            timezone=timezone,
            industry=industry,
            region=region,
            floor_area_m2=floor_area_m2,
            opening_hours=opening_hours,
            store_id=store_id,
        )
        code = row.code
        with self._write(f"store code {code!r} or id {row.id!r} already exists") as session:
            self._require_tenant(session, tenant_id)
            if session.scalar(_store_by_code(tenant_id, code)) is not None:
                raise Conflict(f"tenant {tenant_id!r} already has a store with code {code!r}")
            if session.get(Store, row.id) is not None:
                raise Conflict(f"store id {row.id!r} already exists")
            session.add(row)
        logger.info("store %s (%s) created for %s", row.id, code, tenant_id)
        return store_info(row)

    def list_stores(self, tenant_id: str) -> list[StoreInfo]:
        """The tenant's stores, by code."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            rows = session.scalars(
                sa.select(Store).where(Store.tenant_id == tenant_id).order_by(Store.code)
            )
            return [store_info(s) for s in rows]

    def get_store(self, tenant_id: str, store_id: str) -> StoreInfo:
        """The tenant's store with this id; :class:`NotFound` also for other tenants' stores."""
        with self._sessions() as session:
            return store_info(self._store(session, tenant_id, store_id))

    def store_by_code(self, tenant_id: str, code: str) -> StoreInfo:
        """The tenant's store with this code; :class:`NotFound` otherwise."""
        with self._sessions() as session:
            row = session.scalar(_store_by_code(tenant_id, code))
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} has no store with code {code!r}")
        return store_info(row)

    # -- devices -------------------------------------------------------------------------

    def create_device(
        self,
        tenant_id: str,
        device_id: str,
        store_id: str,
        kind: str,
        *,
        lines: Iterable[str] = (),
        zones: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
    ) -> DeviceInfo:
        """Register a device in one of the tenant's stores; :class:`Conflict` if the id is taken."""
        row = device_row(
            tenant_id, device_id, store_id, kind, lines=lines, zones=zones, config=config
        )
        with self._write(f"device {device_id!r} already exists") as session:
            self._store(session, tenant_id, store_id)
            if session.get(Device, (tenant_id, device_id)) is not None:
                raise Conflict(f"tenant {tenant_id!r} already has a device {device_id!r}")
            session.add(row)
        logger.info("device %s (%s) created in %s/%s", device_id, kind, tenant_id, store_id)
        return device_info(row)

    def list_devices(self, tenant_id: str) -> list[DeviceInfo]:
        """The tenant's devices, by id."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            rows = session.scalars(
                sa.select(Device).where(Device.tenant_id == tenant_id).order_by(Device.device_id)
            )
            return [device_info(d) for d in rows]

    # -- POS registers -------------------------------------------------------------------

    def create_register(
        self,
        tenant_id: str,
        vendor: str,
        register_code: str,
        store_id: str,
        valid_from: date,
        valid_to: date | None = None,
    ) -> RegisterInfo:
        """Assign a POS register to a store for ``valid_from``..``valid_to`` (inclusive).

        :class:`Conflict` when the register already has an assignment overlapping those dates.
        """
        _validate.safe_id(vendor, "POS vendor")
        code = _validate.text(register_code, "register code", max_len=64)
        if valid_to is not None and valid_to < valid_from:
            raise BadInput(f"valid_to {valid_to} is before valid_from {valid_from}")
        row = PosRegister(
            tenant_id=tenant_id,
            vendor=vendor,
            register_code=code,
            store_id=store_id,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        with self._write(f"register {code!r} already starts on {valid_from}") as session:
            self._store(session, tenant_id, store_id)
            existing = session.execute(
                sa.select(PosRegister.valid_from, PosRegister.valid_to).where(
                    PosRegister.tenant_id == tenant_id,
                    PosRegister.vendor == vendor,
                    PosRegister.register_code == code,
                )
            ).all()
            try:
                check_no_overlap(code, [*((f, t) for f, t in existing), (valid_from, valid_to)])
            except BadInput as exc:
                raise Conflict(f"{exc} with an existing assignment") from None
            session.add(row)
        logger.info("register %s/%s assigned to %s from %s", vendor, code, store_id, valid_from)
        return register_info(row)

    def list_registers(self, tenant_id: str, vendor: str | None = None) -> list[RegisterInfo]:
        """The tenant's register assignments (optionally of one vendor), by code and date."""
        query = sa.select(PosRegister).where(PosRegister.tenant_id == tenant_id)
        if vendor is not None:
            query = query.where(PosRegister.vendor == vendor)
        query = query.order_by(
            PosRegister.vendor, PosRegister.register_code, PosRegister.valid_from
        )
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            return [register_info(r) for r in session.scalars(query)]

    # -- API keys ------------------------------------------------------------------------

    def create_api_key(
        self, tenant_id: str, name: str, scopes: Iterable[str]
    ) -> tuple[ApiKeyInfo, str]:
        """A new key and its plaintext token; the token is not stored and cannot be shown again."""
        key_id, token, token_hash = new_key()
        row = ApiKey(
            id=key_id,
            tenant_id=tenant_id,
            name=_validate.text(name, "API key name"),
            scopes=list(normalize_scopes(list(scopes))),
            token_hash=token_hash,
            created_at=utcnow(),
        )
        with self._write("API key id collision") as session:
            self._require_tenant(session, tenant_id)
            session.add(row)
        logger.info("API key %s created for %s with %s", key_id, tenant_id, row.scopes)
        return key_info(row), token

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """The tenant's API keys (revoked ones included), oldest first, without secrets."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            rows = session.scalars(
                sa.select(ApiKey)
                .where(ApiKey.tenant_id == tenant_id)
                .order_by(ApiKey.created_at, ApiKey.id)
            )
            return [key_info(k) for k in rows]

    def revoke_api_key(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        """Revoke the tenant's key (idempotent); :class:`NotFound` for another tenant's key."""
        with self._sessions.begin() as session:
            row = session.get(ApiKey, key_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no API key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                logger.info("API key %s of %s revoked", key_id, tenant_id)
        with self._generation_lock:
            self._auth_generation += 1
        self._auth_cache.discard(lambda k: k[0] == key_id)
        return key_info(row)

    def cached_principal(self, token: str) -> Principal | None:
        """The principal behind ``token`` when the auth cache holds it, else None: no
        database, no blocking (an event loop may call it; :meth:`authenticate` on a miss).
        A revoked key leaves the cache at once here and within the TTL elsewhere. An entry
        with less than half its TTL left is checked again in the background (see the class)."""
        token = token.strip() if isinstance(token, str) else ""
        try:
            key_id, _ = parse_token(token)
        except AuthError:
            return None
        cache_key = (key_id, hashlib.sha256(token.encode()).digest())
        entry = self._auth_cache.entry(cache_key)
        if entry is None:
            return None
        principal, left = entry
        if left < self._auth_cache_ttl / 2:
            self._refresh_soon(token, cache_key)
        return principal

    def cached_refusal(self, token: str) -> str | None:
        """Why ``token`` was refused, if it was within the refusal TTL (see the class): no
        database, no blocking. None for a token not refused lately (or malformed: parsing
        refuses it without a read anyway)."""
        token = token.strip() if isinstance(token, str) else ""
        try:
            key_id, _ = parse_token(token)
        except AuthError:
            return None
        return self._auth_refused.get((key_id, hashlib.sha256(token.encode()).digest()))

    def auth_refusals_kept(self) -> int:
        """How many refused tokens are remembered now (at most :data:`AUTH_REFUSALS_KEPT`)."""
        return len(self._auth_refused)

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``; :class:`AuthError` if malformed, unknown or revoked."""
        token = token.strip() if isinstance(token, str) else ""
        key_id, secret = parse_token(token)
        cache_key = (key_id, hashlib.sha256(token.encode()).digest())
        hit, cached = self._auth_cache.get(cache_key)
        if hit and cached is not None:
            return cached
        refused = self._auth_refused.get(cache_key)
        if refused is not None:
            raise AuthError(refused)
        try:
            return self._check(key_id, secret, cache_key)
        except AuthError as exc:
            self._auth_refused.add(cache_key, str(exc))
            raise

    def _check(self, key_id: str, secret: str, cache_key: tuple[str, bytes]) -> Principal:
        """Read and verify the key, cache its principal (unless a revocation came meanwhile)
        and note its use."""
        generation = self._auth_generation
        with self._sessions() as session:
            row = session.get(ApiKey, key_id)
        if row is None or not secret_matches(secret, row.token_hash):
            raise AuthError("invalid API key")
        if row.revoked_at is not None:
            raise AuthError(f"API key {key_id} has been revoked")
        principal = Principal(tenant_id=row.tenant_id, key_id=row.id, scopes=frozenset(row.scopes))
        if generation == self._auth_generation:
            self._auth_cache.put(cache_key, principal, self._auth_cache_ttl)
            # A revocation bumps the generation before it discards: one that came between the
            # test above and the put either discarded after the put, or is seen here.
            if generation != self._auth_generation:
                self._auth_cache.discard(lambda k: k == cache_key)
        self._touch(row)
        return principal

    def _refresh_soon(self, token: str, cache_key: tuple[str, bytes]) -> None:
        """Have the cached key checked again on the refresh thread (once at a time)."""
        with self._refresh_lock:
            if self._closed or cache_key in self._refreshing:
                return
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(1, thread_name_prefix="tenpo-auth-refresh")
            self._refreshing.add(cache_key)
            self._refresher.submit(self._refresh, token, cache_key)

    def _refresh(self, token: str, cache_key: tuple[str, bytes]) -> None:
        try:
            key_id, secret = parse_token(token)
            self._check(key_id, secret, cache_key)
        except AuthError:  # revoked or deleted meanwhile: the next look-up misses and refuses
            self._auth_cache.discard(lambda k: k == cache_key)
        except SQLAlchemyError as exc:  # the entry expires on its own; a miss checks again
            logger.warning("could not re-check API key %s: %s", cache_key[0], exc)
        finally:
            with self._refresh_lock:
                self._refreshing.discard(cache_key)

    # -- users -------------------------------------------------------------------------

    def create_user(
        self,
        tenant_id: str,
        email: str,
        password: str,
        role: str,
        store_ids: Iterable[str] = (),
    ) -> UserInfo:
        """A dashboard user of the tenant; :class:`Conflict` if the email is taken.

        ``store_ids`` are the stores a ``store_manager`` may see (ignored for nobody: a
        ``tenant_admin`` sees every store, so assigning stores to one is refused).
        """
        address = _users.normalize_email(email)
        _users.check_role(role)
        stores = list(dict.fromkeys(store_ids))
        if role == "tenant_admin" and stores:
            raise BadInput("a tenant_admin sees every store; assign stores to store managers only")
        row = User(
            id=f"usr_{secrets.token_hex(8)}",
            tenant_id=tenant_id,
            email=address,
            role=role,
            password_hash=_users.hasher().hash(_users.check_password(password)),
            created_at=utcnow(),
        )
        with self._write(f"a user with email {address!r} already exists") as session:
            self._require_tenant(session, tenant_id)
            if session.scalar(sa.select(User.id).where(User.email == address)) is not None:
                raise Conflict(f"a user with email {address!r} already exists")
            session.add(row)
            session.flush()
            for store_id in stores:
                self._store(session, tenant_id, store_id)
                session.add(UserStore(user_id=row.id, tenant_id=tenant_id, store_id=store_id))
        logger.info("user %s (%s) created for %s", row.id, role, tenant_id)
        return user_info(row, stores)

    def assign_stores(self, tenant_id: str, user_id: str, store_ids: Iterable[str]) -> UserInfo:
        """Let the tenant's store manager ``user_id`` also see ``store_ids`` (idempotent)."""
        with self._write("store already assigned") as session:
            row = session.get(User, user_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no user {user_id!r}")
            if row.role != "store_manager":
                raise BadInput(f"user {user_id!r} is a {row.role}; only store managers get stores")
            have = set(self._user_stores(session, user_id))
            for store_id in dict.fromkeys(store_ids):
                self._store(session, tenant_id, store_id)
                if store_id not in have:
                    session.add(UserStore(user_id=user_id, tenant_id=tenant_id, store_id=store_id))
            session.flush()
            info = user_info(row, self._user_stores(session, user_id))
        logger.info("user %s of %s now sees stores %s", user_id, tenant_id, info.store_ids)
        return info

    def get_user(self, user_id: str) -> UserInfo:
        """The user with this id (any tenant: ids come from signed sessions); NotFound otherwise."""
        with self._sessions() as session:
            row = session.get(User, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            return user_info(row, self._user_stores(session, user_id))

    def list_users(self, tenant_id: str) -> list[UserInfo]:
        """The tenant's users, by email."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            rows = list(
                session.scalars(
                    sa.select(User).where(User.tenant_id == tenant_id).order_by(User.email)
                )
            )
            return [user_info(r, self._user_stores(session, r.id)) for r in rows]

    def authenticate_user(self, email: str, password: str) -> UserInfo:
        """The active user with this email and password; :class:`AuthError` otherwise.

        The answer and its timing are the same for an unknown email and a wrong password.
        """
        try:
            address = _users.normalize_email(email)
        except BadInput:
            address = ""
        with self._sessions() as session:
            row = session.scalar(sa.select(User).where(User.email == address)) if address else None
            stored = row.password_hash if row is not None else _users.dummy_hash()
            valid, updated = _users.hasher().verify_and_update(str(password), stored)
            if row is None or not valid or row.disabled_at is not None:
                raise AuthError("invalid email or password")
            stores = self._user_stores(session, row.id)
        with self._sessions.begin() as session:
            values: dict[str, Any] = {"last_login_at": utcnow()}
            if updated is not None:  # parameters got stronger since the hash was made
                values["password_hash"] = updated
            session.execute(sa.update(User).where(User.id == row.id).values(**values))
        logger.info("user %s of %s logged in", row.id, row.tenant_id)
        return user_info(row, stores)

    def end_sessions(self, user_id: str) -> int:
        """End every session of ``user_id`` (logout): bump its session version; the new one.

        NotFound for an unknown user. Tokens naming an older version are refused from now on.
        """
        with self._sessions.begin() as session:
            # One atomic increment: two logouts at once both end the sessions they saw.
            session.execute(
                sa.update(User)
                .where(User.id == user_id)
                .values(session_version=User.session_version + 1)
            )
            version = session.scalar(sa.select(User.session_version).where(User.id == user_id))
        if version is None:
            raise NotFound(f"no user {user_id!r}")
        logger.info("user %s: sessions ended (version %d)", user_id, version)
        return int(version)

    def set_password(self, tenant_id: str, user_id: str, password: str) -> UserInfo:
        """Give the tenant's user a new password and end every session it had."""
        hashed = _users.hasher().hash(_users.check_password(password))
        with self._write("password change") as session:
            row = session.get(User, user_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no user {user_id!r}")
            row.password_hash = hashed
            row.session_version = (row.session_version or 0) + 1
            session.flush()
            info = user_info(row, self._user_stores(session, user_id))
        logger.info("user %s of %s: password changed, sessions ended", user_id, tenant_id)
        return info

    def remove_user(self, tenant_id: str, user_id: str) -> UserInfo:
        """Disable the tenant's user for good (kept for the audit trail): it can no longer log
        in and every session it had ends. Idempotent."""
        with self._write("user removal") as session:
            row = session.get(User, user_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no user {user_id!r}")
            if row.disabled_at is None:
                row.disabled_at = utcnow()
            row.session_version = (row.session_version or 0) + 1
            session.flush()
            info = user_info(row, self._user_stores(session, user_id))
        logger.info("user %s of %s removed, sessions ended", user_id, tenant_id)
        return info

    @staticmethod
    def _user_stores(session: Session, user_id: str) -> list[str]:
        return list(
            session.scalars(
                sa.select(UserStore.store_id)
                .where(UserStore.user_id == user_id)
                .order_by(UserStore.store_id)
            )
        )

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _write(self, conflict_message: str) -> Iterator[Session]:
        """A write transaction; a unique-constraint race surfaces as :class:`Conflict`."""
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(conflict_message) from exc
        if self._directory is not None:
            self._directory.invalidate()

    def _touch(self, row: ApiKey) -> None:
        now = utcnow()
        if row.last_used_at is not None and now - row.last_used_at < _LAST_USED_EVERY:
            return
        try:
            with self._sessions.begin() as session:
                session.execute(
                    sa.update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
                )
        except SQLAlchemyError as exc:  # bookkeeping must never fail a request
            logger.debug("could not record use of API key %s: %s", row.id, exc)

    @staticmethod
    def _require_tenant(session: Session, tenant_id: str) -> None:
        if session.get(Tenant, tenant_id) is None:
            raise NotFound(f"tenant {tenant_id!r} does not exist")

    @staticmethod
    def _store(session: Session, tenant_id: str, store_id: str) -> Store:
        row = session.get(Store, store_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id!r} has no store {store_id!r}")
        return row


def store_row(
    tenant_id: str,
    code: str,
    name: str,
    *,
    timezone: str = "Asia/Tokyo",
    industry: str | None = None,
    region: str | None = None,
    floor_area_m2: Decimal | int | str | None = None,
    opening_hours: Mapping[str, Any] | None = None,
    store_id: str | None = None,
) -> Store:
    """A new, validated store row (not yet added to a session); :class:`BadInput` if invalid."""
    return Store(
        id=_validate.safe_id(store_id, "store id") if store_id else f"st_{secrets.token_hex(6)}",
        tenant_id=tenant_id,
        code=_validate.text(code, "store code", max_len=64),
        name=_validate.text(name, "store name"),
        timezone=_validate.timezone(timezone),
        industry=_validate.optional_text(industry, "industry"),
        region=_validate.optional_text(region, "region"),
        floor_area_m2=_validate.floor_area(floor_area_m2),
        opening_hours=_validate.opening_hours(opening_hours),
        created_at=utcnow(),
    )


def device_row(
    tenant_id: str,
    device_id: str,
    store_id: str,
    kind: str,
    *,
    lines: Iterable[str] = (),
    zones: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
) -> Device:
    """A new, validated device row (not yet added to a session); :class:`BadInput` if invalid."""
    return Device(
        tenant_id=tenant_id,
        device_id=_validate.safe_id(device_id, "device id"),
        store_id=store_id,
        kind=_validate.device_kind(kind),
        lines=_validate.names(lines, "line"),
        zones=_validate.names(zones, "zone"),
        config=_validate.json_object(config, "device config"),
        active=True,
        created_at=utcnow(),
    )


def _store_by_code(tenant_id: str, code: str) -> sa.Select[Store]:
    return sa.select(Store).where(Store.tenant_id == tenant_id, Store.code == code)


def tenant_info(row: Tenant) -> TenantInfo:
    return TenantInfo(tenant_id=row.id, name=row.name, created_at=row.created_at)


def store_info(row: Store) -> StoreInfo:
    return StoreInfo(
        store_id=row.id,
        tenant_id=row.tenant_id,
        code=row.code,
        name=row.name,
        timezone=row.timezone,
        industry=row.industry,
        region=row.region,
        floor_area_m2=row.floor_area_m2,
        opening_hours=row.opening_hours,
        created_at=row.created_at,
    )


def device_info(row: Device) -> DeviceInfo:
    return DeviceInfo(
        tenant_id=row.tenant_id,
        device_id=row.device_id,
        store_id=row.store_id,
        kind=row.kind,
        lines=tuple(row.lines),
        zones=tuple(row.zones),
        config=dict(row.config),
        active=row.active,
        created_at=row.created_at,
    )


def register_info(row: PosRegister) -> RegisterInfo:
    return RegisterInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        vendor=row.vendor,
        register_code=row.register_code,
        store_id=row.store_id,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


def key_info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def user_info(row: User, store_ids: Iterable[str]) -> UserInfo:
    return UserInfo(
        user_id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=row.role,
        store_ids=tuple(store_ids),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        last_login_at=row.last_login_at,
        session_version=row.session_version or 0,
    )
