"""simulate → landing → streamer → KPI marts (Dagster) → ML assets → datamart → read API.

The features here come from marts computed by tenpo's own jobs, not from the simulator's
truth: two tenants of six cafés each over two weeks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import joblib
import pyarrow.compute as pc
import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from tenpo.api import create_app
from tenpo.bus.memory import MemoryBus
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines
from tenpo.flow import register_chain, source_files
from tenpo.lake import Lake, open_lake
from tenpo.lake.landing import LandingZone
from tenpo.ml import LEVERS
from tenpo.pipelines import materialize_dates
from tenpo.pipelines.ml import read_ml_mart
from tenpo.pipelines.run import materialize_ml, resolve_selection
from tenpo.simulate import SimConfig, simulate
from tenpo.streamer import Streamer
from tenpo.warehouse import open_warehouse

pytestmark = pytest.mark.slow

START = date(2026, 10, 5)
DAYS = 14
AS_OF = START + timedelta(days=DAYS - 1)


@dataclass
class Run:
    settings: Settings
    lake: Lake
    control: ControlPlane
    keys: dict[str, str]
    stores: dict[str, list[str]]  # tenant → store ids


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("ml")
    settings = Settings(data_dir=root / "data")
    settings.data_dir.mkdir(parents=True)
    sim = root / "sim"
    config = SimConfig(
        seed=11,
        tenants=2,
        stores_per_tenant=6,
        days=DAYS,
        start_date=START,
        industries=("cafe",),
        traffic_scale=0.3,
        rgb_camera_share=0.5,
        tof_camera_share=0.0,
    )
    simulate(config, sim)
    chain = json.loads((sim / "chain.json").read_text(encoding="utf-8"))
    control = ControlPlane.open(settings.control_db_url)
    keys = register_chain(control, chain)
    lake, bus = open_lake(settings.lake_root), MemoryBus()
    landing = LandingZone(lake, bus)
    streamer = Streamer(settings, lake, bus, control.directory())
    files = source_files(sim)
    for batch in (
        [f for f in files if f[0] == "pos_vendor_a_master"],
        [f for f in files if f[0] != "pos_vendor_a_master"],
    ):
        for source, tenant, path in batch:
            landing.land(source, tenant, path.read_bytes(), path.suffix.lstrip("."))
        streamer.run_until_idle(timeout=0.2)
    dates = [START + timedelta(days=i) for i in range(DAYS)]
    instance = DagsterInstance.ephemeral()
    # The KPI group (marts, exports, the store list); the ML run below has its own parameters.
    materialize_dates(settings, dates, resolve_selection(only=["kpis"]), instance=instance)
    stores = {t["id"]: control.list_stores(t["id"]) for t in chain["tenants"]}
    materialize_ml(settings, instance=instance, window_weeks=2)
    yield Run(
        settings,
        lake,
        control,
        keys,
        {t: [s.store_id for s in ss] for t, ss in stores.items()},
    )
    control.dispose()
    dispose_engines()
    instance.dispose()


def test_ml_marts_are_computed_from_the_kpi_marts(run: Run) -> None:
    clusters = read_ml_mart(run.lake, "mart_store_clusters", AS_OF)
    assert clusters.num_rows == 12
    assert set(pc.unique(clusters["tenant_id"]).to_pylist()) == {"t1", "t2"}
    assert set(pc.unique(clusters["group_id"]).to_pylist()) == {"t1/cafe", "t2/cafe"}
    # Capture rate of a store = Σ visitors / Σ passers-by of its mart_store_daily rows.
    store = clusters.to_pylist()[0]
    with open_warehouse(run.settings) as wh:
        daily = wh.to_arrow(wh.table("mart_store_daily")).to_pylist()
    mine = [d for d in daily if d["store_id"] == store["store_id"] and d["has_counter"]]
    want = sum(d["visitors"] for d in mine) / sum(d["passersby"] for d in mine)
    assert store["capture_rate"] == pytest.approx(want)
    targets = read_ml_mart(run.lake, "mart_store_targets", AS_OF)
    assert set(pc.unique(targets["kpi"]).to_pylist()) == {*(lv.kpi for lv in LEVERS), "net_sales"}
    bench = read_ml_mart(run.lake, "mart_benchmarks", AS_OF)
    assert "tenant_id" not in bench.column_names
    published = bench.filter(pc.field("published")).to_pylist()
    assert any(b["industry"] == "cafe" and b["size_band"] == "all" for b in published)
    assert all(b["stores_band"] == "10-19" and b["tenants_band"] == "1-4" for b in published)


def test_artifacts_hold_the_fitted_models_params_and_metrics(run: Run) -> None:
    keys = run.lake.list("artifacts/ml_store_clusters/")
    names = {k.rsplit("/", 1)[1] for k in keys}
    assert names == {"models.joblib", "params.json", "metrics.json"}
    models_key = next(k for k in keys if k.endswith("models.joblib"))
    models = joblib.load(io.BytesIO(run.lake.get(models_key)))
    assert set(models) == {"t1/cafe", "t2/cafe"}
    metrics = json.loads(run.lake.get(models_key.replace("models.joblib", "metrics.json")))
    assert metrics["stores"] == 12 and metrics["as_of"] == AS_OF.isoformat()
    params = json.loads(run.lake.get(models_key.replace("models.joblib", "params.json")))
    assert params["window_weeks"] == 2 and params["target_quantile"] == 0.75


@pytest.fixture(scope="module")
def client(run: Run) -> Iterator[TestClient]:
    with TestClient(create_app(run.settings, control=run.control)) as c:
        yield c


def _auth(run: Run, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {run.keys[tenant]}"}


def test_targets_endpoint_serves_the_callers_store(run: Run, client: TestClient) -> None:
    store = run.stores["t1"][0]
    resp = client.get(f"/v1/stores/{store}/targets", headers=_auth(run, "t1"))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["as_of"] == AS_OF.isoformat()
    assert body["cluster"]["cluster_id"].startswith("t1/cafe#")
    assert body["cluster"]["description"]
    kpis = {t["kpi"]: t for t in body["items"]}
    assert set(kpis) == {*(lv.kpi for lv in LEVERS), "net_sales"}
    assert body["primary_lever"] in (None, *(lv.kpi for lv in LEVERS))
    for t in body["items"]:
        if t["kpi"] != "net_sales" and t["actual"] is not None:
            assert t["target"] >= t["actual"]
            assert t["headroom"] == pytest.approx(t["target"] - t["actual"])
            assert set(t["peers"]["stores"]) <= set(run.stores["t1"])
            assert t["peers"]["other_tenants_stores"] == 0


def test_store_manager_sees_peer_statistics_of_five_stores_only(
    run: Run, client: TestClient
) -> None:
    mine = run.stores["t1"][0]
    run.control.create_user("t1", "one-store@t1.jp", "a long password", "store_manager", [mine])
    c = TestClient(client.app, base_url="http://127.0.0.1")  # loopback: cookie not Secure
    c.post("/v1/auth/login", json={"email": "one-store@t1.jp", "password": "a long password"})
    resp = c.get(f"/v1/stores/{mine}/targets")
    assert resp.status_code == 200, resp.text
    assert not any(s in resp.text for s in run.stores["t1"] if s != mine)  # never named
    admin = client.get(f"/v1/stores/{mine}/targets", headers=_auth(run, "t1")).json()
    full = {t["kpi"]: t for t in admin["items"]}
    for t in resp.json()["items"]:
        if t["kpi"] == "net_sales":
            continue
        if t["peers_n"] >= 5:
            assert t["peer_median"] == full[t["kpi"]]["peer_median"]
        else:  # 2 × median − own would give the unassigned peers away
            assert t["peer_median"] is None and t["peer_target"] is None and t["target"] is None
            assert full[t["kpi"]]["peer_median"] is not None  # the tenant admin sees them


def test_no_store_of_one_tenant_appears_in_another_tenants_results(
    run: Run, client: TestClient
) -> None:
    other = run.stores["t1"][0]
    resp = client.get(f"/v1/stores/{other}/targets", headers=_auth(run, "t2"))
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    t1_ids = set(run.stores["t1"])
    for store in run.stores["t2"]:
        text = client.get(f"/v1/stores/{store}/targets", headers=_auth(run, "t2")).text
        assert not any(s in text for s in t1_ids)
    bench = client.get("/v1/benchmarks", params={"industry": "cafe"}, headers=_auth(run, "t2"))
    assert bench.status_code == 200
    body = bench.json()
    assert body["period"] == f"{AS_OF.isocalendar()[0]}-W{AS_OF.isocalendar()[1]:02d}"
    assert any(b["published"] and b["kpi"] == "atv" for b in body["items"])
    # Aggregates only: no store id and no tenant id anywhere in the answer.
    assert not any(s in bench.text for tenant in run.stores.values() for s in tenant)
    assert '"t1"' not in bench.text and '"t2"' not in bench.text


def test_ml_endpoints_refuse_bad_requests(run: Run, client: TestClient) -> None:
    assert client.get("/v1/benchmarks").status_code == 401
    bad = client.get("/v1/benchmarks", params={"period": "week 3"}, headers=_auth(run, "t1"))
    assert bad.status_code == 422 and "ISO week" in bad.json()["detail"]
    none = client.get("/v1/benchmarks", params={"industry": "bakery"}, headers=_auth(run, "t1"))
    assert none.status_code == 200 and none.json()["items"] == []


def test_rerun_replaces_the_as_of_partition(run: Run, tmp_path: Path) -> None:
    before = read_ml_mart(run.lake, "mart_store_targets", AS_OF)
    materialize_ml(run.settings, as_of=AS_OF, window_weeks=2)
    after = read_ml_mart(run.lake, "mart_store_targets", AS_OF)
    assert after.num_rows == before.num_rows
    assert after.sort_by([("store_id", "ascending"), ("kpi", "ascending")]).equals(
        before.sort_by([("store_id", "ascending"), ("kpi", "ascending")])
    )


def test_initiative_effect_from_the_kpi_marts(run: Run, client: TestClient) -> None:
    """An initiative registered over HTTP is measured by the assets from mart_store_daily
    (the same figures as the estimator on the warehouse's rows) and served per tenant."""
    from tenpo.ml.initiatives import InitiativeSpec, estimate_effect, kpi_frame
    from tenpo.pipelines.run import materialize_initiatives

    admin = run.control.create_api_key("t1", "admin", ["admin"])[1]
    treated = run.stores["t1"][0]
    start = START + timedelta(days=10)
    body = {
        "initiative_id": "t1-e2e",
        "name": "接客強化",
        "kind": "staffing",
        "kpi": "conversion_rate",
        "stores": [treated],
        "start": start.isoformat(),
        "end": AS_OF.isoformat(),
    }
    resp = client.post("/v1/initiatives", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert resp.status_code == 201, resp.text
    materialize_initiatives(run.settings, instance=DagsterInstance.ephemeral())
    got = client.get("/v1/initiatives/t1-e2e/effect", headers=_auth(run, "t1"))
    assert got.status_code == 200, got.text
    items = {e["kpi"]: e for e in got.json()["items"]}
    assert got.json()["as_of"] == AS_OF.isoformat()
    # By hand: the estimator over the warehouse's mart_store_daily rows, with the busy stores
    # of every registered initiative (the simulator's planted ones too) left out.
    with open_warehouse(run.settings) as wh:
        daily = wh.to_arrow(wh.table("mart_store_daily")).to_pandas()
    busy: dict[str, list[tuple[date, date]]] = {}
    for i in run.control.list_initiatives("t1"):
        for s in i.store_ids:
            busy.setdefault(s, []).append((i.start, i.end))
    groups = {s: "cafe" for s in run.stores["t1"]}
    spec = InitiativeSpec("t1", "t1-e2e", (treated,), start, AS_OF)
    want = {e.kpi: e for e in estimate_effect(kpi_frame(daily), spec, busy=busy, groups=groups)}
    for kpi, e in items.items():
        assert e["status"] == want[kpi].status
        assert set(e["controls"]) == set(want[kpi].controls) <= set(run.stores["t1"])
        if e["status"] == "ok":
            assert e["effect"] == pytest.approx(want[kpi].effect)
            assert e["pre_days"] == 10 and e["post_days"] == 4
    assert items["net_sales"]["status"] == "ok"
    # The planted initiatives of the demo chain are registered too; tenant t2 sees none of t1's.
    listed = client.get("/v1/initiatives", headers=_auth(run, "t2")).json()["items"]
    assert listed and all(i["initiative_id"].startswith("t2-") for i in listed)
    assert client.get("/v1/initiatives/t1-e2e/effect", headers=_auth(run, "t2")).status_code == 404
