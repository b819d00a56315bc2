"""Dagster for production: PostgreSQL storage, the sensor under a real ``dagster-daemon``.

The instance's run, event-log and schedule storage is a fresh PostgreSQL database
(``TENPO_DAGSTER_STORAGE_URL``, dagster-postgres). The marts are built once in process; then
``dagster-daemon run`` (its own processes: daemon, code server, one per launched run) follows
the bus, a late part of one past date lands, and exactly one run — that date's KPI and
device marts with their datamart copies — is launched and succeeds, leaving the other date
untouched. The daily schedule (every minute here) launches exactly one run, yesterday's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tenpo.bus import PARTITIONS_CHANGED, open_bus
from tenpo.core.settings import Settings
from tenpo.lake import Lake
from tenpo.pipelines import ensure_dagster_home, materialize_dates
from tests.jobs.factories import DAY, NEXT_DAY, count_row, counts_table
from tests.pipelines.test_orchestration import (  # noqa: F401 - the lake fixture
    _parquet,
    daily_row,
    lake,
    mart_parts,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"
DAILY = "daily_kpis_schedule"


def _yesterday_in_tokyo(at: datetime) -> str:
    """The business date before ``at``'s in the schedule's timezone (Asia/Tokyo)."""
    return (at.astimezone(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=1)).isoformat()


def _start_daemon(home: Path, workdir: Path) -> subprocess.Popen[bytes]:
    workspace = workdir / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: tests.pipelines.daemon_defs\n"
        f"      working_directory: {REPO.as_posix()}\n",
        encoding="utf-8",
    )
    daemon = Path(sys.executable).parent / "dagster-daemon"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    log = (workdir / "daemon.log").open("wb")
    return subprocess.Popen(
        [str(daemon), "run", "-w", str(workspace)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_shipped_code_location_loads() -> None:
    # What `dagster dev`, the webserver and the daemon do first: load every definition.
    from tenpo.pipelines.definitions import defs

    repo = defs.get_repository_def()
    repo.load_all_definitions()
    assert "partitions_changed" in {s.name for s in repo.sensor_defs}


def test_daemon_runs_exactly_the_late_partition_with_postgres_storage(
    settings: Settings,
    lake: Lake,  # noqa: F811 - the fixture imported above
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TENPO_DAGSTER_STORAGE_URL", pg_url)
    cfg = settings.model_copy(update={"dagster_storage_url": pg_url})
    home = ensure_dagster_home(cfg)
    assert "postgres_url" in (home / "dagster.yaml").read_text(encoding="utf-8")
    with DagsterInstance.from_config(str(home)) as instance:
        materialize_dates(cfg, [DAY, NEXT_DAY], instance=instance)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:  # the run is recorded in PostgreSQL, not in SQLite files
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 1
    engine.dispose()
    assert not list(home.rglob("*.db"))
    untouched = mart_parts(lake, NEXT_DAY)
    assert daily_row(cfg, "S1", DAY)["visitors"] == 16

    started = datetime.now(UTC)
    daemon = _start_daemon(home, tmp_path)
    try:
        # Late data: 7 more entries for DAY in a new part, announced as the streamer does.
        late = counts_table([count_row("S1", "entrance", 7, minute=5, source="obj-late")])
        lake.put(
            f"tables/raw_iot_counts/tenant=t1/date={DAY.isoformat()}/late.parquet",
            _parquet(late),
        )
        bus = open_bus(cfg)
        payload = {"table": "raw_iot_counts", "tenant_id": "t1", "business_date": DAY.isoformat()}
        bus.publish(PARTITIONS_CHANGED, payload, event_id="late-1")
        bus.close()
        with DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + 300
            runs = []
            while time.monotonic() < deadline:
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
                runs = instance.get_runs(RunsFilter(tags={SENSOR_TAG: "partitions_changed"}))
                if runs and all(r.is_finished for r in runs):
                    break
                time.sleep(1)
            assert runs, "the daemon launched no run: " + (tmp_path / "daemon.log").read_text()
            time.sleep(3)  # a few more ticks: nothing else is launched
            runs = instance.get_runs(RunsFilter(tags={SENSOR_TAG: "partitions_changed"}))
            assert len(runs) == 1
            run = runs[0]
            assert run.status == DagsterRunStatus.SUCCESS, run.status
            assert run.tags["dagster/asset_partition_range_start"] == DAY.isoformat()
            assert run.tags["dagster/asset_partition_range_end"] == DAY.isoformat()
            assert {k.to_user_string() for k in run.asset_selection or ()} == {
                "mart_store_daily",
                "datamart_store_daily",
                "mart_store_hourly",
                "datamart_store_hourly",
                "mart_device_health",
                "datamart_device_health",
                "datamart_stores",
            }
            # The daily schedule, ticking every minute here, runs yesterday's business date
            # (Asia/Tokyo) once: a later tick for a date that already has a run skips.
            wanted = {_yesterday_in_tokyo(started), _yesterday_in_tokyo(datetime.now(UTC))}
            deadline = time.monotonic() + 180
            scheduled = []
            while time.monotonic() < deadline:
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
                scheduled = instance.get_runs(RunsFilter(tags={SCHEDULE_TAG: DAILY}))
                if scheduled and all(r.is_finished for r in scheduled):
                    break
                time.sleep(1)
            assert scheduled, (
                "the schedule launched no run: " + (tmp_path / "daemon.log").read_text()[-3000:]
            )
            assert len(scheduled) == 1
            assert scheduled[0].status == DagsterRunStatus.SUCCESS, scheduled[0].status
            assert scheduled[0].tags["dagster/partition"] in wanted
    finally:
        _stop(daemon)
    after = daily_row(cfg, "S1", DAY)
    assert after["visitors"] == 23 and after["conversion_rate"] == pytest.approx(1 / 23)
    assert mart_parts(lake, NEXT_DAY) == untouched
