"""pgvector Feature DB: face vectors in a PostgreSQL table with the ``vector`` extension.

Table ``tenpo_face_features`` (created on first use, with the extension): one row per
vector with tenant, PersonID and last-seen time. Every query filters by tenant first.
Searches are exact (``ORDER BY embedding <-> q``) unless ``ann_index`` adds an HNSW index
(pgvector ≥ 0.8 then scans it iteratively so the tenant filter cannot starve the result).
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import ConfigError
from tenpo.features.base import DIM, FeatureStore, Match, check_tenant, check_vector

__all__ = ["PgVectorFeatureStore"]

log = logging.getLogger(__name__)

TABLE = "tenpo_face_features"


def _literal(vector: object) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in check_vector(vector).tolist()) + "]"


class PgVectorFeatureStore(FeatureStore):
    """Feature DB in PostgreSQL + pgvector (``url``: a SQLAlchemy URL, psycopg driver)."""

    def __init__(
        self,
        url: str | Engine,
        *,
        threshold: float = 0.6,
        retention_days: int = 180,
        ann_index: bool = False,
    ) -> None:
        super().__init__(threshold, retention_days)
        self.engine = url if isinstance(url, Engine) else sa.create_engine(url)
        self.ann_index = ann_index
        self._create()

    def _create(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        except sa.exc.DBAPIError as exc:
            raise ConfigError(f"PostgreSQL has no pgvector extension: {exc.orig}") from exc
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " id bigserial PRIMARY KEY, tenant_id text NOT NULL, person_id text NOT NULL,"
                    f" embedding vector({DIM}) NOT NULL, last_seen timestamptz NOT NULL)"
                )
            )
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_person ON {TABLE} (tenant_id, person_id)"
                )
            )
            if self.ann_index:
                conn.execute(
                    sa.text(
                        f"CREATE INDEX IF NOT EXISTS {TABLE}_hnsw ON {TABLE}"
                        " USING hnsw (embedding vector_l2_ops)"
                    )
                )

    def add(self, tenant_id: str, person_id: str, vector: object, seen_at: datetime) -> None:
        """Insert one vector of ``person_id``."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {TABLE} (tenant_id, person_id, embedding, last_seen)"
                    " VALUES (:t, :p, CAST(:v AS vector), :s)"
                ),
                {"t": check_tenant(tenant_id), "p": person_id, "v": _literal(vector), "s": seen_at},
            )

    def search(self, tenant_id: str, vector: object, k: int = 1) -> list[Match]:
        """The ``k`` nearest vectors of this tenant (Euclidean distance)."""
        with self.engine.begin() as conn:
            if self.ann_index:
                conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = conn.execute(
                sa.text(
                    f"SELECT person_id, embedding <-> CAST(:v AS vector) AS d FROM {TABLE}"
                    " WHERE tenant_id = :t ORDER BY d LIMIT :k"
                ),
                {"t": check_tenant(tenant_id), "v": _literal(vector), "k": k},
            ).all()
        return [Match(r.person_id, float(r.d)) for r in rows]

    def touch(self, tenant_id: str, person_id: str, seen_at: datetime) -> None:
        """Move the person's last-seen time forward."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"UPDATE {TABLE} SET last_seen = GREATEST(last_seen, :s)"
                    " WHERE tenant_id = :t AND person_id = :p"
                ),
                {"t": check_tenant(tenant_id), "p": person_id, "s": seen_at},
            )

    def erase(self, tenant_id: str, person_id: str) -> int:
        """Delete every vector of the person."""
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.text(f"DELETE FROM {TABLE} WHERE tenant_id = :t AND person_id = :p"),
                {"t": check_tenant(tenant_id), "p": person_id},
            ).rowcount
        log.info("erased person %s of tenant %s (%d vectors)", person_id, tenant_id, n)
        return int(n)

    def expire(self, now: datetime | None = None) -> int:
        """Delete vectors of persons not seen within the retention (all tenants)."""
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.text(f"DELETE FROM {TABLE} WHERE last_seen < :c"), {"c": self.cutoff(now)}
            ).rowcount
        return int(n)

    def count(self, tenant_id: str) -> int:
        """Vectors stored for the tenant."""
        with self.engine.begin() as conn:
            n = conn.execute(
                sa.text(f"SELECT count(*) FROM {TABLE} WHERE tenant_id = :t"),
                {"t": check_tenant(tenant_id)},
            ).scalar_one()
        return int(n)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()
