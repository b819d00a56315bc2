"""`tenpo jobs` commands: materialize and back-fill pipeline assets, open the Dagster UI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from typing import Any

import typer
from rich.table import Table

from tenpo.cli._common import console, handles_errors, settings
from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings

app = typer.Typer(no_args_is_help=True)

_FROM = typer.Option(..., "--from", help="First business date (YYYY-MM-DD).", formats=["%Y-%m-%d"])
_TO = typer.Option(..., "--to", help="Last business date, inclusive.", formats=["%Y-%m-%d"])


def _dates(first: datetime, last: datetime) -> list[date]:
    start, end = first.date(), last.date()
    for flag, day in (("--from", start), ("--to", end)):
        if not 1900 <= day.year <= 2999:  # as the read API: further out is a typo
            raise BadInput(f"{flag} {day} is not a business date of years 1900-2999")
    if end < start:
        raise BadInput(f"--to {end} is before --from {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _run(
    cfg: Settings, days: list[date], assets: tuple[str, ...], *, downstream: bool = False
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tenpo.pipelines import materialize_dates
    from tenpo.pipelines.run import RunProgress

    what = ", ".join(assets) + (" and downstream" if downstream else "")
    console.print(f"dagster: materializing {what} for {days[0]}..{days[-1]}")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def show(p: RunProgress) -> None:
            step = f" · {p.step} done" if p.step else ""
            progress.update(
                task,
                description=f"run {p.run}/{p.runs} {p.first}..{p.last}{step}",
                completed=p.steps_done,
                total=p.steps,
            )

        results = materialize_dates(cfg, days, assets, downstream=downstream, on_progress=show)
    table = Table("asset", "partitions", "rows")
    for result in results:
        for event in result.get_asset_materialization_events():
            mat = event.materialization
            by_date = getattr(mat.metadata.get("rows_by_date"), "data", None) or {}
            rows = by_date.get(mat.partition, "") if mat.partition else ""
            if not mat.partition and "rows" in mat.metadata:
                rows = getattr(mat.metadata["rows"], "value", "")
            table.add_row(mat.asset_key.to_user_string(), mat.partition or "", str(rows))
    console.print(table)
    console.print(f"[green]done[/]: {days[0]}..{days[-1]} in {len(results)} run(s)")


_ONLY = typer.Option(
    None,
    "--only",
    help="Asset group(s) only (repeatable): kpis (marts, exports, store list), devices, ml.",
)
_SELECT = typer.Option(None, "--select", "-a", help="Asset to build (repeatable), added to --only.")


@app.command()
@handles_errors
def materialize(
    first: datetime = _FROM,
    last: datetime = _TO,
    only: list[str] = _ONLY,
    select: list[str] = _SELECT,
) -> None:
    """Build every mart (KPIs, device health, ML), the store list and every datamart export.

    ``--only kpis`` (or devices, ml) and ``--select ASSET`` narrow it down.
    """
    from tenpo.pipelines.run import resolve_selection

    _run(settings(), _dates(first, last), resolve_selection(only or (), select or ()))


@app.command()
@handles_errors
def forecast(
    as_of: datetime | None = typer.Option(  # noqa: B008 - Typer declares options as defaults
        None,
        "--as-of",
        help="Last business date of the history (default: the latest).",
        formats=["%Y-%m-%d"],
    ),
) -> None:
    """Forecast every store (daily 90 days, hourly 14) and export it to the datamart.

    What the daily ``forecast_daily_schedule`` does; safe to re-run (each store's forecast is
    replaced).
    """
    from tenpo.lake import open_lake
    from tenpo.pipelines.ml import latest_business_date
    from tenpo.pipelines.run import materialize_forecasts

    cfg = settings()
    if latest_business_date(open_lake(cfg.lake_root)) is None:
        raise BadInput("mart_store_daily is empty: run `tenpo jobs materialize` first")
    result = materialize_forecasts(cfg, as_of=as_of.date() if as_of else None)
    stores = _forecast_stores(result)
    if stores == 0:  # the asset succeeds with nothing to forecast: say so, do not claim a write
        console.print(
            "no store has enough history to forecast yet (a forecast needs at least 21"
            " observed days per KPI); nothing written"
        )
        return
    console.print(f"forecasts of {stores} store(s) written to the datamart")


def _forecast_stores(result: Any) -> int | None:
    """Stores the run's ``mart_store_forecast`` forecast (its metadata), None if unknown."""
    from tenpo.pipelines.forecast import MART_STORE_FORECAST_KEY

    for mat in result.asset_materializations_for_node(MART_STORE_FORECAST_KEY):
        value = mat.metadata.get("stores")
        return int(value.value) if value is not None else None
    return None


@app.command()
@handles_errors
def backfill(
    first: datetime = _FROM,
    last: datetime = _TO,
    asset: list[str] = typer.Option(  # noqa: B008 - Typer declares options as defaults
        None, "--asset", "-a", help="Asset to rebuild (repeatable); default: the KPI assets."
    ),
    downstream: bool = typer.Option(
        False, "--downstream", help="Also rebuild every asset depending on the given ones."
    ),
) -> None:
    """Rebuild assets for a date range. Always safe to re-run: partitions are replaced whole."""
    from tenpo.pipelines import DEFAULT_ASSETS

    chosen = tuple(asset) if asset else DEFAULT_ASSETS
    _run(settings(), _dates(first, last), chosen, downstream=downstream)


def ui_command(cfg: Settings, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``dagster dev`` command line and environment for ``tenpo jobs ui``."""
    from tenpo.pipelines import ensure_dagster_home

    home = ensure_dagster_home(cfg)
    exe = shutil.which("dagster")
    base = [exe] if exe else [sys.executable, "-m", "dagster"]
    cmd = [*base, "dev", "-m", "tenpo.pipelines.definitions", "-h", host, "-p", str(port)]
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    # The code location resolves its settings from the environment: pin them to ours.
    env["TENPO_DATA_DIR"] = str(cfg.data_dir.resolve())
    for name, value in (("TENPO_LAKE_URL", cfg.lake_url), ("TENPO_DATAMART_URL", cfg.datamart_url)):
        if value:
            env[name] = value
    return cmd, env


@app.command()
@handles_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", "-h", help="Interface to listen on."),
    port: int = typer.Option(3000, "--port", "-p", help="Port of the Dagster UI."),
) -> None:
    """Run the Dagster UI (``dagster dev``) on tenpo's assets, storing runs in the data dir."""
    cmd, env = ui_command(settings(), host, port)
    console.print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
    raise typer.Exit(run_until_stopped(cmd, env))


def run_until_stopped(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` until it ends, or until SIGINT/SIGTERM stop it: then 0.

    The first signal asks the child to stop (SIGTERM), a second one kills it; the child's own
    status is returned when it ends by itself.
    """
    import signal

    children: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if children and children[0].poll() is None:
            if len(stopping) == 1:
                children[0].terminate()
            else:
                children[0].kill()

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    previous = {sig: signal.signal(sig, stop) for sig in stop_signals}
    # A signal mask inherited from the parent (or set by a library) would hold SIGTERM
    # pending until the child ends by itself: the runner (and its child) unblock the signals
    # they promise to obey.
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    try:
        children.append(subprocess.Popen(cmd, env=env))
        if stopping:  # a signal came while the child started
            children[0].terminate()
        code = children[0].wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping else code
