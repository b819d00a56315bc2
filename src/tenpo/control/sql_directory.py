"""``SqlDirectory``: the :class:`~tenpo.control.directory.Directory` served from the control DB.

The streamer asks it once per record, so answers are cached in process: found entities for
``positive_ttl`` seconds (default 60), misses for ``negative_ttl`` (default 2) so that a
store or register registered meanwhile is soon seen. ``apply_pos_master`` and the
:class:`~tenpo.control.ControlPlane` writes clear this process's cache at once; other
processes see changes within one TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control import _validate
from tenpo.control._cache import TtlCache
from tenpo.control.db import prepare_engine
from tenpo.control.directory import DeviceRef, RegisterAssignment, StoreRef
from tenpo.control.models import Device, PosRegister, Store
from tenpo.core.errors import BadInput

logger = logging.getLogger(__name__)

_Interval = tuple[date, date | None, str]  # valid_from, valid_to (inclusive), store_id


class SqlDirectory:
    """Tenant-scoped lookups of stores, devices and POS registers, cached in process."""

    def __init__(
        self, engine: Engine, *, positive_ttl: float = 60.0, negative_ttl: float = 2.0
    ) -> None:
        prepare_engine(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._positive_ttl = positive_ttl
        self._negative_ttl = negative_ttl
        self._cache: TtlCache[Hashable, object] = TtlCache()

    def store_by_code(self, tenant_id: str, code: str) -> StoreRef | None:
        """The tenant's store with this code."""
        key = ("code", tenant_id, code)
        hit, value = self._cache.get(key)
        if hit:
            return value if isinstance(value, StoreRef) else None
        with self._sessions() as session:
            row = session.scalars(
                sa.select(Store).where(Store.tenant_id == tenant_id, Store.code == code)
            ).one_or_none()
        ref = _store_ref(row)
        self._remember(key, ref)
        return ref

    def store(self, tenant_id: str, store_id: str) -> StoreRef | None:
        """The tenant's store with this id."""
        key = ("store", tenant_id, store_id)
        hit, value = self._cache.get(key)
        if hit:
            return value if isinstance(value, StoreRef) else None
        with self._sessions() as session:
            row = session.get(Store, store_id)
        ref = _store_ref(row) if row is not None and row.tenant_id == tenant_id else None
        self._remember(key, ref)
        return ref

    def register_store(
        self, tenant_id: str, vendor: str, register_code: str, day: date
    ) -> StoreRef | None:
        """The store that register ``register_code`` of ``vendor`` belonged to on ``day``."""
        for valid_from, valid_to, store_id in self._intervals(tenant_id, vendor, register_code):
            if valid_from <= day and (valid_to is None or day <= valid_to):
                return self.store(tenant_id, store_id)
        return None

    def device(self, tenant_id: str, device_id: str) -> DeviceRef | None:
        """The tenant's active device with this id (inactive devices are not found)."""
        key = ("device", tenant_id, device_id)
        hit, value = self._cache.get(key)
        if hit:
            return value if isinstance(value, DeviceRef) else None
        with self._sessions() as session:
            found = session.execute(
                sa.select(Device, Store.timezone)
                .join(Store, Store.id == Device.store_id)
                .where(
                    Device.tenant_id == tenant_id,
                    Device.device_id == device_id,
                    Device.active.is_(True),
                )
            ).one_or_none()
        ref = None
        if found is not None:
            dev, tz = found
            ref = DeviceRef(
                device_id=dev.device_id,
                tenant_id=dev.tenant_id,
                store_id=dev.store_id,
                kind=dev.kind,
                timezone=tz,
                lines=tuple(dev.lines),
                zones=tuple(dev.zones),
            )
        self._remember(key, ref)
        return ref

    def apply_pos_master(self, tenant_id: str, vendor: str, rows: list[RegisterAssignment]) -> int:
        """Replace, in one transaction, the assignments of the registers listed in ``rows``.

        Returns the rows applied. :class:`BadInput` names an unknown store code, a
        ``valid_to`` before ``valid_from`` or overlapping rows of one register; then nothing
        is changed.
        """
        _validate.safe_id(vendor, "POS vendor")
        by_register: dict[str, list[RegisterAssignment]] = {}
        for row in rows:
            code = _validate.text(row.register_code, "register code", max_len=64)
            if row.valid_to is not None and row.valid_to < row.valid_from:
                raise BadInput(
                    f"POS master row of register {code!r}: valid_to {row.valid_to} "
                    f"is before valid_from {row.valid_from}"
                )
            by_register.setdefault(code, []).append(row)
        for code, assignments in by_register.items():
            check_no_overlap(code, [(a.valid_from, a.valid_to) for a in assignments])
        if not rows:
            return 0
        with self._sessions.begin() as session:
            store_ids = _store_ids_by_code(session, tenant_id, {r.store_code for r in rows})
            for row in rows:
                if row.store_code not in store_ids:
                    raise BadInput(
                        f"POS master names unknown store code {row.store_code!r}",
                        store_code=row.store_code,
                    )
            session.execute(
                sa.delete(PosRegister).where(
                    PosRegister.tenant_id == tenant_id,
                    PosRegister.vendor == vendor,
                    PosRegister.register_code.in_(list(by_register)),
                )
            )
            session.add_all(
                PosRegister(
                    tenant_id=tenant_id,
                    vendor=vendor,
                    register_code=code,
                    store_id=store_ids[a.store_code],
                    valid_from=a.valid_from,
                    valid_to=a.valid_to,
                )
                for code, assignments in by_register.items()
                for a in assignments
            )
        self._cache.discard(lambda k: isinstance(k, tuple) and k[:3] == ("reg", tenant_id, vendor))
        logger.info(
            "POS master of %s/%s applied: %d rows, %d registers",
            tenant_id,
            vendor,
            len(rows),
            len(by_register),
        )
        return len(rows)

    def invalidate(self) -> None:
        """Forget every cached answer (after writes through the control plane)."""
        self._cache.clear()

    def _intervals(self, tenant_id: str, vendor: str, register_code: str) -> list[_Interval]:
        key = ("reg", tenant_id, vendor, register_code)
        hit, value = self._cache.get(key)
        if hit:
            return value if isinstance(value, list) else []
        with self._sessions() as session:
            found = session.execute(
                sa.select(PosRegister.valid_from, PosRegister.valid_to, PosRegister.store_id)
                .where(
                    PosRegister.tenant_id == tenant_id,
                    PosRegister.vendor == vendor,
                    PosRegister.register_code == register_code,
                )
                .order_by(PosRegister.valid_from)
            ).all()
        intervals: list[_Interval] = [(r[0], r[1], r[2]) for r in found]
        self._remember(key, intervals if intervals else None)
        return intervals

    def _remember(self, key: Hashable, value: object) -> None:
        ttl = self._positive_ttl if value is not None else self._negative_ttl
        self._cache.put(key, value, ttl)


def _store_ref(row: Store | None) -> StoreRef | None:
    if row is None:
        return None
    return StoreRef(store_id=row.id, tenant_id=row.tenant_id, code=row.code, timezone=row.timezone)


def _store_ids_by_code(session: Session, tenant_id: str, codes: set[str]) -> dict[str, str]:
    found = session.execute(
        sa.select(Store.code, Store.id).where(Store.tenant_id == tenant_id, Store.code.in_(codes))
    ).all()
    return {code: store_id for code, store_id in found}


def check_no_overlap(register_code: str, spans: Sequence[tuple[date, date | None]]) -> None:
    """:class:`BadInput` when two validity spans of one register share a day."""
    ordered = sorted(spans, key=lambda s: s[0])
    for (start, end), (next_start, _) in zip(ordered, ordered[1:], strict=False):
        if end is None or next_start <= end:
            raise BadInput(
                f"register {register_code!r} has overlapping validity periods "
                f"(from {start} and from {next_start})",
                register_code=register_code,
            )
