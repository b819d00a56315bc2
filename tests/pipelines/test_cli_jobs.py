"""`tenpo jobs`: argument errors, a real materialize into the settings' data dir, the UI command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.cli.jobs import ui_command
from tenpo.core.settings import Settings
from tenpo.lake import open_lake
from tenpo.warehouse import write_partition
from tests.jobs.factories import DAY, fixture_pos, on_day

runner = CliRunner()


def test_reversed_range_is_refused(settings: Settings) -> None:
    result = runner.invoke(
        app, ["jobs", "materialize", "--from", "2026-11-03", "--to", "2026-11-02"]
    )
    assert result.exit_code == 2
    assert "before --from" in result.output


@pytest.mark.parametrize("command", ["materialize", "backfill"])
@pytest.mark.parametrize(
    ("first", "last"), [("0001-01-01", "2026-11-02"), ("2026-11-02", "9999-12-31")]
)
def test_dates_outside_the_business_years_are_refused(
    settings: Settings, command: str, first: str, last: str
) -> None:
    """A typo'd year was a traceback from inside Dagster (its partition arithmetic overflows
    at year 9999) after a long planning, or at year 1 a run over two millennia."""
    result = runner.invoke(app, ["jobs", command, "--from", first, "--to", last])
    assert result.exit_code == 2, result.output
    assert "years 1900-2999" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unknown_asset_is_refused(settings: Settings) -> None:
    result = runner.invoke(
        app, ["jobs", "backfill", "--from", "2026-11-02", "--to", "2026-11-02", "-a", "nope"]
    )
    assert result.exit_code == 2
    assert "unknown asset(s) nope" in result.output


@pytest.mark.slow
def test_backfill_writes_the_mart_and_records_the_run_locally(settings: Settings) -> None:
    lake = open_lake(settings.lake_root)
    pos = fixture_pos()
    write_partition(lake, "raw_pos_transactions", "t1", DAY, on_day(pos, DAY))
    args = [
        "jobs",
        "backfill",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-02",
        "-a",
        "mart_store_daily",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mart_store_daily" in result.output and "1 run(s)" in result.output
    assert lake.list(f"tables/mart_store_daily/tenant=t1/date={DAY.isoformat()}/")
    # The run went to the persistent instance that `tenpo jobs ui` shows.
    assert (settings.dagster_home / "dagster.yaml").exists()
    assert any(settings.dagster_home.glob("*.db")) or any(settings.dagster_home.rglob("*.db"))


def test_ui_command_points_dagster_at_tenpo_definitions(settings: Settings) -> None:
    cmd, env = ui_command(settings, "127.0.0.1", 3001)
    assert cmd[-7:] == ["dev", "-m", "tenpo.pipelines.definitions", "-h", "127.0.0.1", "-p", "3001"]
    assert env["DAGSTER_HOME"] == str(settings.dagster_home)
    assert env["TENPO_DATA_DIR"] == str(settings.data_dir.resolve())
    config = (settings.dagster_home / "dagster.yaml").read_text(encoding="utf-8")
    assert "sqlite" in config and str(settings.dagster_home) in config


def test_unknown_group_is_refused(settings: Settings) -> None:
    args = ["jobs", "materialize", "--from", "2026-11-02", "--to", "2026-11-02", "--only", "x"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "unknown asset group(s) x" in " ".join(result.output.split())


@pytest.mark.slow
def test_materialize_only_kpis_serves_the_control_planes_stores(settings: Settings) -> None:
    import sqlalchemy as sa

    from tenpo.control import ControlPlane
    from tenpo.datamart import dm_stores, get_engine

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "T1")
    store = control.create_store("t1", "S1", "Store 1", industry="cafe", floor_area_m2="80")
    control.dispose()
    lake = open_lake(settings.lake_root)
    write_partition(lake, "raw_pos_transactions", "t1", DAY, on_day(fixture_pos(), DAY))
    args = ["jobs", "materialize", "--from", "2026-11-02", "--to", "2026-11-02", "--only", "kpis"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "datamart_stores" in result.output and "mart_device_health" not in result.output
    with get_engine(settings.datamart_db_url).connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(dm_stores.c.store_id, dm_stores.c.code,
                                                          dm_stores.c.floor_area_m2))]  # fmt: skip
    assert rows == [(store.store_id, "S1", 80.0)]


def test_ui_runner_stops_its_child_on_sigterm_and_exits_zero() -> None:
    """`tenpo jobs ui`: SIGTERM (or SIGINT) to tenpo stops `dagster dev` and exits 0; a child
    that ends by itself gives its own status. Run in a fresh interpreter, as tenpo runs: in
    the whole suite an earlier test's threads (a JVM) can leave SIGTERM undeliverable to the
    main thread, and the signal then waited for the child's own end."""
    import subprocess
    import sys

    script = """
import os, signal, sys, threading, time
from tenpo.cli.jobs import run_until_stopped
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
before = signal.getsignal(signal.SIGTERM)
def terminate_once_installed():
    deadline = time.monotonic() + 20
    while signal.getsignal(signal.SIGTERM) is before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=terminate_once_installed, daemon=True).start()
started = time.monotonic()
assert run_until_stopped(sleeper, dict(os.environ)) == 0
assert time.monotonic() - started < 30, time.monotonic() - started
assert signal.getsignal(signal.SIGTERM) is before
assert run_until_stopped([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)) == 3
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
