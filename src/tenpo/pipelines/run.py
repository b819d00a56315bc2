"""Run assets in process for a list of business dates (the demo, ``tenpo jobs``).

Dates are grouped into contiguous ranges and each range is one Dagster run over a partition
range (the assets have a single-run backfill policy), so 14 days cost one run, not 14. Runs are
recorded in the local Dagster instance under ``settings.dagster_home``, where ``tenpo jobs ui``
shows them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    SourceAsset,
    materialize,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from sqlalchemy.engine import make_url

from tenpo.core.errors import BadInput, ConfigError, TenpoError
from tenpo.core.settings import Settings
from tenpo.pipelines.definitions import build_definitions
from tenpo.pipelines.devices import DATAMART_DEVICE_HEALTH_KEY, MART_DEVICE_HEALTH_KEY
from tenpo.pipelines.forecast import MART_STORE_FORECAST_KEY, forecast_assets
from tenpo.pipelines.initiatives import (
    DATAMART_INITIATIVES_KEY,
    MART_INITIATIVE_EFFECTS_KEY,
    initiative_assets,
)
from tenpo.pipelines.kpis import DATAMART_KEYS, MART_KEYS, WRITER_TAG
from tenpo.pipelines.ml import DATAMART_ML_KEY, ML_ASSET_KEYS, ml_assets
from tenpo.pipelines.partitions import DEFAULT_START
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.stores import DATAMART_STORES_KEY

__all__ = [
    "ASSET_GROUPS",
    "DEFAULT_ASSETS",
    "PipelineFailed",
    "RunProgress",
    "date_ranges",
    "ensure_dagster_home",
    "materialize_assets",
    "materialize_dates",
    "materialize_forecasts",
    "materialize_initiatives",
    "materialize_ml",
    "resolve_selection",
    "with_downstream",
]

log = logging.getLogger(__name__)

ASSET_GROUPS: dict[str, tuple[str, ...]] = {
    # The store dimension goes with the KPIs: the API serves no KPI of a store it does not list.
    "kpis": (DATAMART_STORES_KEY, *MART_KEYS, *DATAMART_KEYS),
    "devices": (MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY),
    "ml": (*ML_ASSET_KEYS, DATAMART_ML_KEY),
    "initiatives": (MART_INITIATIVE_EFFECTS_KEY, DATAMART_INITIATIVES_KEY),
}
"""Named asset sets of ``tenpo jobs materialize --only``; together, every asset the API reads."""

DEFAULT_ASSETS: tuple[str, ...] = tuple(k for group in ASSET_GROUPS.values() for k in group)
"""Every mart, the store dimension and every datamart export, in dependency order: what
``tenpo jobs materialize``, the demo and the daily schedule build unless told otherwise."""

# Assets without date partitions: they run once, in the last run of a request.
_UNPARTITIONED = frozenset(
    {
        DATAMART_STORES_KEY,
        *ML_ASSET_KEYS,
        DATAMART_ML_KEY,
        MART_INITIATIVE_EFFECTS_KEY,
        DATAMART_INITIATIVES_KEY,
    }
)


@dataclass(frozen=True)
class RunProgress:
    """Where an in-process materialization is: run ``run`` of ``runs``, the step just done."""

    run: int
    runs: int
    first: date
    last: date
    steps_done: int
    steps: int
    step: str | None


_YAML_MARKER = "# Written by tenpo"
_DAGSTER_YAML = """\
# Written by tenpo (v3): {what} storage for runs, events and schedules; run queue limits.
{storage}
concurrency:
  runs:
    max_concurrent_runs: 4
    # Runs that write marts replace lake and datamart partitions: one at a time, so two
    # runs never interleave their writes of the same partition.
    tag_concurrency_limits:
      - key: "{writer_key}"
        limit: 1
telemetry:
  enabled: false
"""


class PipelineFailed(TenpoError):
    """A Dagster run of tenpo's assets failed; the message carries the failing step's error."""

    title = "Pipeline run failed"


def ensure_dagster_home(settings: Settings) -> Path:
    """``settings.dagster_home``, created with a ``dagster.yaml`` (SQLite storage, run limits).

    A ``dagster.yaml`` written by an older tenpo is brought up to date; one written by
    somebody else is left alone.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = _DAGSTER_YAML.format(
        what="PostgreSQL" if settings.dagster_storage_url else "local SQLite",
        storage=_storage_yaml(settings, home),
        writer_key=next(iter(WRITER_TAG)),
    )
    if not config.exists() or (
        config.read_text(encoding="utf-8").startswith(_YAML_MARKER)
        and config.read_text(encoding="utf-8") != wanted
    ):
        config.write_text(wanted, encoding="utf-8")
    return home


# Dagster's SQLite storage (the layout of ``storage: sqlite: base_dir``), except for the event
# log: tenpo's keeps one engine per file instead of creating one per event.
_SQLITE_STORAGE = """\
run_storage:
  module: dagster._core.storage.runs
  class: SqliteRunStorage
  config:
    base_dir: {runs}
event_log_storage:
  module: tenpo.pipelines.sqlite_storage
  class: SqliteEventLogStorageKeepingEngines
  config:
    base_dir: {events}
schedule_storage:
  module: dagster._core.storage.schedules
  class: SqliteScheduleStorage
  config:
    base_dir: {schedules}"""


def _storage_yaml(settings: Settings, home: Path) -> str:
    """The storage section of dagster.yaml: SQLite files in ``home``, or PostgreSQL."""
    url = settings.dagster_storage_url
    if not url:
        base = home.as_posix()
        return _SQLITE_STORAGE.format(
            runs=json.dumps(f"{base}/history/"),
            events=json.dumps(f"{base}/history/runs/"),
            schedules=json.dumps(f"{base}/schedules"),
        )
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"TENPO_DAGSTER_STORAGE_URL must be a PostgreSQL URL, not {parsed.drivername}://"
        )
    # dagster-postgres is written for psycopg2 (its NOTIFY binds a parameter psycopg 3 cannot),
    # and SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://: name the driver.
    url2 = parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return f"storage:\n  postgres:\n    postgres_url: {json.dumps(url2)}"


@contextmanager
def _writer_lock(settings: Settings) -> Iterator[None]:
    """One in-process materialization at a time per data dir (they replace partitions).

    Runs launched by the Dagster daemon are limited by the instance's tag concurrency
    instead; in-process runs bypass the run queue, hence this file lock.
    """
    home = ensure_dagster_home(settings)
    with (home / "tenpo-writer.lock").open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def date_ranges(dates: Sequence[date], max_days: int | None = None) -> list[tuple[date, date]]:
    """Sorted, de-duplicated ``dates`` as inclusive ranges of consecutive days, each at most
    ``max_days`` long when given."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(dates)):
        if (
            ranges
            and ranges[-1][1] + timedelta(days=1) == day
            and (max_days is None or (day - ranges[-1][0]).days < max_days)
        ):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _failure_message(result: ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_key:
            error = event.step_failure_data.error
            cause = error.cause if error and error.cause else error
            detail = cause.message.strip() if cause else "unknown error"
            return f"step {event.step_key} failed: {detail}"
    return f"run {result.run_id} failed"


def _dagster_level() -> str:
    return logging.getLevelName(max(logging.getLogger("tenpo").getEffectiveLevel(), logging.INFO))


def with_downstream(assets: Sequence[str], definitions: Definitions | None = None) -> list[str]:
    """``assets`` and every asset depending on them, directly or not (KPI assets first)."""
    graph = (definitions or build_definitions()).resolve_asset_graph()
    selected = AssetSelection.assets(*assets).downstream().resolve(graph)
    order = [k for k in DEFAULT_ASSETS if AssetKey(k) in selected]
    return order + sorted(k.to_user_string() for k in selected if k.to_user_string() not in order)


def resolve_selection(only: Sequence[str] = (), select: Sequence[str] = ()) -> tuple[str, ...]:
    """The assets of groups ``only`` (see :data:`ASSET_GROUPS`) plus ``select``, in run order.

    Nothing given: :data:`DEFAULT_ASSETS`. ``BadInput`` names an unknown group; unknown asset
    names are refused by :func:`materialize_dates`.
    """
    unknown = [g for g in only if g not in ASSET_GROUPS]
    if unknown:
        raise BadInput(
            f"unknown asset group(s) {', '.join(unknown)}; choose from {', '.join(ASSET_GROUPS)}"
        )
    if not only and not select:
        return DEFAULT_ASSETS
    chosen = {k for g in only for k in ASSET_GROUPS[g]} | set(select)
    ordered = [k for k in DEFAULT_ASSETS if k in chosen]
    return (*ordered, *sorted(chosen - set(ordered)))


def materialize_dates(
    settings: Settings,
    dates: Sequence[date],
    assets: Sequence[str] = DEFAULT_ASSETS,
    *,
    downstream: bool = False,
    instance: DagsterInstance | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    max_days_per_run: int | None = None,
) -> list[ExecuteInProcessResult]:
    """Materialize ``assets`` for ``dates`` in process: one run per run of consecutive dates.

    ``max_days_per_run`` splits longer runs of dates into runs of at most that many days, in
    date order: an asset holds one run's rows in memory, so this bounds memory for a big
    chain (each run still reads the earlier dates it looks back at from the lake).

    Assets without date partitions (the store dimension, the ML marts) run once, in the last
    run. ``downstream`` adds every asset depending on them (re-run one asset with its
    consumers). ``on_progress`` is called from a watcher thread as steps finish. Safe to
    repeat (partitions are replaced). ``BadInput`` for no dates or an unknown asset,
    ``PipelineFailed`` naming the failing step when a run fails.
    """
    if not dates:
        raise BadInput("no business dates to materialize")
    if max_days_per_run is not None and max_days_per_run < 1:
        raise BadInput(f"max_days_per_run must be at least 1, not {max_days_per_run}")
    ranges = date_ranges(dates, max_days_per_run)
    # Partitions must cover every requested date, including old or (simulated) future ones.
    start = min(DEFAULT_START, ranges[0][0])
    end_offset = max(1, (ranges[-1][1] - date.today()).days + 2)
    definitions = build_definitions(
        start, end_offset=end_offset, resource=TenpoResource.from_settings(settings)
    )
    asset_defs = [
        a
        for a in definitions.assets or ()
        if isinstance(a, AssetsDefinition | SourceAsset | AssetSpec)
    ]
    known = {
        key.to_user_string()
        for a in asset_defs
        if isinstance(a, AssetsDefinition)
        for key in a.keys
    }
    unknown = [a for a in assets if a not in known]
    if unknown or not assets:
        raise BadInput(
            f"unknown asset(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(sorted(known))}"
        )
    selected = list(dict.fromkeys(assets))
    if downstream:
        selected = with_downstream(selected, definitions)
    if any(a in ML_ASSET_KEYS for a in selected):
        # One multi-asset computes the three ML marts: selecting one selects all three.
        selected += [k for k in ML_ASSET_KEYS if k not in selected]
    resources = {"tenpo": TenpoResource.from_settings(settings)}
    if instance is None:
        instance = DagsterInstance.from_config(str(ensure_dagster_home(settings)))
    with _writer_lock(settings):
        return _run_ranges(asset_defs, selected, ranges, instance, resources, on_progress)


def _run_ranges(
    asset_defs: list[AssetsDefinition | SourceAsset | AssetSpec],
    assets: list[str],
    ranges: list[tuple[date, date]],
    instance: DagsterInstance,
    resources: dict[str, TenpoResource],
    on_progress: Callable[[RunProgress], None] | None,
) -> list[ExecuteInProcessResult]:
    partitioned = [a for a in assets if a not in _UNPARTITIONED]
    once = [a for a in assets if a in _UNPARTITIONED]
    plan = [(first, last, partitioned) for first, last in ranges]
    if once:
        first, last, chosen = plan[-1]
        plan[-1] = (first, last, [*chosen, *once])
    plan = [p for p in plan if p[2]]
    results: list[ExecuteInProcessResult] = []
    for index, (first, last, chosen) in enumerate(plan, start=1):
        log.info("materializing %s for %s..%s", ", ".join(chosen), first, last)
        batch = uuid.uuid4().hex
        run_config: dict[str, Any] = {
            # Dagster's console logger follows tenpo's level (its DEBUG events are noise here).
            "loggers": {"console": {"config": {"log_level": _dagster_level()}}}
        }
        steps = len([a for a in chosen if a not in ML_ASSET_KEYS]) + (
            1 if any(a in ML_ASSET_KEYS for a in chosen) else 0
        )
        progress = RunProgress(index, len(plan), first, last, 0, steps, None)
        with _watch(instance, batch, progress, on_progress):
            result = materialize(
                asset_defs,
                instance=instance,
                resources=resources,
                selection=chosen,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                    ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                    _BATCH_TAG: batch,
                    **WRITER_TAG,
                },
                raise_on_error=False,
                run_config=run_config,
            )
        if not result.success:
            raise PipelineFailed(
                f"materializing {', '.join(chosen)} for {first}..{last}: {_failure_message(result)}"
            )
        results.append(result)
    return results


_BATCH_TAG = "tenpo/batch"


@contextmanager
def _watch(
    instance: DagsterInstance,
    batch: str,
    start: RunProgress,
    on_progress: Callable[[RunProgress], None] | None,
) -> Iterator[None]:
    """Report finished steps of the run tagged ``batch`` while it executes (polls storage)."""
    if on_progress is None:
        yield
        return
    on_progress(start)
    stop = threading.Event()

    def poll() -> None:
        from dagster import RunsFilter

        run_id: str | None = None
        done: list[str] = []
        while True:
            finished = stop.wait(0.5)
            try:
                if run_id is None:
                    runs = instance.get_runs(RunsFilter(tags={_BATCH_TAG: batch}), limit=1)
                    run_id = runs[0].run_id if runs else None
                if run_id is not None:
                    records = instance.get_records_for_run(
                        run_id, of_type=DagsterEventType.STEP_SUCCESS
                    ).records
                    names = [r.event_log_entry.step_key or "" for r in records]
                    for name in names[len(done) :]:
                        done.append(name)
                        on_progress(
                            RunProgress(
                                start.run,
                                start.runs,
                                start.first,
                                start.last,
                                len(done),
                                max(start.steps, len(done)),
                                name,
                            )
                        )
            except Exception:  # progress is cosmetic: never let it break a run
                log.debug("progress watcher failed", exc_info=True)
            if finished:
                return

    thread = threading.Thread(target=poll, name="tenpo-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def materialize_assets(
    settings: Settings,
    assets: Sequence[AssetsDefinition],
    *,
    what: str,
    op_config: dict[str, dict[str, Any]] | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """Run unpartitioned ``assets`` in this process with tenpo's resource (demo, tests).

    ``op_config`` maps an op to its config; the run is recorded in ``settings.dagster_home``
    unless ``instance`` is given. Raises PipelineFailed naming ``what`` and the failing step.
    """
    if instance is None:
        instance = DagsterInstance.from_config(str(ensure_dagster_home(settings)))
    result = materialize(
        assets,
        instance=instance,
        resources={"tenpo": TenpoResource.from_settings(settings)},
        run_config={
            "ops": {op: {"config": config} for op, config in (op_config or {}).items()},
            # Dagster's console logger follows tenpo's level, as in materialize_dates.
            "loggers": {"console": {"config": {"log_level": _dagster_level()}}},
        },
        raise_on_error=False,
    )
    if not result.success:
        raise PipelineFailed(f"materializing {what}: {_failure_message(result)}")
    return result


def _as_of(as_of: date | None) -> dict[str, Any]:
    return {"as_of": as_of.isoformat() if as_of else None}


def materialize_ml(
    settings: Settings,
    *,
    as_of: date | None = None,
    instance: DagsterInstance | None = None,
    **overrides: Any,
) -> ExecuteInProcessResult:
    """Run the ML assets and their export in process (demo, tests); raises PipelineFailed."""
    return materialize_assets(
        settings,
        ml_assets(),
        what="the ML assets",
        op_config={"ml_marts": _as_of(as_of) | overrides},
        instance=instance,
    )


def materialize_forecasts(
    settings: Settings, *, as_of: date | None = None, instance: DagsterInstance | None = None
) -> ExecuteInProcessResult:
    """Run the forecast assets in process (demo, tests); raises PipelineFailed."""
    return materialize_assets(
        settings,
        forecast_assets(),
        what="the forecasts",
        op_config={MART_STORE_FORECAST_KEY: _as_of(as_of)},
        instance=instance,
    )


def materialize_initiatives(
    settings: Settings, *, as_of: date | None = None, instance: DagsterInstance | None = None
) -> ExecuteInProcessResult:
    """Run the effect assets and their export in process (demo, tests); raises PipelineFailed."""
    return materialize_assets(
        settings,
        initiative_assets(),
        what="the initiative effects",
        op_config={MART_INITIATIVE_EFFECTS_KEY: _as_of(as_of)},
        instance=instance,
    )
