"""Staff methods of ``ControlPlane``: members of staff enrolled by face descriptors.

The descriptors (n × 128 float32, computed from photos by :mod:`tenpo.video.enrol`) are the
only thing stored — no photo, no crop. The video analyzer loads a store's descriptors
(:meth:`StaffMethods.staff_descriptors`) and never counts a track that matches one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tenpo.control.models import StaffMember, Store
from tenpo.control.records import StaffInfo
from tenpo.core.errors import BadInput, NotFound
from tenpo.core.ids import new_id, utcnow

__all__ = ["MAX_STAFF_PER_STORE", "StaffMethods"]

logger = logging.getLogger(__name__)

MAX_STAFF_PER_STORE = 500
_DIM = 128

Descriptor = npt.NDArray[np.float32]


def _info(row: StaffMember) -> StaffInfo:
    return StaffInfo(
        staff_id=row.id,
        tenant_id=row.tenant_id,
        store_id=row.store_id,
        name=row.name,
        descriptors=len(row.descriptors) // (4 * _DIM),
        created_at=row.created_at,
    )


def _pack(vectors: Sequence[Descriptor]) -> bytes:
    if not vectors:
        raise BadInput("a member of staff needs at least one face descriptor")
    arr = np.stack([np.asarray(v, dtype="<f4") for v in vectors])
    if arr.shape[1:] != (_DIM,) or not np.isfinite(arr).all():
        raise BadInput(f"face descriptors must be finite {_DIM}-d vectors, got {arr.shape}")
    return arr.tobytes()


def _unpack(data: bytes) -> list[Descriptor]:
    arr = np.frombuffer(data, dtype="<f4").reshape(-1, _DIM)
    return [row.astype(np.float32) for row in arr]


class StaffMethods:
    """Mixed into ``ControlPlane``; relies on its sessions and helpers (see ``plane``)."""

    _sessions: sessionmaker[Session]
    _write: Callable[[str], AbstractContextManager[Session]]
    _require_tenant: Callable[[Session, str], None]

    @staticmethod
    def _staff_store(session: Session, tenant_id: str, store: str) -> Store:
        row = session.get(Store, store)
        if row is not None and row.tenant_id == tenant_id:
            return row
        found = session.scalars(
            sa.select(Store).where(Store.tenant_id == tenant_id, Store.code == store)
        ).first()
        if found is None:
            raise NotFound(f"tenant {tenant_id!r} has no store {store!r} (id or code)")
        return found

    def enroll_staff(
        self, tenant_id: str, store: str, name: str, descriptors: Sequence[Descriptor]
    ) -> StaffInfo:
        """Enrol a member of staff at ``store`` (id or code) from face descriptors."""
        name = name.strip()
        if not name or len(name) > 200:
            raise BadInput("staff name must be 1–200 characters")
        blob = _pack(descriptors)
        with self._write("staff enrolment raced another") as session:
            self._require_tenant(session, tenant_id)
            st = self._staff_store(session, tenant_id, store)
            held = session.scalar(
                sa.select(sa.func.count())
                .select_from(StaffMember)
                .where(StaffMember.tenant_id == tenant_id, StaffMember.store_id == st.id)
            )
            if (held or 0) >= MAX_STAFF_PER_STORE:
                raise BadInput(f"store {st.code} already has {MAX_STAFF_PER_STORE} staff enrolled")
            row = StaffMember(
                id=new_id("stf_"),
                tenant_id=tenant_id,
                store_id=st.id,
                name=name,
                descriptors=blob,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            info = _info(row)
        logger.info(
            "staff %s enrolled at %s/%s (%d descriptors)",
            info.staff_id,
            tenant_id,
            info.store_id,
            info.descriptors,
        )
        return info

    def list_staff(self, tenant_id: str, store: str | None = None) -> list[StaffInfo]:
        """The tenant's enrolled staff (of one store, id or code, when given), by name."""
        with self._sessions() as session:
            self._require_tenant(session, tenant_id)
            q = sa.select(StaffMember).where(StaffMember.tenant_id == tenant_id)
            if store is not None:
                q = q.where(StaffMember.store_id == self._staff_store(session, tenant_id, store).id)
            rows = session.scalars(q.order_by(StaffMember.name, StaffMember.id))
            return [_info(r) for r in rows]

    def remove_staff(self, tenant_id: str, staff_id: str) -> StaffInfo:
        """Delete a member of staff and their descriptors; NotFound for another tenant's."""
        with self._write("staff removal raced another") as session:
            row = session.get(StaffMember, staff_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"tenant {tenant_id!r} has no member of staff {staff_id!r}")
            info = _info(row)
            session.delete(row)
        logger.info("staff %s of %s removed with their descriptors", staff_id, tenant_id)
        return info

    def staff_descriptors(
        self, tenant_id: str, store_id: str
    ) -> list[tuple[str, list[Descriptor]]]:
        """(staff id, descriptors) of every member enrolled at the tenant's store."""
        with self._sessions() as session:
            rows = session.execute(
                sa.select(StaffMember.id, StaffMember.descriptors).where(
                    StaffMember.tenant_id == tenant_id, StaffMember.store_id == store_id
                )
            ).all()
        return [(sid, _unpack(blob)) for sid, blob in rows]
