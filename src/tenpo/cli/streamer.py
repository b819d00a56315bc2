"""`tenpo streamer` commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tenpo.cli._common import console, handles_errors, settings
from tenpo.control.directory import Directory
from tenpo.core.settings import Settings

if TYPE_CHECKING:
    from tenpo.streamer import Streamer

app = typer.Typer(no_args_is_help=True)


def open_directory(cfg: Settings) -> Directory:
    """The control plane's directory (imported here: other commands need no database)."""
    from tenpo.control import ControlPlane

    return ControlPlane.open(cfg.control_db_url).directory()


@contextmanager
def opened_streamer() -> Iterator[Streamer]:
    """A streamer over the configured lake, bus and control plane; closed (lease released,
    bus closed) on the way out."""
    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    cfg = settings()
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    streamer = Streamer(cfg, lake, bus, open_directory(cfg))
    try:
        yield streamer
    finally:
        streamer.close()
        bus.close()


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
    from tenpo.streamer import BatchStats, stop_on_signals

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

    with opened_streamer() as streamer, progress:
        if once:
            on_batch(streamer.run_once())
        elif until_idle:
            streamer.run_until_idle(idle, on_batch=on_batch)
        else:
            with stop_on_signals() as stop:
                streamer.run_forever(stop, on_batch=on_batch)
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
    with opened_streamer() as streamer:
        stats = streamer.replay(tenant_id=tenant, source=source)
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
    with opened_streamer() as streamer:
        deleted = streamer.recover(all_owners=True) if all_owners else streamer.reclaim_dead()
    whose = "every streamer's" if all_owners else "dead streamers'"
    console.print(f"deleted {deleted} uncommitted part(s) of {whose} batches")
