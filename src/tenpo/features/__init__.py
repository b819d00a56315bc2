"""Feature DB: per-tenant face vectors with anonymous PersonIDs (FAISS files or pgvector)."""

from __future__ import annotations

from tenpo.core.settings import Settings
from tenpo.features.base import DIM, FeatureStore, Identified, Match

__all__ = ["DIM", "FeatureStore", "Identified", "Match", "open_feature_store"]


def open_feature_store(settings: Settings) -> FeatureStore:
    """The Feature DB that ``settings.feature_store`` selects (the one place that chooses)."""
    if settings.feature_store == "pgvector":
        from tenpo.core.errors import ConfigError
        from tenpo.features.pgvector_store import PgVectorFeatureStore

        if not settings.feature_pg_url:
            raise ConfigError("feature_store=pgvector needs TENPO_FEATURE_PG_URL")
        return PgVectorFeatureStore(
            settings.feature_pg_url,
            threshold=settings.feature_match_threshold,
            retention_days=settings.feature_retention_days,
        )
    from tenpo.features.faiss_store import FaissFeatureStore

    return FaissFeatureStore(
        settings.feature_path,
        threshold=settings.feature_match_threshold,
        retention_days=settings.feature_retention_days,
        ann_min_vectors=settings.feature_ann_min_vectors,
    )
