"""Store clustering: standardised features, k-means with k chosen by silhouette.

Stores are clustered within a *group*: by default one tenant's stores of one industry (a
café is never the peer of a supermarket, and a tenant's stores are never mixed with another
tenant's). With ``scope="industry"``, the stores of every tenant listed in
``sharing_tenants`` are clustered together per industry; the other tenants stay on their own.

Per group, a feature is used when at least ``min_feature_coverage`` of the stores have it;
a store missing a used feature gets the group median (and the feature is listed in its
``imputed`` column); features on a multiplicative scale are clustered on their logarithm.
Then every k in ``k_min..k_max`` (at most stores − 1) is fitted — k-means with a fixed seed and
``n_init`` restarts by default, or Ward's agglomerative clustering — and the k with the best
silhouette wins (ties: the smaller k). Each cluster is described by the
features whose centre lies furthest from the group mean, in standard deviations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from tenpo.core.errors import BadInput
from tenpo.ml.features import FEATURES, Feature
from tenpo.ml.params import MlParams

__all__ = [
    "ClusterResult",
    "GroupModel",
    "cluster_stores",
    "describe_centre",
    "group_key",
]

log = logging.getLogger(__name__)

_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# |z| of a cluster centre from which a feature is worth naming, and how many are named.
_DESCRIBE_Z = 0.5
_DESCRIBE_MAX = 3


@dataclass
class GroupModel:
    """What was fitted for one group: kept as an artifact and for explanations."""

    group_id: str
    features: list[str]
    medians: dict[str, float]
    scaler: StandardScaler | None
    centres: Any  # cluster centres in standard units (k × features), for assigning stores
    k: int
    silhouette: float | None
    silhouettes: dict[int, float] = field(default_factory=dict)
    centres_z: list[dict[str, float]] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    stores: int = 0


@dataclass
class ClusterResult:
    """Cluster of every store (``assignments``) and the fitted models per group."""

    assignments: pd.DataFrame
    models: dict[str, GroupModel]

    def metrics(self) -> dict[str, Any]:
        """Per group: stores, k, silhouette per k tried, features used (JSON-able)."""
        return {
            gid: {
                "stores": m.stores,
                "k": m.k,
                "silhouette": m.silhouette,
                "silhouettes": {str(k): s for k, s in m.silhouettes.items()},
                "features": m.features,
                "descriptions": m.descriptions,
            }
            for gid, m in sorted(self.models.items())
        }


def group_key(tenant_id: str, industry: str | None, params: MlParams) -> str:
    """The clustering group of a tenant's store of ``industry`` under ``params``."""
    industry = industry or "unknown"
    if params.scope == "industry" and tenant_id in params.sharing_tenants:
        return f"industry/{industry}"
    return f"{tenant_id}/{industry}"


def describe_centre(centre_z: dict[str, float]) -> str:
    """Words for a cluster centre: the features furthest from the mean, e.g. "high traffic"."""
    named = sorted(
        ((name, z) for name, z in centre_z.items() if abs(z) >= _DESCRIBE_Z),
        key=lambda item: (-abs(item[1]), item[0]),
    )[:_DESCRIBE_MAX]
    if not named:
        return "typical"
    return ", ".join(
        f"{'very ' if abs(z) >= 1.5 else ''}{'high' if z > 0 else 'low'} {_BY_NAME[n].label}"
        for n, z in named
    )


def _matrix(group: pd.DataFrame, params: MlParams) -> tuple[list[str], dict[str, float], Any]:
    used = [
        f.name
        for f in FEATURES
        if f.name in params.cluster_features
        and group[f.name].notna().mean() >= params.min_feature_coverage
        and group[f.name].notna().sum() >= 2
    ]
    medians = {n: float(group[n].median()) for n in used}
    columns = []
    for name in used:
        values = group[name].astype(float).fillna(medians[name]).to_numpy()
        if _BY_NAME[name].log_scale:
            values = np.log(np.clip(values, 1e-9, None))
        columns.append(values)
    matrix = np.column_stack(columns) if columns else np.zeros((len(group), 0))
    return used, medians, matrix


def _fit_group(gid: str, group: pd.DataFrame, params: MlParams) -> tuple[np.ndarray, GroupModel]:
    used, medians, matrix = _matrix(group, params)
    n = len(group)
    model = GroupModel(gid, used, medians, None, None, 1, None, stores=n)
    if not used or n < params.min_group_stores:
        labels = np.zeros(n, dtype=int)
        model.descriptions = ["all stores of the group (too few to cluster)"]
        model.centres_z = [dict.fromkeys(used, 0.0)]
        return labels, model
    scaler = StandardScaler().fit(matrix)
    z = scaler.transform(matrix)
    # A feature constant over the group has scale 1 and z 0: harmless.
    best: tuple[float, int, np.ndarray] | None = None
    # Identical stores count once: k-means cannot make more clusters than distinct points.
    distinct = len(np.unique(np.round(z, 9), axis=0))
    for k in range(params.k_min, min(params.k_max, distinct - 1) + 1):
        fitted = _fit_k(z, k, params)
        if len(set(fitted.tolist())) < 2:
            continue
        score = float(silhouette_score(z, fitted))
        model.silhouettes[k] = round(score, 4)
        if best is None or score > best[0] + 1e-9:
            best = (score, k, fitted)
    if best is None:
        labels = np.zeros(n, dtype=int)
        model.descriptions = ["all stores of the group (no structure found)"]
        model.centres_z = [dict.fromkeys(used, 0.0)]
        return labels, model
    score, k, fitted = best
    # Number clusters by size (largest first), then by centre, so labels are stable.
    sizes = np.bincount(fitted, minlength=k)
    centres = np.array([z[fitted == c].mean(axis=0) for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], tuple(centres[c])))
    relabel = {old: new for new, old in enumerate(order)}
    labels = np.array([relabel[c] for c in fitted])
    model.scaler, model.centres, model.k, model.silhouette = (
        scaler,
        centres[order],
        k,
        round(score, 4),
    )
    model.centres_z = [
        {n: round(float(v), 3) for n, v in zip(used, z[labels == c].mean(axis=0), strict=True)}
        for c in range(k)
    ]
    model.descriptions = [describe_centre(c) for c in model.centres_z]
    return labels, model


def _fit_k(z: np.ndarray, k: int, params: MlParams) -> np.ndarray:
    if params.method == "kmeans":
        # A group is tens to hundreds of stores: OpenMP threads cost more than they save
        # (10-100x slower on a busy machine), so k-means runs on one thread.
        with threadpool_limits(limits=1, user_api="openmp"):
            km = KMeans(n_clusters=k, random_state=params.seed, n_init=params.n_init).fit(z)
        return np.asarray(km.labels_, dtype=int)
    return np.asarray(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(z), int)


def cluster_stores(features: pd.DataFrame, params: MlParams | None = None) -> ClusterResult:
    """Cluster the stores of ``features`` (from :func:`store_features`) group by group.

    ``assignments`` has one row per store: tenant_id, store_id, industry, group_id,
    cluster (0 = largest of the group), cluster_id (``{group_id}#{cluster}``), description,
    k, silhouette, features (used), imputed (features filled with the group median) and
    distance (to the cluster centre, in standard units). Deterministic for a given seed.
    """
    params = params or MlParams()
    needed = {"tenant_id", "store_id", "industry", *(f.name for f in FEATURES)}
    if missing := sorted(needed - set(features.columns)):
        raise BadInput(f"store features lack column(s) {missing}")
    if features.duplicated(["tenant_id", "store_id"]).any():
        raise BadInput("store features list a store twice")
    frame = features.reset_index(drop=True).copy()
    frame["group_id"] = [
        group_key(t, i, params) for t, i in zip(frame["tenant_id"], frame["industry"], strict=True)
    ]
    frame = frame.sort_values(["group_id", "tenant_id", "store_id"]).reset_index(drop=True)
    rows: list[dict[str, Any]] = []
    models: dict[str, GroupModel] = {}
    for gid, group in frame.groupby("group_id", sort=True):
        labels, model = _fit_group(str(gid), group, params)
        models[str(gid)] = model
        _, _, matrix = _matrix(group, params) if model.scaler is not None else (0, 0, None)
        z = model.scaler.transform(matrix) if model.scaler is not None else None
        for pos, (_, store) in enumerate(group.iterrows()):
            c = int(labels[pos])
            distance = None
            if z is not None and model.centres is not None:
                centre = z[labels == c].mean(axis=0)
                distance = round(float(np.linalg.norm(z[pos] - centre)), 4)
            rows.append(
                {
                    "tenant_id": store["tenant_id"],
                    "store_id": store["store_id"],
                    "industry": store["industry"],
                    "group_id": str(gid),
                    "cluster": c,
                    "cluster_id": f"{gid}#{c}",
                    "description": model.descriptions[c],
                    "k": model.k,
                    "silhouette": model.silhouette,
                    "features": list(model.features),
                    "imputed": [n for n in model.features if pd.isna(store[n])],
                    "distance": distance,
                }
            )
        log.info(
            "clusters %s: %d stores, k=%d (silhouette %s), features %s",
            gid,
            model.stores,
            model.k,
            model.silhouette,
            ",".join(model.features),
        )
    columns = ["tenant_id", "store_id", "industry", "group_id", "cluster", "cluster_id"]
    columns += ["description", "k", "silhouette", "features", "imputed", "distance"]
    return ClusterResult(pd.DataFrame(rows, columns=columns), models)
