"""Dagster for production: PostgreSQL storage, the sensor under a real ``dagster-daemon``.

The instance's run, event-log and schedule storage is a fresh PostgreSQL database
(``TENPO_DAGSTER_STORAGE_URL``, dagster-postgres). The marts are built once in process; then
``dagster-daemon run`` (its own processes: daemon, code server, one per launched run) follows
the bus, a late part of one past date lands, and exactly one run — that date's KPI and
device marts with their datamart copies — is launched and succeeds, leaving the other date
untouched. The daily schedule (every minute here) launches exactly one run, yesterday's: it
was started (its state stored) two minutes before the daemon, so the daemon's first scheduler
iteration catches up the last tick it missed, as after a daemon restart, instead of the test
waiting for the next wall-clock minute; a later tick of the same date skips.
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
from dagster._core.scheduler.instigation import ScheduleInstigatorData, TickStatus

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


def _workspace(workdir: Path) -> Path:
    workspace = workdir / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: tests.pipelines.daemon_defs\n"
        f"      working_directory: {REPO.as_posix()}\n",
        encoding="utf-8",
    )
    return workspace


def _start_daemon(home: Path, workdir: Path, workspace: Path) -> subprocess.Popen[bytes]:
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


def _seed_schedule_state(
    instance: DagsterInstance, workspace: Path, started: float
) -> tuple[str, str]:
    """Store the daily schedule's state as the daemon would have when it first saw the
    schedule (declared running in code), but at ``started``: the daemon then evaluates every
    tick since. Returns the schedule's origin and selector ids, under which the daemon records
    its ticks."""
    from dagster._core.remote_origin import RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
    )
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    (location,) = WorkspaceFileTarget(paths=[str(workspace)]).create_origins()
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), DAILY)
    state = InstigatorState(
        origin,
        InstigatorType.SCHEDULE,
        InstigatorStatus.DECLARED_IN_CODE,
        ScheduleInstigatorData("* * * * *", start_timestamp=started),
    )
    instance.add_instigator_state(state)
    return origin.get_id(), state.selector_id


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

    workspace = _workspace(tmp_path)
    # Two minutes back: the daemon's first scheduler iteration finds missed minute ticks.
    started = datetime.now(UTC) - timedelta(seconds=121)
    with DagsterInstance.from_config(str(home)) as instance:
        schedule_ids = _seed_schedule_state(instance, workspace, started.timestamp())
    daemon = _start_daemon(home, tmp_path, workspace)
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
            # (Asia/Tokyo) once: a later tick for a date that already has a run skips. Its
            # first tick is one missed before the daemon's first scheduler iteration (the
            # stored state's start is two minutes back), not one the test waited for.
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
            # The first tick (the last one missed before the daemon's first scheduler
            # iteration) ran its date. A later tick of a date that has its run (the test may
            # span a minute) launched nothing.
            ticks = sorted(instance.get_ticks(*schedule_ids), key=lambda t: t.timestamp)
            assert ticks and ticks[0].status == TickStatus.SUCCESS, ticks
            partitions = [r.tags["dagster/partition"] for r in scheduled]
            assert len(partitions) == len(set(partitions)), partitions  # one run per date
            first = _yesterday_in_tokyo(datetime.fromtimestamp(ticks[0].timestamp, UTC))
            assert first in partitions
            seen: set[str] = set()
            for tick in ticks:
                day = _yesterday_in_tokyo(datetime.fromtimestamp(tick.timestamp, UTC))
                if day in seen:
                    assert tick.status != TickStatus.SUCCESS, tick
                seen.add(day)
            assert set(partitions) <= seen
            # The daemon went by the stored state (not one of its own from its start).
            state = instance.get_instigator_state(*schedule_ids)
            assert state is not None and isinstance(state.instigator_data, ScheduleInstigatorData)
            assert state.instigator_data.start_timestamp == started.timestamp()
            assert all(r.status == DagsterRunStatus.SUCCESS for r in scheduled), scheduled
    finally:
        _stop(daemon)
    after = daily_row(cfg, "S1", DAY)
    assert after["visitors"] == 23 and after["conversion_rate"] == pytest.approx(1 / 23)
    assert mart_parts(lake, NEXT_DAY) == untouched
