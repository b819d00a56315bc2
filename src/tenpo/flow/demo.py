"""The demo: the whole platform end to end on the embedded defaults, in one process.

simulated stores → gateway (HTTP, loopback) → landing zone + bus → streamer → raw tables →
Dagster assets (every mart, the store list, every datamart table) → datamart → read API →
KPIs read back and checked against the simulator's ground truth. Everything lives under
``{data_dir}/demo``, wiped at each run. ``tenpo demo`` renders it; tests call
:func:`run_demo` directly.

Whatever ends a run (an error, SIGTERM, Ctrl-C), the servers stop and the bus, streamer and
control plane close before :func:`run_demo` returns or raises. SIGTERM before serving raises
:class:`DemoInterrupted`; SIGTERM or SIGINT while serving ends the serving normally.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from tenpo.core.settings import Settings

__all__ = ["DemoInterrupted", "DemoObserver", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

AddTask = Callable[[str, int], Callable[[], None]]
"""``add_task(description, total)`` → a callable advancing that task by one."""


class DemoInterrupted(BaseException):
    """A signal stopped the demo before it served (raised after its cleanup ran).

    A ``BaseException``, like ``KeyboardInterrupt``: an ``except Exception`` on the way (a
    progress watcher, a retry loop) must not swallow it and let the demo run on.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class DemoResult:
    """What the demo measured: KPI rows read back from the API, and their check against truth."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    api_url: str = ""
    initiatives: list[dict[str, Any]] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)
    """The simulator's ``chain.json`` (tenants, stores)."""
    sim_dir: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """A read key per tenant."""
    logins: dict[str, str] = field(default_factory=dict)
    """A dashboard user's email per tenant (password ``tenpo.flow.DEMO_PASSWORD``)."""
    dashboard_url: str = ""


class DemoObserver:
    """How a run shows its progress; this base shows nothing (tests), the CLI renders it."""

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        """Around a long step without a count (simulating, streaming, materializing)."""
        yield

    @contextlib.contextmanager
    def tasks(self) -> Iterator[AddTask]:
        """Around steps with counts; yields ``add_task``."""
        yield lambda _description, _total: lambda: None

    def note(self, text: str) -> None:
        """A line worth telling (what was simulated, streamer figures)."""
        log.info("%s", text)

    def ready(self, result: DemoResult) -> None:
        """The KPIs are read back and checked; the API still runs (and serves, if asked)."""

    def serving(self, url: str) -> None:
        """The API serves at ``url`` until SIGTERM or SIGINT."""


def run_demo(
    base: Settings,
    *,
    stores: int = 10,
    days: int = 14,
    seed: int = 7,
    serve: bool = False,
    start: date = date(2026, 10, 5),
    dst_store_share: float = 0.0,
    lake_url: str | None = None,
    observer: DemoObserver | None = None,
) -> DemoResult:
    """Run the whole flow in ``{base.data_dir}/demo``; returns rows read back from the API.

    ``dst_store_share`` of the stores are in zones with daylight saving time
    (``SimConfig.dst_store_share``); the check against the truth is the same. ``lake_url``
    puts the datalake there (``s3://bucket/prefix``, ``gs://…``) instead of
    ``{data_dir}/demo/lake``; it must hold no object yet (the demo wipes only local files).
    ``serve`` keeps the API at ``api_host:api_port`` until SIGTERM or SIGINT.
    Raises :class:`DemoInterrupted` on SIGTERM before serving.
    """
    show = observer or DemoObserver()
    with _signals() as signals:
        return _run(
            base,
            show,
            signals,
            stores=stores,
            days=days,
            seed=seed,
            serve=serve,
            start=start,
            dst_store_share=dst_store_share,
            lake_url=lake_url,
        )


def _run(
    base: Settings,
    show: DemoObserver,
    signals: _Signals,
    *,
    stores: int,
    days: int,
    seed: int,
    serve: bool,
    start: date,
    dst_store_share: float,
    lake_url: str | None,
) -> DemoResult:
    from tenpo.api import create_app as create_api
    from tenpo.bus import open_bus
    from tenpo.control import ControlPlane
    from tenpo.flow.stages import (
        compare_with_truth,
        create_demo_users,
        isolated_settings,
        read_initiative_effects,
        read_store_kpis,
        read_truth,
        register_chain,
        require_empty_lake,
        send_files,
        source_files,
    )
    from tenpo.gateway import bound_port, serve_in_thread, stop_server
    from tenpo.gateway import create_app as create_gateway
    from tenpo.iot.mqtt import mqtt_wanted
    from tenpo.lake import open_lake
    from tenpo.pipelines import materialize_dates
    from tenpo.pos.vendors import master_sources
    from tenpo.simulate import SimConfig, simulate
    from tenpo.streamer import Streamer

    root = (base.data_dir / "demo").resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cfg = isolated_settings(base, root, **({"lake_url": lake_url} if lake_url else {}))
    if lake_url:
        require_empty_lake(lake_url, "the demo's")
    result = DemoResult(sim_dir=root / "sim")
    sim_dir = root / "sim"
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings[name] = round(now - clock, 2)
        clock = now

    tenants = 2
    with show.stage("simulating the chain…"):
        simulate(
            SimConfig(
                seed=seed,
                tenants=tenants,
                stores_per_tenant=max(1, stores // tenants),
                days=days,
                start_date=start,
                dst_store_share=dst_store_share,
            ),
            sim_dir,
        )
    chain = result.chain = json.loads((sim_dir / "chain.json").read_text(encoding="utf-8"))
    show.note(
        f"simulated {len(chain['tenants'])} tenants, {len(chain['stores'])} stores, "
        f"{days} days → {sim_dir}"
    )
    lap("simulate")

    with contextlib.ExitStack() as cleanup:
        # Whatever fails below, servers stop and connections close (in reverse order).
        control = ControlPlane.open(cfg.control_db_url)
        cleanup.callback(control.dispose)
        keys = result.keys = register_chain(control, chain)
        result.logins = create_demo_users(control, chain)
        lake = open_lake(cfg.lake_root)
        cleanup.callback(lake.close)  # its syncfs descriptor, after everything that writes
        bus = open_bus(cfg)
        cleanup.callback(bus.close)
        lap("register")

        gateway_app = create_gateway(cfg, control=control, lake=lake, bus=bus)
        gw_server, gw_thread = serve_in_thread(gateway_app, "127.0.0.1", 0, settings=cfg)
        cleanup.callback(stop_server, gw_server, gw_thread)
        gw_url = f"http://127.0.0.1:{bound_port(gw_server)}"
        streamer = Streamer(cfg, lake, bus, control.directory())
        cleanup.callback(streamer.close)
        files = source_files(sim_dir)
        masters = [f for f in files if f[0] in master_sources()]
        rest = [f for f in files if f[0] not in master_sources()]
        with show.tasks() as add_task:
            # Masters first, loaded before the sales that resolve registers through them.
            advance = add_task("gateway: sending files", len(masters))
            send_files(gw_url, keys, masters, on_file=lambda _n: advance())
            streamer.run_until_idle(timeout=1.0)
            if mqtt_wanted(cfg):  # device files over MQTT when a broker answers, else HTTP
                from tenpo.iot.publish import ingest_files_over_mqtt

                iot = [(tenant, path) for src, tenant, path in rest if src == "iot"]
                advance_mqtt = add_task(f"mqtt {cfg.mqtt_host}:{cfg.mqtt_port}", len(iot))
                ingest_files_over_mqtt(cfg, lake, control, iot, on_file=advance_mqtt)
                rest = [f for f in rest if f[0] != "iot"]
            advance = add_task("gateway: sending files", len(rest))
            send_files(gw_url, keys, rest, on_file=lambda _n: advance())
        lap("send")
        with show.stage("streamer: loading raw tables…"):
            stats = streamer.run_until_idle(timeout=1.0)
        show.note(f"streamer: {stats}")
        lap("stream")

        dates = [start + timedelta(days=i) for i in range(days)]
        # The same assets as `tenpo jobs materialize`: every mart, the store list and every
        # datamart table the API reads, written by the pipeline itself.
        with show.stage(f"dagster: materializing {len(dates)} daily partitions…"):
            materialize_dates(cfg, dates)
        lap("materialize")

        api_app = create_api(cfg, control=control, lake=lake)
        api_server, api_thread = serve_in_thread(
            api_app, cfg.api_host, cfg.api_port if serve else 0, settings=cfg
        )
        cleanup.callback(stop_server, api_server, api_thread)
        result.api_url = f"http://{cfg.api_host}:{bound_port(api_server)}"
        result.dashboard_url = f"http://{cfg.api_host}:{cfg.api_port}/app/"
        # Paged side-by-side reads: any chain size stays under the key's rate limit.
        tenant_ids = [t["id"] for t in chain["tenants"]]
        result.rows = read_store_kpis(result.api_url, keys, tenant_ids, dates[0], dates[-1])
        result.mismatches = compare_with_truth(result.rows, read_truth(sim_dir))
        result.initiatives = read_initiative_effects(result.api_url, keys, tenant_ids)
        lap("api")
        stop_server(gw_server, gw_thread)
        show.ready(result)
        if serve:
            # From here a signal ends the serving (a normal return), no longer the run.
            stop = signals.serve()
            show.serving(result.api_url)
            while api_thread.is_alive() and not stop.wait(0.5):
                pass
    return result


class _Signals:
    """SIGTERM raises :class:`DemoInterrupted` (so the cleanup runs) until :meth:`serve`; then
    SIGTERM and SIGINT set the stop event instead."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.serving = False
        self.interrupted = False

    def serve(self) -> threading.Event:
        self.serving = True
        return self.stop

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if not self.serving:
            if self.interrupted:  # a second signal must not break off the cleanup
                log.warning("signal %d: already stopping", signum)
                return
            self.interrupted = True
            raise DemoInterrupted(signum)

        # The handler runs on the main thread, which may be inside ``stop.wait`` holding the
        # event's lock: setting it here deadlocks. Set it (and log) from another thread.
        def set_stop() -> None:
            log.info("signal %d: stopping the demo's servers", signum)
            self.stop.set()

        threading.Thread(target=set_stop, name="tenpo-demo-stop", daemon=True).start()

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self.serving:  # Ctrl-C while working: as Python does by default
            raise KeyboardInterrupt
        self.handle(signum, frame)


@contextlib.contextmanager
def _signals() -> Iterator[_Signals]:
    """Install the demo's SIGTERM/SIGINT handlers while inside (the previous ones after)."""
    signals = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals  # signals reach the main thread only: its owner stops us
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signals.handle)
    signal.signal(signal.SIGINT, signals.on_sigint)
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
