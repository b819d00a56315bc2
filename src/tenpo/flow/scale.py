"""The scale harness (``tenpo bench scale``): a simulated chain through the whole platform,
every stage timed, the result checked against the simulator's ground truth.

Stages, in order: simulate → register → send POS and video files over HTTP (the gateway) →
send device events over MQTT (when a broker answers; else over HTTP like the rest) → stream
→ marts (every KPI mart) → ML marts → export (every datamart table) → read every store's KPIs
back through the read API → check. Each stage reports its wall time and what it moved (rows,
objects, bytes, events), so rows/s and objects/s follow, and the CPU time (user + system) of
the harness's whole process tree while it ran, so a stage's growth can be judged in CPU
rather than in wall time that the machine's load confounds. The report adds peak RSS, the
lake's bytes per store-day (landing and tables) and the end-to-end raw rows/s (every stage
after register; simulating is the test rig, not the platform).

The report is handed to ``on_stage`` after every stage, so a caller can write it as it goes: a
run that fails or runs out of memory still leaves the stages it finished, and the failing stage
with its error. Peak RSS is sampled for the harness's whole process tree (the simulator's
worker processes included), overall and per stage.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from tenpo.core.errors import BadInput
from tenpo.core.memory import release_unused_memory
from tenpo.core.settings import Settings
from tenpo.flow.stages import (
    compare_with_truth,
    isolated_settings,
    read_store_kpis,
    read_truth,
    register_chain,
    require_empty_lake,
    send_files,
    source_files,
)

__all__ = [
    "Advance",
    "ProgressFactory",
    "RssSampler",
    "ScaleReport",
    "StageResult",
    "bench_summary",
    "drop_run_databases",
    "run_scale",
    "tree_cpu_seconds",
    "write_result",
]

log = logging.getLogger(__name__)

Advance = Callable[[int], None]
"""Move a stage's progress bar by n."""
ProgressFactory = Callable[[str, int | None], Advance]
"""Start a stage's bar (description, total or None when unknown); returns its advance."""

START = date(2026, 10, 5)
PLATFORM_STAGES = ("send_http", "send_mqtt", "stream", "marts", "ml", "export", "api")
"""Stages that make up the end-to-end time (simulate and register are the rig)."""

_PRODUCTION_DATABASES = {
    "control": "control_url",
    "datamart": "datamart_url",
    "ledger": "streamer_state_url",
    "dagster": "dagster_storage_url",
}
"""The production profile's PostgreSQL databases (name suffix → setting)."""

RUN_STORE_DAYS = 3000
"""Store-days per Dagster run of the marts (100 stores × 30 days in one run): an asset holds a
run's rows in memory, so a bigger chain is materialized in runs of fewer days."""

E2E_FLOOR_S_PER_STORE_DAY = 60.0 / 3000
"""Issue 13's end-to-end floor: 100 stores × 30 days in 60 s (send → API read-back)."""


@dataclass
class StageResult:
    """One stage: wall seconds and the amounts it moved (rows, objects, bytes, events...)."""

    name: str
    seconds: float = 0.0
    amounts: dict[str, int] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    """Largest RSS of the harness's process tree sampled while the stage ran."""
    cpu_user_seconds: float = 0.0
    cpu_system_seconds: float = 0.0
    """CPU time of the harness's process tree while the stage ran (see tree_cpu_seconds)."""

    @property
    def cpu_seconds(self) -> float:
        """User plus system CPU seconds of the stage."""
        return self.cpu_user_seconds + self.cpu_system_seconds

    def as_dict(self) -> dict[str, Any]:
        """Seconds, amounts, each amount per second, the stage's CPU and peak RSS."""
        rates = {
            f"{k}_per_s": round(v / self.seconds, 1) if self.seconds else None
            for k, v in self.amounts.items()
        }
        return {
            "seconds": round(self.seconds, 3),
            **self.amounts,
            **rates,
            **{k: round(v, 3) for k, v in self.cpu.items()},
            "peak_rss_bytes": self.peak_rss_bytes,
        }

    @property
    def cpu(self) -> dict[str, float]:
        """The stage's CPU figures under their report keys."""
        return {
            "cpu_seconds": self.cpu_seconds,
            "cpu_user_seconds": self.cpu_user_seconds,
            "cpu_system_seconds": self.cpu_system_seconds,
        }


@dataclass
class ScaleReport:
    """What one scale run measured; ``mismatches`` empty means the truth was met exactly."""

    stores: int
    days: int
    tenants: int
    datamart: str
    mqtt: bool
    profile: str = "embedded"
    engine: str = "duckdb"
    lake: str = "local"
    stages: dict[str, StageResult] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    store_days_checked: int = 0
    raw_rows: int = 0
    peak_rss_bytes: int = 0
    lake_bytes: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    failed_stage: str | None = None
    error: str | None = None
    run_id: str = ""
    """This run's own suffix of its PostgreSQL databases and JetStream stream."""
    databases: list[str] = field(default_factory=list)
    """The PostgreSQL databases the run created (on its ``datamart_server``)."""
    databases_kept: bool = False
    settings: Settings | None = field(default=None, repr=False, compare=False)
    """The run's own settings (its databases, bus stream, lake), to look at what it left."""

    @property
    def store_days(self) -> int:
        """Simulated store-days."""
        return self.stores * self.days

    @property
    def e2e_seconds(self) -> float:
        """Wall time of the platform's stages (send to API read-back)."""
        return sum(s.seconds for n, s in self.stages.items() if n in PLATFORM_STAGES)

    @property
    def e2e_cpu_seconds(self) -> float:
        """CPU time (process tree, user + system) of the platform's stages."""
        return sum(s.cpu_seconds for n, s in self.stages.items() if n in PLATFORM_STAGES)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able values (the ``scale_{N}x{D}.json`` body, without the bench
        summary keys)."""
        e2e, e2e_cpu = self.e2e_seconds, self.e2e_cpu_seconds
        per = {k: round(v / self.store_days) for k, v in self.lake_bytes.items()}
        return {
            "stores": self.stores,
            "days": self.days,
            "tenants": self.tenants,
            "datamart": self.datamart,
            "profile": self.profile,
            "engine": self.engine,
            "lake": self.lake,
            "device_path": "mqtt" if self.mqtt else "http",
            "ground_truth_exact": not self.mismatches,
            "store_days_checked": self.store_days_checked,
            "mismatches": self.mismatches[:20],
            "stages": {n: s.as_dict() for n, s in self.stages.items()},
            "raw_rows": self.raw_rows,
            "e2e_seconds": round(e2e, 3),
            "e2e_raw_rows_per_s": round(self.raw_rows / e2e, 1) if e2e else None,
            "e2e_seconds_per_store_day": round(e2e / self.store_days, 5),
            "e2e_cpu_seconds": round(e2e_cpu, 3),
            "e2e_cpu_seconds_per_store_day": round(e2e_cpu / self.store_days, 5),
            "cpu_seconds_per_store_day": {
                n: round(s.cpu_seconds / self.store_days, 5) for n, s in self.stages.items()
            },
            "peak_rss_bytes": self.peak_rss_bytes,
            "lake_bytes": self.lake_bytes,
            "lake_bytes_per_store_day": per,
            "complete": self.complete,
            "failed_stage": self.failed_stage,
            "error": self.error,
            "run_id": self.run_id,
            "databases": self.databases,
            "databases_kept": self.databases_kept,
        }


def bench_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The bench keys (name, value, unit, baseline, ratio, target, met) of a scale report:
    end-to-end seconds against the issue's floor scaled to the run's store-days. A run that
    did not complete is not met."""
    store_days = report["stores"] * report["days"]
    budget = E2E_FLOOR_S_PER_STORE_DAY * store_days
    value = report["e2e_seconds"]
    ratio = budget / value if value else 0.0
    return {
        "name": f"scale_{report['stores']}x{report['days']}",
        "value": round(value, 2),
        "unit": "s end to end",
        "baseline": round(budget, 2),
        "baseline_kind": "floor budget: 60 s per 3,000 store-days (issue 13)",
        "ratio": round(ratio, 3),
        "target": 1.0,
        "met": bool(report.get("complete", True) and report["ground_truth_exact"] and ratio >= 1.0),
    }


def write_result(report: ScaleReport, out: Path, **extra: Any) -> Path:
    """Write ``{out}/scale_{N}x{D}.json`` (bench keys first, then the report); atomically, so a
    run killed while writing leaves the previous stage's file."""
    body = report.as_dict()
    full = {**bench_summary(body), **body, **extra}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{full['name']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class RssSampler:
    """Samples the RSS of this process and all its descendants (``/proc``) in a thread.

    ``peak`` is the largest sum seen since start; :meth:`reset_stage` starts a new per-stage
    peak. Where ``/proc`` is missing, falls back to this process's ``ru_maxrss``.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self.stage_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._children_files = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def reset_stage(self) -> None:
        """Start a new stage's peak at the current tree RSS."""
        self.stage_peak = 0
        self.sample()

    def sample(self) -> int:
        """Sample now; returns the tree's RSS in bytes."""
        rss = self.tree_rss()
        self.peak = max(self.peak, rss)
        self.stage_peak = max(self.stage_peak, rss)
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a sampler never stops the run
                log.debug("rss sample failed", exc_info=True)

    def tree_rss(self) -> int:
        """RSS of this process plus every descendant, in bytes."""
        if not Path("/proc/self/statm").exists():
            return _peak_rss()
        total = 0
        for pid in _tree_pids(self._children_files):
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
        return total


def tree_cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process's tree so far: this process (every thread),
    its descendants that have exited and were waited for, and every live descendant with the
    exited descendants it waited for (``/proc/PID/stat``).

    The difference between two calls is the tree's CPU in between, also for processes that
    started or exited in between (an exited child's time moves from its own ``/proc`` entry
    into ``RUSAGE_CHILDREN`` when it is reaped). Processes that were re-parented away from the
    tree (daemons) are not counted. Without ``/proc``, only this process and its reaped
    children.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = own.ru_utime + reaped.ru_utime, own.ru_stime + reaped.ru_stime
    if not Path("/proc/self/stat").exists():
        return user, system
    me = os.getpid()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _tree_pids(Path(f"/proc/{me}/task/{me}/children").exists()):
        if pid == me:
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # exited meanwhile (then counted once reaped)
        # Fields after "pid (comm) ": state ppid ... utime(14) stime(15) cutime(16) cstime(17).
        fields = stat[stat.rindex(")") + 2 :].split()
        user += (int(fields[11]) + int(fields[13])) / tick
        system += (int(fields[12]) + int(fields[14])) / tick
    return user, system


def _tree_pids(children_files: bool) -> Iterator[int]:
    """This process's pid, then every descendant's (those alive when walked)."""
    me = os.getpid()
    if children_files:
        # /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN) walks the tree without scanning
        # every process of the machine (that scan cost ~5 % of a scale run's CPU).
        todo = [me]
        while todo:
            pid = todo.pop()
            yield pid
            try:
                for task in os.scandir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(task.path, "children").read_text().split()]
            except (OSError, ValueError):
                continue
        return
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces or parentheses.
        ppid = int(stat[stat.rindex(")") + 2 :].split(" ", 2)[1])
        children.setdefault(ppid, []).append(int(entry.name))
    todo = [me]
    while todo:
        pid = todo.pop()
        yield pid
        todo += children.get(pid, [])


def _no_progress(_name: str, _total: int | None) -> Advance:
    return lambda _n: None


def run_scale(
    base: Settings,
    root: Path,
    *,
    stores: int,
    days: int,
    tenants: int = 2,
    datamart: Literal["sqlite", "postgresql"] = "sqlite",
    datamart_server: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    seed: int = 7,
    mqtt: bool | None = None,
    progress: ProgressFactory = _no_progress,
    send_workers: int = 4,
    on_stage: Callable[[ScaleReport], None] | None = None,
    run_store_days: int = RUN_STORE_DAYS,
    profile: Literal["embedded", "production"] = "embedded",
    lake_url: str | None = None,
    keep_databases: bool = False,
) -> ScaleReport:
    """Run a chain of ``stores`` × ``days`` through the platform in ``root`` (wiped first).

    ``mqtt`` None: device events over MQTT when a broker answers, else HTTP. With
    ``datamart="postgresql"`` a fresh database on ``datamart_server`` holds the datamart.
    ``on_stage(report)`` after every stage (and once more when a stage fails, with
    ``failed_stage`` and ``error`` set, before the error propagates). Marts and exports run
    over at most ``run_store_days`` store-days per Dagster run (memory per run bounded).

    ``profile="production"`` runs on servers instead of embedded stores: fresh PostgreSQL
    databases on ``datamart_server`` for the control plane, the datamart, the streamer's
    ledger and Dagster's storage, and a fresh NATS JetStream stream on ``base.nats_url`` as
    the bus (deleted afterwards); the engine is ``base.engine``. ``lake_url`` puts the lake
    there (``s3://bucket/prefix``; it must hold no object yet).

    Every database and stream is named ``tenpo_scale_{N}x{D}_{run_id}_...`` with a run id of
    its own (``report.run_id``, ``report.databases``), so concurrent runs on one server never
    touch each other's; the databases are dropped when the run ends, failed or not, unless
    ``keep_databases`` (then :func:`drop_run_databases` drops them).
    """
    if stores < tenants or tenants < 1 or days < 1:
        raise BadInput(f"need days ≥ 1 and stores ≥ tenants ≥ 1 (got {stores}, {tenants}, {days})")
    if stores % tenants:
        raise BadInput(f"stores ({stores}) must be a multiple of tenants ({tenants})")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    run_id = uuid.uuid4().hex[:8]
    name = f"tenpo_scale_{stores}x{days}_{run_id}"
    overrides: dict[str, Any] = {}
    roles: dict[str, str] = {}
    if profile == "production":
        datamart = "postgresql"
        roles = _PRODUCTION_DATABASES
        overrides.update(bus="nats", bus_stream=name)
    elif datamart == "postgresql":
        roles = {"datamart": "datamart_url"}
    created: list[str] = []
    try:
        for role, setting in roles.items():
            overrides[setting] = _fresh_database(datamart_server, f"{name}_{role}")
            created.append(f"{name}_{role}")
        if lake_url:
            require_empty_lake(lake_url, "the scale run's")
            overrides["lake_url"] = lake_url
        cfg = isolated_settings(base, root, **overrides)
        if mqtt is None:
            from tenpo.iot.mqtt import mqtt_wanted

            mqtt = mqtt_wanted(cfg)
        report = ScaleReport(
            stores,
            days,
            tenants,
            datamart,
            mqtt,
            profile=profile,
            engine=cfg.engine,
            lake=lake_url.split("://", 1)[0] if lake_url and "://" in lake_url else "local",
            settings=cfg,
            run_id=run_id,
            databases=list(created),
            databases_kept=keep_databases and bool(created),
        )
        notify = on_stage or (lambda _r: None)
        with RssSampler() as rss:

            @contextmanager
            def stage(name: str) -> Iterator[StageResult]:
                result = StageResult(name)
                # Each stage's own working set, not the memory the one before freed but
                # the allocators still held (separate processes in a deployment).
                release_unused_memory()
                rss.reset_stage()
                cpu_user, cpu_system = tree_cpu_seconds()
                started = time.perf_counter()
                try:
                    yield result
                except BaseException as exc:
                    report.failed_stage = name
                    report.error = f"{type(exc).__name__}: {exc}"[:4000]
                    raise
                finally:
                    result.seconds = time.perf_counter() - started
                    user, system = tree_cpu_seconds()
                    result.cpu_user_seconds = user - cpu_user
                    result.cpu_system_seconds = system - cpu_system
                    rss.sample()
                    result.peak_rss_bytes = rss.stage_peak
                    report.stages[name] = result
                    report.peak_rss_bytes = rss.peak
                    log.info("stage %s: %s", name, result.as_dict())
                    notify(report)

            try:
                run_days = max(1, run_store_days // stores)
                _run_stages(report, cfg, seed, stage, progress, send_workers, run_days)
            except BaseException as exc:
                if report.error is None:  # failed between stages
                    report.failed_stage = "between stages"
                    report.error = f"{type(exc).__name__}: {exc}"[:4000]
                    report.peak_rss_bytes = rss.peak
                    notify(report)
                raise
            finally:
                if cfg.bus == "nats" and profile == "production":
                    _drop_stream(cfg.nats_url, cfg.bus_stream)
        report.peak_rss_bytes = max(rss.peak, report.peak_rss_bytes)
        report.complete = True
        notify(report)
        return report
    finally:
        if created and not keep_databases:
            _drop_databases(datamart_server, created)


def _run_stages(
    report: ScaleReport,
    cfg: Settings,
    seed: int,
    stage: Callable[[str], Any],
    progress: ProgressFactory,
    send_workers: int,
    run_days: int,
) -> None:
    stores, days, tenants, mqtt, datamart = (
        report.stores,
        report.days,
        report.tenants,
        report.mqtt,
        report.datamart,
    )
    dates = [START + timedelta(days=i) for i in range(days)]
    root = Path(cfg.data_dir)

    sim_dir = root / "sim"
    with stage("simulate") as st:
        files_written = _simulate(seed, tenants, stores, days, sim_dir, progress)
        st.amounts.update(files_written)
    chain = json.loads((sim_dir / "chain.json").read_text(encoding="utf-8"))

    with ExitStack() as cleanup:
        from tenpo.bus import open_bus
        from tenpo.control import ControlPlane
        from tenpo.gateway import bound_port, serve_in_thread, stop_server
        from tenpo.gateway import create_app as create_gateway
        from tenpo.lake import open_lake
        from tenpo.streamer import Streamer

        with stage("register") as st:
            control = ControlPlane.open(cfg.control_db_url)
            cleanup.callback(control.dispose)
            keys = register_chain(control, chain)
            lake = open_lake(cfg.lake_root)
            cleanup.callback(lake.close)  # its syncfs descriptor, after all that writes
            bus = open_bus(cfg)
            cleanup.callback(bus.close)
            st.amounts["stores"] = len(chain["stores"])
            st.amounts["devices"] = len(chain["devices"])

        gateway = create_gateway(cfg, control=control, lake=lake, bus=bus)
        gw_server, gw_thread = serve_in_thread(gateway, "127.0.0.1", 0, settings=cfg)
        cleanup.callback(stop_server, gw_server, gw_thread)
        gw_url = f"http://127.0.0.1:{bound_port(gw_server)}"
        streamer = Streamer(cfg, lake, bus, control.directory())
        if hasattr(streamer, "close"):
            cleanup.callback(streamer.close)
        files = source_files(sim_dir)
        masters = [f for f in files if f[0] == "pos_vendor_a_master"]
        # One pass by source (a membership test of each file in the device list was
        # quadratic: 20 minutes of tuple comparisons at 700 stores × 30 days).
        devices = [f for f in files if mqtt and f[0] == "iot"]
        http = [f for f in files if f[0] != "pos_vendor_a_master" and not (mqtt and f[0] == "iot")]

        streamed = _StreamTotals()
        with stage("send_http") as st:
            advance = progress("gateway: POS + video (HTTP)", len(masters) + len(http))
            sent = _Counter(advance)
            # Masters first and loaded, so the sales resolve their registers through them.
            nbytes = send_files(gw_url, keys, masters, on_file=sent)
            streamed.add(streamer.run_until_idle(timeout=0.5))
            nbytes += send_files(gw_url, keys, http, on_file=sent, workers=send_workers)
            st.amounts.update(objects=len(masters) + len(http), bytes=nbytes)

        if mqtt:
            from tenpo.iot.publish import ingest_files_over_mqtt

            with stage("send_mqtt") as st:
                advance = progress(f"mqtt {cfg.mqtt_host}:{cfg.mqtt_port}: device events", None)
                acked = _Latest(advance)
                stats = ingest_files_over_mqtt(
                    cfg,
                    lake,
                    control,
                    [(tenant, path) for _, tenant, path in devices],
                    on_acked=lambda done, _total: acked(done),
                )
                st.amounts.update(
                    files=len(devices),
                    messages=stats.accepted,
                    events=stats.events,
                    objects=stats.objects,
                    bytes=sum(path.stat().st_size for _, _, path in devices),
                )

        with stage("stream") as st:
            advance = progress("streamer: raw tables (rows)", None)
            before = streamed.rows
            streamed.add(
                streamer.run_until_idle(timeout=1.0, on_batch=lambda b: advance(b.total_rows))
            )
            st.amounts.update(rows=streamed.rows - before, objects=streamed.objects)
        report.raw_rows = streamed.rows

        from tenpo.pipelines.run import DEFAULT_ASSETS, materialize_dates

        marts = [a for a in DEFAULT_ASSETS if not a.startswith("datamart_")]
        exports = [a for a in DEFAULT_ASSETS if a.startswith("datamart_")]
        with stage("marts") as st:
            progress(f"dagster: {len(marts)} marts × {len(dates)} days ({run_days} per run)", None)
            materialize_dates(cfg, dates, marts, max_days_per_run=run_days)
            st.amounts["rows"] = _table_rows(lake, marts)
            st.amounts["raw_rows_in"] = report.raw_rows
        from tenpo.pipelines.ml import ML_ASSET_KEYS
        from tenpo.pipelines.run import materialize_ml

        if not set(ML_ASSET_KEYS) <= set(DEFAULT_ASSETS):
            with stage("ml") as st:
                progress("dagster: ML marts (clusters, targets, benchmarks)", None)
                materialize_ml(cfg)
                st.amounts["rows"] = _table_rows(lake, ML_ASSET_KEYS)
        with stage("export") as st:
            progress(f"dagster: datamart export ({datamart})", None)
            materialize_dates(cfg, dates, exports, max_days_per_run=run_days)
            if "datamart_stores" not in DEFAULT_ASSETS:
                from tenpo.datamart import sync_stores

                sync_stores(
                    cfg,
                    [
                        s.model_dump()
                        for t in chain["tenants"]
                        for s in control.list_stores(t["id"])
                    ],
                )
            st.amounts["rows"] = _datamart_rows(cfg)

        from tenpo.api import create_app as create_api

        api = create_api(cfg, control=control)
        api_server, api_thread = serve_in_thread(api, "127.0.0.1", 0, settings=cfg)
        cleanup.callback(stop_server, api_server, api_thread)
        with stage("api") as st:
            advance = progress("api: every store's KPIs (stores)", len(chain["stores"]))
            rows = read_store_kpis(
                f"http://127.0.0.1:{bound_port(api_server)}",
                keys,
                [t["id"] for t in chain["tenants"]],
                dates[0],
                dates[-1],
                on_page=advance,
            )
            st.amounts.update(rows=len(rows), stores=len(chain["stores"]))

        with stage("check") as st:
            report.mismatches = compare_with_truth(rows, read_truth(sim_dir))
            report.store_days_checked = len(rows)
            st.amounts["store_days"] = len(rows)

        report.lake_bytes = _lake_bytes(lake)


class _Counter:
    def __init__(self, advance: Advance) -> None:
        self.advance = advance

    def __call__(self, _nbytes: int) -> None:
        self.advance(1)


class _Latest:
    """Turns absolute progress (n done) into the increments a progress bar wants."""

    def __init__(self, advance: Advance) -> None:
        self.advance, self.done = advance, 0

    def __call__(self, done: int) -> None:
        if done > self.done:
            self.advance(done - self.done)
            self.done = done


@dataclass
class _StreamTotals:
    rows: int = 0
    objects: int = 0

    def add(self, stats: Any) -> None:
        self.rows += stats.total_rows
        self.objects += stats.objects


def _simulate(
    seed: int, tenants: int, stores: int, days: int, out: Path, progress: ProgressFactory
) -> dict[str, int]:
    from tenpo.simulate import SimConfig, simulate_to_dir

    advance = progress(f"simulate {stores} stores × {days} days (tenants)", tenants)
    config = SimConfig(
        seed=seed, tenants=tenants, stores_per_tenant=stores // tenants, days=days, start_date=START
    )
    # A date at a time (memory bounded by one date, not the chain), tenants in parallel
    # processes (same bytes as one): 1.6× on 2 cores at 40×30.
    done = _Latest(advance)
    simulate_to_dir(
        config, out, workers=min(4, os.cpu_count() or 1), on_progress=lambda n, _total: done(n)
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _table_rows(lake: Any, tables: Any) -> int:
    import pyarrow.parquet as pq

    total = 0
    for table in tables:
        for key in lake.list(f"tables/{table}/"):
            if key.endswith(".parquet"):
                total += pq.ParquetFile(lake.path(key)).metadata.num_rows
    return total


def _datamart_rows(cfg: Settings) -> int:
    import sqlalchemy as sa

    from tenpo.datamart import get_engine

    engine = get_engine(cfg.datamart_db_url)
    names = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        return sum(
            int(conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar() or 0) for n in names
        )


def _lake_bytes(lake: Any) -> dict[str, int]:
    """Bytes per lake zone, through the lake's filesystem (a local folder or s3://)."""
    fs = lake.filesystem
    out: dict[str, int] = {}
    for zone in ("landing", "tables", "quarantine"):
        base = lake.path(zone)
        out[zone] = int(fs.du(base, total=True)) if fs.exists(base) else 0
    return out


def _peak_rss() -> int:
    # ru_maxrss is in KiB on Linux.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _fresh_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server (the name is the run's own: it must not exist)
    and return its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return str(sa.make_url(server_url).set(database=name).render_as_string(hide_password=False))


def drop_run_databases(report: ScaleReport, server_url: str) -> None:
    """Drop the PostgreSQL databases a run kept (``keep_databases=True``) from ``server_url``."""
    _drop_databases(server_url, report.databases)
    report.databases_kept = False


def _drop_databases(server_url: str, names: list[str]) -> None:
    """Drop the run's databases (connections still open to them are closed by the server)."""
    import sqlalchemy as sa

    from tenpo.datamart import dispose_engines

    # Cached datamart engines of these databases would hold dead connections: forget them.
    dispose_engines()
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:  # noqa: BLE001 - cleanup only; the run's result stands
        log.warning("could not drop the scale run's databases %s: %s", names, exc)
    finally:
        engine.dispose()


def _drop_stream(url: str, stream: str) -> None:
    """Delete the run's own JetStream stream (a production-profile run leaves no stream)."""
    import asyncio

    import nats

    async def drop() -> None:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    try:
        asyncio.run(drop())
    except Exception as exc:  # noqa: BLE001 - cleanup only; the run's result stands
        log.warning("could not delete JetStream stream %s on %s: %s", stream, url, exc)
