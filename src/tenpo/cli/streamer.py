"""`tenpo streamer` commands."""

from __future__ import annotations

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tenpo.cli._common import console, handles_errors, settings
from tenpo.control.directory import Directory
from tenpo.core.settings import Settings

app = typer.Typer(no_args_is_help=True)


def open_directory(cfg: Settings) -> Directory:
    """The control plane's directory (imported here: other commands need no database)."""
    from tenpo.control import ControlPlane

    return ControlPlane.open(cfg.control_db_url).directory()


@app.command("run")
@handles_errors
def run(
    once: bool = typer.Option(False, "--once", help="Load one batch, then exit."),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Load until no event arrives for --idle seconds, then exit."
    ),
    idle: float = typer.Option(2.0, "--idle", min=0.1, help="Quiet seconds that mean idle."),
) -> None:
    """Follow objects.registered and load landed objects into the raw tables."""
    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.streamer import BatchStats, Streamer, stop_on_signals

    cfg = settings()
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, open_directory(cfg))
    total = BatchStats()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]streamer[/]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task(str(total))

    def on_batch(stats: BatchStats) -> None:
        total.add(stats)
        progress.update(task, description=str(total))

    try:
        with progress:
            if once:
                on_batch(streamer.run_once())
            elif until_idle:
                streamer.run_until_idle(idle, on_batch=on_batch)
            else:
                with stop_on_signals() as stop:
                    streamer.run_forever(stop, on_batch=on_batch)
    finally:
        streamer.close()
        bus.close()
    console.print(f"loaded: {total}")


@app.command("replay")
@handles_errors
def replay(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's objects."),
    source: str | None = typer.Option(
        None, "--source", help="Only objects of this landing source (e.g. pos_vendor_a)."
    ),
) -> None:
    """Parse again the objects with replayable rejects (after a master or a store was added)."""
    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    cfg = settings()
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, open_directory(cfg))
    try:
        stats = streamer.replay(tenant_id=tenant, source=source)
    finally:
        streamer.close()
        bus.close()
    console.print(
        f"replayed {stats.replayed} object(s): {stats.total_rows} new rows, "
        f"{stats.rejects} record(s) still quarantined"
    )


@app.command("recover")
@handles_errors
def recover(
    all_owners: bool = typer.Option(
        False,
        "--all-owners",
        help="Delete every streamer's uncommitted parts, live or not: only while none runs.",
    ),
) -> None:
    """Delete the uncommitted parts of dead streamers (lease expired or process gone)."""
    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    cfg = settings()
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, open_directory(cfg))
    try:
        deleted = streamer.recover(all_owners=True) if all_owners else streamer.reclaim_dead()
    finally:
        streamer.close()
        bus.close()
    whose = "every streamer's" if all_owners else "dead streamers'"
    console.print(f"deleted {deleted} uncommitted part(s) of {whose} batches")
