"""Run assets in process for a list of business dates (the demo, ``tenpo jobs``).

Dates are grouped into contiguous ranges and each range is one Dagster run over a partition
range (the assets have a single-run backfill policy), so 14 days cost one run, not 14. Runs are
recorded in the local Dagster instance under ``settings.dagster_home``, where ``tenpo jobs ui``
shows them.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

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

from tenpo.core.errors import BadInput, TenpoError
from tenpo.core.settings import Settings
from tenpo.pipelines.definitions import build_definitions
from tenpo.pipelines.kpis import DATAMART_KEYS, MART_KEYS, WRITER_TAG
from tenpo.pipelines.partitions import DEFAULT_START
from tenpo.pipelines.resources import TenpoResource

__all__ = [
    "DEFAULT_ASSETS",
    "PipelineFailed",
    "date_ranges",
    "ensure_dagster_home",
    "materialize_dates",
    "with_downstream",
]

log = logging.getLogger(__name__)

DEFAULT_ASSETS: tuple[str, ...] = (*MART_KEYS, *DATAMART_KEYS)
"""Every KPI mart and its datamart export: what ``tenpo jobs materialize`` and the demo run."""

_YAML_MARKER = "# Written by tenpo"
_DAGSTER_YAML = """\
# Written by tenpo (v2): local SQLite storage for runs, events and schedules; run queue limits.
storage:
  sqlite:
    base_dir: {home}
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
    wanted = _DAGSTER_YAML.format(home=home.as_posix(), writer_key=next(iter(WRITER_TAG)))
    if not config.exists() or (
        config.read_text(encoding="utf-8").startswith(_YAML_MARKER)
        and config.read_text(encoding="utf-8") != wanted
    ):
        config.write_text(wanted, encoding="utf-8")
    return home


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


def date_ranges(dates: Sequence[date]) -> list[tuple[date, date]]:
    """Sorted, de-duplicated ``dates`` as inclusive ranges of consecutive days."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(dates)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
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


def materialize_dates(
    settings: Settings,
    dates: Sequence[date],
    assets: Sequence[str] = DEFAULT_ASSETS,
    *,
    downstream: bool = False,
    instance: DagsterInstance | None = None,
) -> list[ExecuteInProcessResult]:
    """Materialize ``assets`` for ``dates`` in process: one run per run of consecutive dates.

    ``downstream`` adds every asset depending on them (re-run one asset with its consumers).
    Safe to repeat (partitions are replaced). ``BadInput`` for no dates or an unknown asset,
    ``PipelineFailed`` naming the failing step when a run fails.
    """
    if not dates:
        raise BadInput("no business dates to materialize")
    ranges = date_ranges(dates)
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
    if downstream:
        assets = with_downstream(assets, definitions)
    resources = {"tenpo": TenpoResource.from_settings(settings)}
    if instance is None:
        instance = DagsterInstance.from_config(str(ensure_dagster_home(settings)))
    with _writer_lock(settings):
        return _run_ranges(asset_defs, list(assets), ranges, instance, resources)


def _run_ranges(
    asset_defs: list[AssetsDefinition | SourceAsset | AssetSpec],
    assets: list[str],
    ranges: list[tuple[date, date]],
    instance: DagsterInstance,
    resources: dict[str, TenpoResource],
) -> list[ExecuteInProcessResult]:
    results: list[ExecuteInProcessResult] = []
    for first, last in ranges:
        log.info("materializing %s for %s..%s", ", ".join(assets), first, last)
        result = materialize(
            asset_defs,
            instance=instance,
            resources=resources,
            selection=list(assets),
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                **WRITER_TAG,
            },
            raise_on_error=False,
            # Dagster's console logger follows tenpo's level (its DEBUG events are noise here).
            run_config={"loggers": {"console": {"config": {"log_level": _dagster_level()}}}},
        )
        if not result.success:
            raise PipelineFailed(
                f"materializing {', '.join(assets)} for {first}..{last}: {_failure_message(result)}"
            )
        results.append(result)
    return results
