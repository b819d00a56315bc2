"""The Feature DB interface: per-tenant face vectors keyed by an anonymous PersonID.

A store keeps, per tenant, 128-d face descriptors (dlib ResNet; Euclidean distance, the
same person is usually below 0.6) with the PersonID they belong to and when the person was
last seen. :meth:`FeatureStore.identify` is the re-identification step of the analyzer: the
nearest vector of the same tenant within ``threshold`` gives the PersonID, otherwise a new
PersonID is minted. No face image is ever stored, only the vectors. Searches never cross
tenants: every method takes the tenant and only looks at its vectors.
"""

from __future__ import annotations

import logging
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from tenpo.core.errors import BadInput
from tenpo.core.ids import utcnow

__all__ = ["DIM", "FeatureStore", "Identified", "Match", "check_vector", "check_tenant"]

log = logging.getLogger(__name__)

DIM = 128
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Match:
    """The nearest stored vector of a tenant: its PersonID and Euclidean distance."""

    person_id: str
    distance: float


@dataclass(frozen=True)
class Identified:
    """Result of :meth:`FeatureStore.identify`: the PersonID and whether it is new."""

    person_id: str
    is_new: bool
    distance: float | None


def check_tenant(tenant_id: str) -> str:
    """``tenant_id`` if path-safe; :class:`BadInput` otherwise (it names files and rows)."""
    if not _SAFE.match(tenant_id) or tenant_id.startswith("."):
        raise BadInput(f"invalid tenant id for the feature DB: {tenant_id!r}")
    return tenant_id


def check_vector(vector: object) -> Vector:
    """A finite float32 vector of :data:`DIM` values; :class:`BadInput` naming the problem."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (DIM,):
        raise BadInput(f"a face feature must have shape ({DIM},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BadInput("a face feature holds NaN or infinite values")
    return arr


def new_person_id() -> str:
    """A fresh anonymous PersonID (``p-`` + 16 hex digits)."""
    return "p-" + uuid.uuid4().hex[:16]


class FeatureStore(ABC):
    """Per-tenant face vectors with PersonIDs: add, search, identify, expire, erase."""

    def __init__(self, threshold: float = 0.6, retention_days: int = 180) -> None:
        if not 0 < threshold < 4:
            raise BadInput(f"match threshold must be in (0, 4), got {threshold}")
        if retention_days <= 0:
            raise BadInput(f"retention must be a positive number of days, got {retention_days}")
        self.threshold = threshold
        self.retention_days = retention_days

    @abstractmethod
    def add(self, tenant_id: str, person_id: str, vector: object, seen_at: datetime) -> None:
        """Store one vector of ``person_id`` (seen at ``seen_at``) for the tenant."""

    @abstractmethod
    def search(self, tenant_id: str, vector: object, k: int = 1) -> list[Match]:
        """The ``k`` nearest vectors of the tenant, nearest first (may hold a person twice)."""

    @abstractmethod
    def erase(self, tenant_id: str, person_id: str) -> int:
        """Delete every vector of the person; the number deleted."""

    @abstractmethod
    def expire(self, now: datetime | None = None) -> int:
        """Delete vectors of persons not seen for ``retention_days``; the number deleted."""

    @abstractmethod
    def count(self, tenant_id: str) -> int:
        """Number of vectors stored for the tenant."""

    @abstractmethod
    def touch(self, tenant_id: str, person_id: str, seen_at: datetime) -> None:
        """Record that the person was seen again (keeps them from expiring)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections (default: nothing to do)."""

    def identify(
        self, tenant_id: str, vector: object, seen_at: datetime | None = None
    ) -> Identified:
        """The tenant's PersonID for this face, a new one when nothing is within ``threshold``.

        A matched person is touched (``last_seen``); the vector is added for a new person
        only, so one person's entry in the index stays small.
        """
        vec = check_vector(vector)
        seen_at = seen_at or utcnow()
        matches = self.search(tenant_id, vec, k=1)
        if matches and matches[0].distance <= self.threshold:
            best = matches[0]
            self.touch(tenant_id, best.person_id, seen_at)
            log.debug("tenant %s: matched %s at %.3f", tenant_id, best.person_id, best.distance)
            return Identified(best.person_id, False, best.distance)
        person_id = new_person_id()
        self.add(tenant_id, person_id, vec, seen_at)
        nearest = matches[0].distance if matches else None
        log.debug("tenant %s: new person %s (nearest %s)", tenant_id, person_id, nearest)
        return Identified(person_id, True, nearest)

    def cutoff(self, now: datetime | None) -> datetime:
        """The oldest ``last_seen`` that survives :meth:`expire` at ``now``."""
        return (now or utcnow()) - timedelta(days=self.retention_days)
