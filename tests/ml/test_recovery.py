"""Back-test: targets from context peers rank stores like their true headroom.

The simulator plants each store's context (location type: street traffic, weekly and hourly
demand shape) and a latent execution per lever; ``truth/targets.csv`` says what each store
would reach at top-quartile execution in its context. tenpo clusters on context only and
compares the levers against the cluster's P75: its relative headroom must rank stores like
the true one (Spearman ≥ 0.7 for net sales, ≥ 0.6 per lever, default settings).
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from tenpo.ml import MlParams, cluster_stores, estimate_targets, store_features
from tenpo.simulate import SimConfig
from tenpo.simulate.daily import StoreDays, simulate_store_days
from tenpo.simulate.truth import TARGET_KPIS, target_truth
from tests.ml.conftest import master, truth_frame

log = logging.getLogger(__name__)

pytestmark = pytest.mark.slow

BACKTEST = SimConfig(
    seed=11,
    tenants=2,
    stores=240,
    days=28,
    industries=("supermarket", "drugstore"),
    traffic_scale=0.2,
    rgb_camera_share=0.0,
    tof_camera_share=0.0,
    move_register=False,
    initiatives_per_tenant=0,
)


@pytest.fixture(scope="module")
def backtest() -> tuple[StoreDays, pd.DataFrame, pd.DataFrame]:
    sd = simulate_store_days(BACKTEST)
    features = store_features(
        truth_frame(sd.daily),
        master(sd),
        end=sd.dates[-1],
        weeks=4,
        hourly=sd.hourly,  # type: ignore[arg-type]
    )
    params = MlParams()
    assignments = cluster_stores(features, params).assignments
    targets = estimate_targets(features, assignments, params, as_of=sd.dates[-1])
    return sd, assignments, targets


def test_backtest_headroom_ranks_stores_like_the_truth(
    backtest: tuple[StoreDays, pd.DataFrame, pd.DataFrame],
) -> None:
    sd, assignments, targets = backtest
    assert len(sd.stores) >= 200
    truth = {
        (t.tenant_id, t.store_code, t.kpi): t
        for t in target_truth(sd, sd.daily, window_days=len(sd.dates))
    }
    planted = [
        sd.store(t, s).archetype
        for t, s in zip(assignments.tenant_id, assignments.store_id, strict=True)
    ]
    groups = [f"{g}/{p}" for g, p in zip(assignments.group_id, planted, strict=True)]
    ari = adjusted_rand_score(groups, assignments.cluster_id)
    figures = {}
    for kpi in TARGET_KPIS:
        rows = targets[targets.kpi == kpi]
        estimate = (rows.headroom / rows.actual).astype(float)
        true = [
            (truth[(t, s, kpi)].achievable - truth[(t, s, kpi)].actual) / truth[(t, s, kpi)].actual
            for t, s in zip(rows.tenant_id, rows.store_id, strict=True)
        ]
        assert len(rows) == len(sd.stores)
        figures[kpi] = float(spearmanr(estimate, true).statistic)
    report = ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
    line = f"backtest ({len(sd.stores)} stores): ARI vs planted context {ari:.3f}; {report}"
    print(line)  # noqa: T201
    log.info("backtest: ARI %.3f; %s", ari, report)
    assert figures["net_sales"] >= 0.7
    for kpi in ("capture_rate", "conversion_rate", "atv", "upt"):
        assert figures[kpi] >= 0.6, (kpi, figures[kpi])
    assert ari >= 0.5  # reported; context groups are recovered well beyond chance


def test_clusters_are_made_of_context_only(
    backtest: tuple[StoreDays, pd.DataFrame, pd.DataFrame],
) -> None:
    _, assignments, _ = backtest
    levers = {"capture_rate", "conversion_rate", "atv", "upt"}
    assert all(not (set(f) & levers) for f in assignments.features)
