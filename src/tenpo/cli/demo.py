"""`tenpo demo`: the whole platform end to end on the embedded defaults.

simulated stores → gateway (HTTP, loopback) → landing zone + bus → streamer → raw tables →
Dagster assets (every mart, the store list, every datamart table) → datamart (SQLite) → read
API → summary checked against the simulator's ground truth. Everything lives under
``{data_dir}/demo``, wiped at each run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tenpo.cli._common import console, handles_errors, settings
from tenpo.core.settings import Settings

if TYPE_CHECKING:
    from tenpo.flow import compare_with_truth, register_chain, source_files

log = logging.getLogger(__name__)

# Re-exported from tenpo.flow, imported on first use: every `tenpo` command imports this
# module to register `tenpo demo`, and the flow (simulator, POS vendors) is heavy.
_FROM_FLOW = ("compare_with_truth", "register_chain", "source_files")


def __getattr__(name: str) -> Any:
    """``compare_with_truth``, ``register_chain``, ``source_files`` from :mod:`tenpo.flow`."""
    if name in _FROM_FLOW:
        from tenpo import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class DemoResult:
    """What the demo measured: KPI rows read back from the API, and their check against truth."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    api_url: str = ""
    initiatives: list[dict[str, Any]] = field(default_factory=list)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def send_files(
    base_url: str, keys: dict[str, str], files: list[tuple[str, str, Path]], progress: Progress
) -> int:
    """POST every file to the gateway with a progress bar; a non-202 answer stops the demo."""
    task = progress.add_task("gateway: sending files", total=len(files))
    from tenpo import flow

    flow.send_files(base_url, keys, files, on_file=lambda _n: progress.advance(task))
    return len(files)


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
) -> DemoResult:
    """Run the whole flow in ``{base.data_dir}/demo``; returns rows read back from the API.

    ``dst_store_share`` of the stores are in zones with daylight saving time
    (``SimConfig.dst_store_share``); the check against the truth is the same. ``lake_url``
    puts the datalake there (``s3://bucket/prefix``, ``gs://…``) instead of
    ``{data_dir}/demo/lake``; it must hold no object yet (the demo wipes only local files).
    """
    from tenpo.api import create_app as create_api
    from tenpo.bus import open_bus
    from tenpo.control import ControlPlane
    from tenpo.flow import (
        DEMO_PASSWORD,
        compare_with_truth,
        create_demo_users,
        isolated_settings,
        read_initiative_effects,
        read_store_kpis,
        read_truth,
        register_chain,
        source_files,
    )
    from tenpo.gateway import create_app as create_gateway
    from tenpo.gateway import serve_in_thread
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
        from tenpo.core.errors import BadInput

        if open_lake(lake_url).list(""):
            raise BadInput(f"the demo's lake {lake_url} is not empty: name a fresh prefix")
    result = DemoResult()
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings[name] = round(now - clock, 2)
        clock = now

    sim_dir = root / "sim"
    tenants = 2
    with console.status("simulating the chain…"):
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
    chain = json.loads((sim_dir / "chain.json").read_text(encoding="utf-8"))
    console.print(
        f"simulated {len(chain['tenants'])} tenants, {len(chain['stores'])} stores, "
        f"{days} days → {sim_dir}"
    )
    lap("simulate")

    with contextlib.ExitStack() as cleanup:
        # Whatever fails below, servers stop and connections close (in reverse order).
        control = ControlPlane.open(cfg.control_db_url)
        cleanup.callback(control.dispose)
        keys = register_chain(control, chain)
        logins = create_demo_users(control, chain)
        lake = open_lake(cfg.lake_root)
        bus = open_bus(cfg)
        cleanup.callback(bus.close)
        directory = control.directory()
        lap("register")

        gateway_app = create_gateway(cfg, control=control, lake=lake, bus=bus)
        gw_server, gw_thread = serve_in_thread(gateway_app, "127.0.0.1", 0)
        cleanup.callback(_stop_server, gw_server, gw_thread)
        gw_url = f"http://127.0.0.1:{_bound_port(gw_server)}"
        streamer = Streamer(cfg, lake, bus, directory)
        cleanup.callback(streamer.close)
        files = source_files(sim_dir)
        masters = [f for f in files if f[0] in master_sources()]
        rest = [f for f in files if f[0] not in master_sources()]
        with _progress() as progress:
            # Masters first, loaded before the sales that resolve registers through them.
            send_files(gw_url, keys, masters, progress)
            streamer.run_until_idle(timeout=1.0)
            if _mqtt_wanted(cfg):  # device files over MQTT when a broker answers, else HTTP
                from tenpo.iot.publish import ingest_files_over_mqtt

                iot = [(tenant, path) for src, tenant, path in rest if src == "iot"]
                task = progress.add_task(f"mqtt {cfg.mqtt_host}:{cfg.mqtt_port}", total=len(iot))
                ingest_files_over_mqtt(
                    cfg, lake, control, iot, on_file=lambda: progress.advance(task)
                )
                rest = [f for f in rest if f[0] != "iot"]
            send_files(gw_url, keys, rest, progress)
        lap("send")
        with console.status("streamer: loading raw tables…"):
            stats = streamer.run_until_idle(timeout=1.0)
        console.print(f"streamer: {stats}")
        lap("stream")

        dates = [start + timedelta(days=i) for i in range(days)]
        # The same assets as `tenpo jobs materialize`: every mart, the store list and every
        # datamart table the API reads, written by the pipeline itself.
        with console.status(f"dagster: materializing {len(dates)} daily partitions…"):
            materialize_dates(cfg, dates)
        lap("materialize")

        api_app = create_api(cfg, control=control)
        api_server, api_thread = serve_in_thread(
            api_app, cfg.api_host, cfg.api_port if serve else 0
        )
        cleanup.callback(_stop_server, api_server, api_thread)
        result.api_url = f"http://{cfg.api_host}:{_bound_port(api_server)}"
        # Paged side-by-side reads: any chain size stays under the key's rate limit.
        tenant_ids = [t["id"] for t in chain["tenants"]]
        result.rows = read_store_kpis(result.api_url, keys, tenant_ids, dates[0], dates[-1])
        result.mismatches = compare_with_truth(result.rows, read_truth(sim_dir))
        result.initiatives = read_initiative_effects(result.api_url, keys, tenant_ids)
        lap("api")

        _print_summary(result, chain)
        _print_initiatives(result.initiatives, sim_dir)
        _stop_server(gw_server, gw_thread)
        dashboard = f"http://{cfg.api_host}:{cfg.api_port}/app/"
        console.print(
            f"\n[bold]Dashboard:[/] {dashboard}"
            + ("" if serve else " (served by `tenpo demo` without --no-serve)")
        )
        for tenant_id, email in logins.items():
            console.print(f"  {tenant_id}: log in as {email} / {DEMO_PASSWORD}", highlight=False)
        console.print("A read key per tenant (the data dir is wiped by the next demo):")
        for tenant_id, token in keys.items():
            console.print(f"  {tenant_id}: {token}", highlight=False, soft_wrap=True)
        if serve:
            # Handlers first: a signal sent as soon as the banner shows must stop us cleanly.
            with _stop_on_signals() as stop:
                console.print(
                    f"\n[bold green]API serving at {result.api_url}[/] "
                    f"(docs at {result.api_url}/docs). Ctrl-C or SIGTERM to stop."
                )
                while api_thread.is_alive() and not stop.wait(0.5):
                    pass
    return result


def _stop_server(server: Any, thread: threading.Thread) -> None:
    """Ask a uvicorn server started by ``serve_in_thread`` to exit and wait for it."""
    server.should_exit = True
    thread.join(timeout=10)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while inside (the previous handlers come back after)."""
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(signum: int, _frame: Any) -> None:
        # The handler runs on the main thread, which may be inside ``stop.wait`` holding the
        # event's lock: setting it here deadlocks. Set it (and log) from another thread.
        def set_stop() -> None:
            log.info("signal %d: stopping the demo's servers", signum)
            stop.set()

        threading.Thread(target=set_stop, name="tenpo-demo-stop", daemon=True).start()

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only: its owner stops us
        return
    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _mqtt_wanted(cfg: Settings) -> bool:
    from tenpo.iot.mqtt import mqtt_wanted

    return mqtt_wanted(cfg)


def _bound_port(server: Any) -> int:
    """The port a started uvicorn server listens on (we ask for port 0 in tests)."""
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")


def _print_initiatives(initiatives: list[dict[str, Any]], sim_dir: Path) -> None:
    """The planted initiatives: true effect (truth/initiatives.csv) vs tenpo's estimate."""
    if not initiatives:
        return
    truth_path = sim_dir / "truth" / "initiatives.csv"
    truth: dict[tuple[str, str], str] = {}
    if truth_path.exists():
        with truth_path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                truth[(row["tenant_id"], row["initiative_id"])] = row["true_effect"]
    table = Table(title="Initiatives (施策) against control stores (read back from the API)")
    for col in (
        "tenant",
        "initiative",
        "KPI",
        "stores",
        "true",
        "estimate",
        "90 % interval",
        "controls",
    ):
        table.add_column(col)
    for i in initiatives:
        e = i["effect"] or {}
        ok = e.get("status") == "ok"
        true = truth.get((i["tenant_id"], i["initiative_id"]))
        table.add_row(
            i["tenant_id"],
            i["initiative_id"],
            i["kpi"],
            str(len(i["stores"])),
            f"{float(true):+.1%}" if true else "—",
            f"{e['effect']:+.1%}" if ok else str(e.get("status", "not measured")),
            f"[{e['ci_low']:+.1%}, {e['ci_high']:+.1%}]" if ok else "—",
            str(len(e.get("controls", [])) + e.get("controls_hidden", 0)) if e else "—",
        )
    console.print(table)


def _print_summary(result: DemoResult, chain: dict[str, Any]) -> None:
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in result.rows:
        t = totals.setdefault(
            (r["tenant_id"], r["store_code"]),
            {"net_sales": Decimal(0), "transactions": 0, "visitors": 0},
        )
        t["net_sales"] += Decimal(str(r["net_sales"]))
        t["transactions"] += int(r["transactions"] or 0)
        t["visitors"] += int(r["visitors"] or 0)
    industry = {(s["tenant_id"], s["code"]): s["industry"] for s in chain["stores"]}
    table = Table(title="Store KPIs over the demo period (read back from the API)")
    for col in (
        "tenant",
        "store",
        "industry",
        "net sales (¥, excl. tax)",
        "receipts",
        "visitors",
        "conversion",
    ):
        table.add_column(col, justify="right" if col[0] in "nrvc" else "left")
    for (tenant, code), t in sorted(totals.items()):
        conv = f"{t['transactions'] / t['visitors']:.1%}" if t["visitors"] else "—"
        table.add_row(
            tenant,
            code,
            industry[(tenant, code)],
            f"{t['net_sales']:,.0f}",
            f"{t['transactions']:,}",
            f"{t['visitors']:,}",
            conv,
        )
    console.print(table)
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(f"timings: {timing}")
    if result.mismatches:
        console.print(f"[bold red]{len(result.mismatches)} differences from the ground truth:[/]")
        for m in result.mismatches[:20]:
            console.print(f"  {m}")
    else:
        console.print(
            f"[bold green]✓ all {len(result.rows)} store-days equal the ground truth[/] "
            "(net sales, receipts, visitors)"
        )


@handles_errors
def demo(
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Keep serving the API at the end."),
    stores: int = typer.Option(10, min=2, help="Stores in the simulated chain."),
    days: int = typer.Option(14, min=1, help="Days simulated."),
    seed: int = typer.Option(7, help="Simulation seed."),
    video: bool = typer.Option(
        False, "--video", help="Also analyze a synthetic entrance clip into raw_visitor_events."
    ),
    lake_url: str | None = typer.Option(
        None,
        "--lake-url",
        help="Datalake of the demo (s3://bucket/prefix, gs://...; must be empty) instead of a "
        "folder in the data dir.",
    ),
) -> None:
    """Simulate a chain and run it through the whole platform, then serve the API."""
    started = time.perf_counter()
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # Progress bars and the summary tell the story; keep library chatter for --verbose.
        for name in ("tenpo", "dagster"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if video:  # first: the main demo may keep serving until interrupted
        from tenpo.cli.video import run_video_demo

        if run_video_demo(settings()):
            raise typer.Exit(1)
    result = run_demo(
        settings(), stores=stores, days=days, seed=seed, serve=serve, lake_url=lake_url
    )
    console.print(f"demo finished in {time.perf_counter() - started:.1f}s")
    if result.mismatches:
        raise typer.Exit(1)


__all__ = [
    "DemoResult",
    "compare_with_truth",
    "demo",
    "register_chain",
    "run_demo",
    "source_files",
]
