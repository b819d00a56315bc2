"""Scale smoke test: 30 stores × 14 days through the whole platform, device events over MQTT,
every store-day read back through the API equal to the ground truth (no timing asserted).

It guards against the defects issue 13 found one step above demo size: a fixed MQTT timeout,
a broker silently dropping a subscriber's queue, and one odd visit aborting every mart.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.settings import Settings
from tenpo.flow import read_truth
from tenpo.flow.scale import PLATFORM_STAGES, run_scale
from tests import _services

pytestmark = pytest.mark.slow


def test_30_stores_14_days_through_mqtt_equal_the_truth(settings: Settings) -> None:
    host, port, protocol = _services.mqtt_broker()
    cfg = settings.model_copy(
        update={"mqtt_host": host, "mqtt_port": port, "mqtt_protocol": protocol}
    )
    report = run_scale(cfg, settings.data_dir / "scale", stores=30, days=14, mqtt=True)
    assert report.mismatches == []
    out = report.as_dict()
    assert out["device_path"] == "mqtt" and out["ground_truth_exact"] is True
    # Every store-day of the truth came back from the API (and was compared).
    truth = read_truth(settings.data_dir / "scale" / "sim")
    assert report.store_days_checked == len(truth) >= 30 * 12
    stages = out["stages"]
    assert set(PLATFORM_STAGES) - {"ml"} <= set(stages)
    mqtt = stages["send_mqtt"]
    assert mqtt["files"] >= 30 * 14 and mqtt["events"] > 0
    assert report.raw_rows >= stages["stream"]["rows"] > mqtt["events"]
    assert out["lake_bytes"]["landing"] > 0 and out["lake_bytes"]["tables"] > 0
    assert out["lake_bytes"]["quarantine"] == 0
    assert out["peak_rss_bytes"] > 0 and out["e2e_seconds"] > 0


def _databases(server_url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(server_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


def test_bench_scale_cli_writes_its_result(
    settings: Settings, tmp_path, pg_server_url: str
) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        ["bench", "scale", "--stores", "2", "--days", "2", "--devices", "http"]
        + ["--datamart", "postgresql", "--pg-server", pg_server_url, "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "scale_2x2.json").read_text())
    # The datamart database was the run's own (its run id in the name) and is dropped.
    run_id = body["run_id"]
    assert len(run_id) == 8 and body["databases"] == [f"tenpo_scale_2x2_{run_id}_datamart"]
    assert body["databases_kept"] is False
    assert not set(body["databases"]) & _databases(pg_server_url)
    assert {"name", "value", "unit", "baseline", "ratio", "target", "met"} <= set(body)
    assert body["name"] == "scale_2x2" and body["ground_truth_exact"] is True
    assert body["device_path"] == "http" and "send_mqtt" not in body["stages"]
    assert body["stages"]["api"]["rows"] == 4
    assert body["complete"] is True and body["failed_stage"] is None
    # Peak RSS of the process tree, per stage and overall.
    assert all(st["peak_rss_bytes"] > 0 for st in body["stages"].values())
    assert body["peak_rss_bytes"] >= max(st["peak_rss_bytes"] for st in body["stages"].values())
    # CPU of the process tree per stage: user + system, summed end to end.
    stages = body["stages"]
    assert all(st["cpu_seconds"] >= 0 for st in stages.values())
    assert stages["stream"]["cpu_seconds"] > 0 and stages["marts"]["cpu_seconds"] > 0
    for st in stages.values():
        assert st["cpu_seconds"] == pytest.approx(
            st["cpu_user_seconds"] + st["cpu_system_seconds"], abs=0.002
        )
    platform = sum(st["cpu_seconds"] for n, st in stages.items() if n in PLATFORM_STAGES)
    assert body["e2e_cpu_seconds"] == pytest.approx(platform, abs=0.01)
    assert "CPU s" in result.output


def test_a_failing_stage_leaves_the_stages_before_it_and_its_error(
    settings: Settings, tmp_path, monkeypatch, pg_server_url: str
) -> None:  # type: ignore[no-untyped-def]
    import tenpo.pipelines.run

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tenpo.pipelines.run, "materialize_dates", broken)
    result = CliRunner().invoke(
        app,
        ["bench", "scale", "--stores", "2", "--days", "1", "--devices", "http"]
        + ["--datamart", "postgresql", "--pg-server", pg_server_url, "--out", str(tmp_path)],
    )
    assert result.exit_code != 0
    body = json.loads((tmp_path / "scale_2x1.json").read_text())
    # A failed run drops its database too.
    assert body["databases"] and not set(body["databases"]) & _databases(pg_server_url)
    assert body["complete"] is False and body["met"] is False
    assert body["failed_stage"] == "marts" and "disk on fire" in body["error"]
    assert {"simulate", "register", "send_http", "stream", "marts"} <= set(body["stages"])
    assert body["stages"]["stream"]["rows"] > 0 and "api" not in body["stages"]


def test_rss_sampler_counts_child_processes() -> None:
    import subprocess
    import sys

    from tenpo.flow.scale import RssSampler

    sampler = RssSampler()
    alone = sampler.tree_rss()
    # A child holding ~200 MiB shows in the tree's RSS.
    code = (
        "import sys; b = bytearray(200 * 2**20); sys.stdout.write('ok'); sys.stdout.flush(); "
        "input()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.read(2) == b"ok"
        assert sampler.tree_rss() >= alone + 150 * 2**20
    finally:
        child.communicate(b"\n", timeout=10)


def test_bench_scale_refuses_bad_options(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["bench", "scale", "--stores", "3", "--tenants", "2"])
    assert result.exit_code != 0 and "multiple of tenants" in result.output
    result = CliRunner().invoke(app, ["bench", "scale", "--datamart", "oracle"])
    assert result.exit_code != 0 and "sqlite or postgresql" in result.output
