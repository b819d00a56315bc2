"""Store clustering, target estimation and industry benchmarks (pure functions).

:func:`store_features` turns the KPI marts into one feature row per store over a trailing
window; :func:`cluster_stores` groups comparable stores; :func:`estimate_targets` sets each
store's targets from its peers and prices the headroom through the sales tree;
:func:`industry_benchmarks` publishes KPI distributions per industry that determine no
store's figure. No
Dagster or FastAPI here: :mod:`tenpo.pipelines.ml` and the API wire these to storage.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenpo.ml.benchmarks import (
        ALL_SIZES,
        BENCHMARK_KPIS,
        industry_benchmarks,
        period_label,
        size_band,
    )
    from tenpo.ml.clustering import ClusterResult, GroupModel, cluster_stores, describe_centre
    from tenpo.ml.features import FEATURES, Feature, feature_window, store_features
    from tenpo.ml.params import MlParams
    from tenpo.ml.targets import LEVERS, TREE_LEVERS, estimate_targets, uplift

# Imported on first use (PEP 562): readers of the ML marts (the API, tenpo.ml.tables) must not
# pay for scikit-learn and SciPy, which only the clustering needs.
_HOMES = {
    **dict.fromkeys(
        ("ALL_SIZES", "BENCHMARK_KPIS", "industry_benchmarks", "period_label", "size_band"),
        "benchmarks",
    ),
    **dict.fromkeys(
        ("ClusterResult", "GroupModel", "cluster_stores", "describe_centre"), "clustering"
    ),
    **dict.fromkeys(("FEATURES", "Feature", "feature_window", "store_features"), "features"),
    "MlParams": "params",
    **dict.fromkeys(("LEVERS", "TREE_LEVERS", "estimate_targets", "uplift"), "targets"),
}


def __getattr__(name: str) -> Any:
    """The public names, imported from their module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tenpo.ml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tenpo.ml.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ALL_SIZES",
    "BENCHMARK_KPIS",
    "FEATURES",
    "LEVERS",
    "TREE_LEVERS",
    "ClusterResult",
    "Feature",
    "GroupModel",
    "MlParams",
    "cluster_stores",
    "describe_centre",
    "estimate_targets",
    "feature_window",
    "industry_benchmarks",
    "period_label",
    "size_band",
    "store_features",
    "uplift",
]
