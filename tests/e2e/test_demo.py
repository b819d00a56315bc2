"""End to end: `tenpo demo --no-serve` equals the simulator's ground truth."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.settings import Settings
from tenpo.flow import compare_with_truth, run_demo

pytestmark = pytest.mark.slow


def test_demo_matches_ground_truth(settings: Settings) -> None:
    """Half the stores in Europe/London, over its fall-back night (25 Oct 2026): every
    timestamp carries the offset of its instant, and the exact check holds."""
    result = run_demo(
        settings, stores=4, days=3, seed=11, start=date(2026, 10, 24), dst_store_share=0.5
    )
    assert result.mismatches == []
    chain = (settings.data_dir / "demo" / "sim" / "chain.json").read_text(encoding="utf-8")
    assert '"Europe/London"' in chain and '"Asia/Tokyo"' in chain
    assert {r["business_date"] for r in result.rows} == {"2026-10-24", "2026-10-25", "2026-10-26"}
    assert result.rows, "the API returned no KPI rows"
    truth_file = settings.data_dir / "demo" / "sim" / "truth" / "daily_kpis.csv"
    with truth_file.open(encoding="utf-8") as fh:
        truth = list(csv.DictReader(fh))
    # Independent of the demo's own check: totals over the period agree.
    assert sum(Decimal(str(r["net_sales"])) for r in result.rows) == sum(
        Decimal(t["net_sales"]) for t in truth
    )
    assert sum(int(r["visitors"] or 0) for r in result.rows) == sum(
        int(t["visitors"]) for t in truth
    )
    assert {r["tenant_id"] for r in result.rows} == {t["tenant_id"] for t in truth}
    # The camera stores' PersonID KPIs came through the API too (and equal the truth, above).
    camera = [r for r in result.rows if r["unique_visitors"] is not None]
    assert camera and all(r["dwell_time_median_s"] is not None for r in camera)
    assert sum(r["unique_visitors"] for r in camera) == sum(
        int(t["unique_visitors"]) for t in truth if t["unique_visitors"]
    )


def test_compare_with_truth_reports_a_difference() -> None:
    truth = {
        ("t1", "S001", date(2026, 10, 5)): {
            "net_sales": "1000.00",
            "transactions": "3",
            "visitors": "10",
        }
    }
    row = {
        "tenant_id": "t1",
        "store_code": "S001",
        "business_date": "2026-10-05",
        "net_sales": "999.00",
        "transactions": 3,
        "visitors": 10,
    }
    problems = compare_with_truth([row], truth)
    assert len(problems) == 1 and "net_sales" in problems[0]
    # A camera store's PersonID KPIs are checked where the truth has them.
    key = ("t1", "S001", date(2026, 10, 5))
    truth[key] |= {"unique_visitors": "7", "repeat_visitors": "2", "median_dwell_s": "612.5"}
    row |= {"net_sales": "1000.00", "unique_visitors": 7, "repeat_visitors": 2}
    assert compare_with_truth([row | {"dwell_time_median_s": 612.5}], truth) == []
    problems = compare_with_truth(
        [row | {"dwell_time_median_s": 600.0, "repeat_visitors": 3}], truth
    )
    assert problems == [
        f"{key} repeat_visitors: API 3 != truth 2",
        f"{key} dwell_time_median_s: API 600.0 != truth 612.5",
    ]
    assert compare_with_truth([], truth) == [
        f"{('t1', 'S001', date(2026, 10, 5))}: in the truth but missing from the API"
    ]


def test_cli_demo_no_serve_exits_zero(settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["demo", "--no-serve", "--stores", "2", "--days", "1"])
    assert out.exit_code == 0, out.output
    assert "ground truth" in out.output
    # --no-serve still prints how to get in: a dashboard login and a read key per tenant.
    text = " ".join(out.output.split())
    assert "t1: log in as" in text and "A read key per tenant" in text
    assert "t1: tnp_" in text.split("A read key per tenant")[1]
