"""The sensor turning streamer commits into runs for exactly the affected partitions.

The streamer publishes ``partitions.changed`` ``{"table", "tenant_id", "business_date"}``
after each commit of a raw partition, late data included (a count for a past date changes
that past partition). The sensor reads them with its own durable consumer (``orchestrator``),
maps each raw table to the marts computed from it, and asks for one run per asset set and
range of consecutive dates.

Affected partitions:

* POS and counter tables → ``mart_store_daily`` and ``mart_store_hourly`` of that date;
* visitor events → ``mart_store_visits`` of that date and both KPI marts of that date, plus
  ``mart_store_daily`` of the later dates within the repeat window that already exist (their
  repeat visitors look back at this date);
* counts and heartbeats → ``mart_device_health`` of that date;
* other raw tables (ToF tracks) feed no mart.

Each mart's datamart export runs after it, and every run also refreshes the store dimension
(``datamart_stores``), so a store registered since the last run is served with its KPIs.

Delivery safety: events are acknowledged on the *next* tick, once Dagster has stored the run
requests of the tick that read them (it does so after the evaluation returns). If the process
dies in between, the bus redelivers them after its ack wait; their run key (a hash of the
event ids) is the same, and Dagster launches one run per run key, so nothing runs twice.
"""

# No `from __future__ import annotations`: Dagster reads the sensor function's annotations to
# find its resources and needs the real classes.
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from tenpo.bus import PARTITIONS_CHANGED, Delivery, EventBus
from tenpo.pipelines.devices import DATAMART_DEVICE_HEALTH_KEY, MART_DEVICE_HEALTH_KEY
from tenpo.pipelines.kpis import (
    DATAMART_STORE_DAILY_KEY,
    DATAMART_STORE_HOURLY_KEY,
    DATAMART_STORE_VISITS_KEY,
    MART_STORE_DAILY_KEY,
    MART_STORE_HOURLY_KEY,
    MART_STORE_VISITS_KEY,
    WRITER_TAG,
)
from tenpo.pipelines.resources import TenpoResource
from tenpo.pipelines.stores import DATAMART_STORES_KEY
from tenpo.warehouse.partitions import list_partitions

__all__ = [
    "CONSUMER",
    "PlannedRun",
    "affected_partitions",
    "partitions_changed_sensor",
    "plan_runs",
]

log = logging.getLogger(__name__)

CONSUMER = "orchestrator"
"""The sensor's durable consumer name on the bus (its progress is its own)."""

_KPIS = (MART_STORE_DAILY_KEY, DATAMART_STORE_DAILY_KEY, MART_STORE_HOURLY_KEY,
         DATAMART_STORE_HOURLY_KEY)  # fmt: skip
_VISITS = (MART_STORE_VISITS_KEY, DATAMART_STORE_VISITS_KEY)
_DEVICES = (MART_DEVICE_HEALTH_KEY, DATAMART_DEVICE_HEALTH_KEY)
TABLE_ASSETS: dict[str, tuple[str, ...]] = {
    "raw_pos_transactions": _KPIS,
    "raw_pos_lines": _KPIS,
    "raw_iot_counts": (*_KPIS, *_DEVICES),
    "raw_device_heartbeats": _DEVICES,
    "raw_visitor_events": (*_VISITS, *_KPIS),
}
"""Raw table → the assets to recompute for a changed date of it."""

_MAX_EVENTS = 1000


@dataclass(frozen=True)
class PlannedRun:
    """One run: ``assets`` over business dates ``first``..``last``, keyed for idempotence."""

    assets: tuple[str, ...]
    first: date
    last: date
    run_key: str


def affected_partitions(
    payloads: Iterable[Mapping[str, Any]],
    *,
    repeat_window_days: int,
    daily_dates: Iterable[date] = (),
) -> dict[date, set[str]]:
    """Assets to recompute per business date for ``partitions.changed`` payloads.

    ``daily_dates`` are the dates that already have a ``mart_store_daily`` partition (for the
    repeat-window rule). Payloads of tables no mart reads, or malformed ones, are skipped.
    """
    existing = sorted(set(daily_dates))
    wanted: dict[date, set[str]] = {}
    for payload in payloads:
        assets = TABLE_ASSETS.get(str(payload.get("table")))
        try:
            day = date.fromisoformat(str(payload.get("business_date")))
        except ValueError:
            log.warning("partitions.changed payload without a valid business_date: %s", payload)
            continue
        if not assets:
            continue
        wanted.setdefault(day, set()).update(assets)
        if payload.get("table") == "raw_visitor_events":
            horizon = day + timedelta(days=repeat_window_days)
            for later in existing:
                if day < later <= horizon:
                    wanted.setdefault(later, set()).update(
                        (MART_STORE_DAILY_KEY, DATAMART_STORE_DAILY_KEY)
                    )
    return wanted


def plan_runs(wanted: Mapping[date, set[str]], event_ids: Iterable[str]) -> list[PlannedRun]:
    """Group dates needing the same assets into ranges of consecutive dates, one run each."""
    salt = hashlib.sha256("\n".join(sorted(event_ids)).encode()).hexdigest()[:16]
    runs: list[PlannedRun] = []
    current: tuple[tuple[str, ...], date, date] | None = None

    def close(item: tuple[tuple[str, ...], date, date]) -> None:
        assets, first, last = item
        key = f"{salt}:{first.isoformat()}:{last.isoformat()}:{','.join(assets)}"
        runs.append(PlannedRun(assets, first, last, key))

    for day in sorted(wanted):
        assets = tuple(sorted(wanted[day]))
        if current and current[0] == assets and current[2] + timedelta(days=1) == day:
            current = (assets, current[1], day)
            continue
        if current:
            close(current)
        current = (assets, day, day)
    if current:
        close(current)
    return runs


class _Pending:
    """Deliveries read by the last tick, acknowledged by the next one (see module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buses: dict[str, EventBus] = {}
        self.deliveries: dict[str, list[Delivery]] = {}


_pending = _Pending()


def _bus(tenpo: TenpoResource) -> tuple[str, EventBus]:
    from tenpo.bus import open_bus

    settings = tenpo.get_settings()
    key = f"{settings.bus}:{settings.bus_path if settings.bus == 'sqlite' else settings.nats_url}"
    bus = _pending.buses.get(key)
    if bus is None:
        bus = _pending.buses[key] = open_bus(settings)
    return key, bus


def _evaluate(context: SensorEvaluationContext, tenpo: TenpoResource) -> Iterator[Any]:
    with _pending.lock:
        key, bus = _bus(tenpo)
        for delivery in _pending.deliveries.pop(key, []):
            bus.ack(delivery)
        deliveries = bus.fetch(PARTITIONS_CHANGED, CONSUMER, max_events=_MAX_EVENTS, timeout=0.1)
        if not deliveries:
            yield SkipReason("no partitions.changed event")
            return
        settings = tenpo.get_settings()
        daily = {day for _, day in list_partitions(tenpo.open_lake(), MART_STORE_DAILY_KEY)}
        wanted = affected_partitions(
            (d.payload for d in deliveries),
            repeat_window_days=settings.repeat_window_days,
            daily_dates=daily,
        )
        runs = plan_runs(wanted, (d.event_id for d in deliveries))
        _pending.deliveries[key] = deliveries
    context.log.info("%d partitions.changed event(s) → %d run(s)", len(deliveries), len(runs))
    if not runs:
        yield SkipReason(f"{len(deliveries)} event(s) of tables no mart reads")
    for run in runs:
        yield RunRequest(
            run_key=run.run_key,
            asset_selection=[AssetKey(a) for a in (*run.assets, DATAMART_STORES_KEY)],
            tags={
                ASSET_PARTITION_RANGE_START_TAG: run.first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: run.last.isoformat(),
                **WRITER_TAG,
            },
        )


def partitions_changed_sensor(
    *, minimum_interval_seconds: int = 30, running: bool = False
) -> SensorDefinition:
    """The ``partitions_changed`` sensor (stopped by default; start it in the UI or config)."""

    @sensor(
        name="partitions_changed",
        target=AssetSelection.assets(*_VISITS, *_KPIS, *_DEVICES, DATAMART_STORES_KEY),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        description="Runs the marts for exactly the partitions the streamer changed.",
    )
    def partitions_changed(context: SensorEvaluationContext, tenpo: TenpoResource) -> Iterator[Any]:
        yield from _evaluate(context, tenpo)

    return partitions_changed
