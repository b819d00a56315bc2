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


def test_bench_scale_cli_writes_its_result(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "scale",
            "--stores",
            "2",
            "--days",
            "2",
            "--devices",
            "http",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "scale_2x2.json").read_text())
    assert {"name", "value", "unit", "baseline", "ratio", "target", "met"} <= set(body)
    assert body["name"] == "scale_2x2" and body["ground_truth_exact"] is True
    assert body["device_path"] == "http" and "send_mqtt" not in body["stages"]
    assert body["stages"]["api"]["rows"] == 4


def test_bench_scale_refuses_bad_options(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["bench", "scale", "--stores", "3", "--tenants", "2"])
    assert result.exit_code != 0 and "multiple of tenants" in result.output
    result = CliRunner().invoke(app, ["bench", "scale", "--datamart", "oracle"])
    assert result.exit_code != 0 and "sqlite or postgresql" in result.output
