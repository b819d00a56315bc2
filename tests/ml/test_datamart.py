"""ML marts in the datamart (SQLite and PostgreSQL): replace per as-of date, scoped reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines, get_engine
from tenpo.datamart.ml import ensure_ml_schema, export_ml, read_benchmarks, store_targets
from tenpo.ml import MlParams, cluster_stores, estimate_targets, industry_benchmarks
from tenpo.ml.tables import to_arrow
from tests.datamart.factory import BACKENDS, temporary_database
from tests.ml.test_unit import TINY

AS_OF = date(2026, 10, 18)


@pytest.fixture(params=BACKENDS)
def dm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    pg = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    with temporary_database(request.param, tmp_path, pg) as url:
        yield Settings(data_dir=tmp_path / "data", datamart_url=url)
        dispose_engines()


def _export(settings: Settings, as_of: date) -> None:
    params = MlParams(min_group_stores=10)
    features = TINY.assign(tenant_id=["t1", "t1", "t2", "t2"])
    result = cluster_stores(features, params)
    clusters = result.assignments.merge(
        features.drop(columns=["industry", "missing"]), on=["tenant_id", "store_id"]
    )
    targets = estimate_targets(features, result.assignments, params, as_of=as_of)
    bench = industry_benchmarks(
        features, MlParams(benchmark_min_stores=2, benchmark_min_other_stores=2),
        period="2026-W42",
        period_start=as_of - timedelta(days=6), period_end=as_of,
    )  # fmt: skip
    export_ml(
        settings,
        "mart_store_clusters",
        as_of,
        to_arrow(clusters, "mart_store_clusters", business_date=as_of),
    )
    export_ml(settings, "mart_store_targets", as_of, to_arrow(targets, "mart_store_targets"))
    export_ml(
        settings, "mart_benchmarks", as_of, to_arrow(bench, "mart_benchmarks", business_date=as_of)
    )


def test_export_and_read_back(dm: Settings) -> None:
    _export(dm, AS_OF)
    _export(dm, AS_OF)  # replaced, not duplicated
    engine = get_engine(dm.datamart_db_url)
    cluster, targets = store_targets(engine, "t1", "s1")
    assert cluster is not None and cluster.cluster_id == "t1/cafe#0"
    assert cluster.business_date == AS_OF
    by_kpi = {t.kpi: t for t in targets}
    assert len(targets) == 5
    # Peers of t1/s1: only s2 (its tenant has two stores); P75 of (0.1, 0.2) = 0.175.
    assert by_kpi["capture_rate"].target == pytest.approx(0.175)
    assert by_kpi["capture_rate"].uplift_per_day == Decimal("37500.00")
    assert by_kpi["capture_rate"].peers == {"stores": ["s2"], "other_tenants_stores": 0, "n": 2}
    assert store_targets(engine, "t2", "s1") == (None, [])  # t2 has no store s1
    period, cells = read_benchmarks(engine, industry="cafe")
    assert period == "2026-W42" and cells
    atv = next(c for c in cells if c.kpi == "atv" and c.size_band == "all")
    assert atv.published and (atv.stores_band, atv.tenants_band) == ("1-4", "1-4")
    assert atv.median == pytest.approx(1300.0, rel=0.1)  # noised and rounded
    assert json.dumps([c.__dict__ for c in cells], default=str).count("s1") == 0


def test_export_refuses_rows_of_another_date(dm: Settings) -> None:
    targets = estimate_targets(
        TINY, cluster_stores(TINY, MlParams(min_group_stores=10)).assignments, as_of=AS_OF
    )
    with pytest.raises(BadInput, match="business_date"):
        export_ml(
            dm,
            "mart_store_targets",
            AS_OF + timedelta(days=1),
            to_arrow(targets, "mart_store_targets"),
        )
    with pytest.raises(BadInput, match="unknown ML datamart table"):
        export_ml(dm, "mart_nope", AS_OF, to_arrow(targets, "mart_store_targets"))


def test_benchmarks_of_the_former_release_are_dropped(dm: Settings) -> None:
    # Its exact counts, means and quantiles let a tenant recover other stores' figures.
    engine = get_engine(dm.datamart_db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE mart_benchmarks (business_date DATE, period VARCHAR(16), "
                "industry VARCHAR(64), size_band VARCHAR(8), kpi VARCHAR(64), stores INTEGER, "
                "mean DOUBLE PRECISION)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO mart_benchmarks VALUES "
                "('2026-10-18', '2026-W42', 'cafe', 'all', 'atv', 5, 1234.5)"
            )
        )
    ensure_ml_schema(engine)
    assert read_benchmarks(engine) == (None, [])
    _export(dm, AS_OF)
    assert read_benchmarks(engine)[1]


def test_a_store_manager_cannot_infer_unassigned_peers(dm: Settings) -> None:
    # t1 has s1 and s2; a manager of s1 alone once read s2's figure as 2 × median − own.
    _export(dm, AS_OF)
    engine = get_engine(dm.datamart_db_url)
    s2 = TINY.set_index("store_id").loc["s2"]
    _, admin = store_targets(engine, "t1", "s1")  # the whole tenant: may read s2 anyway
    capture = next(t for t in admin if t.kpi == "capture_rate")
    assert 2 * capture.peer_median - capture.actual == pytest.approx(s2.capture_rate)
    _, mine = store_targets(engine, "t1", "s1", frozenset({"s1"}))
    for t in mine:
        assert (t.peer_p25, t.peer_median, t.peer_target, t.target) == (None,) * 4
        assert t.headroom is None and t.uplift_per_day is None and not t.is_primary
        assert "s2" not in json.dumps(t.peers) and "hidden" in t.explanation
        assert "%" not in t.explanation and "¥" not in t.explanation  # no figures in words
    _, both = store_targets(engine, "t1", "s1", frozenset({"s1", "s2"}))
    assert next(t for t in both if t.kpi == "capture_rate").peer_median == capture.peer_median


def test_peer_statistics_over_five_stores_are_shown_to_a_store_manager() -> None:
    from tenpo.datamart.ml import TargetRecord, visible_targets

    def record(n: int, stores: list[str], others: int) -> TargetRecord:
        return TargetRecord(
            kpi="atv", actual=1000.0, target=1200.0, headroom=200.0, quantile=0.75,
            peer_basis="cluster", peers_n=n, peer_p25=900.0, peer_median=1100.0,
            peer_target=1200.0, uplift_per_day=Decimal("10.00"), uplift_share=0.2,
            is_primary=True, explanation="atv ...",
            peers={"stores": stores, "other_tenants_stores": others, "n": n},
        )  # fmt: skip

    many = visible_targets([record(6, ["a", "b", "c"], 2)], frozenset({"me"}))[0]
    assert many.peer_median == 1100.0 and many.peers["stores"] == []  # shown, not named
    across = visible_targets([record(3, ["a"], 1)], None)[0]  # another tenant's peer
    assert across.peer_median is None and across.target is None
