"""`tenpo simulate`: write a simulated chain's source files and ground truth."""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tenpo.cli._common import console, err_console

_DEFAULT_START = datetime(2026, 10, 5)
_DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into.")],
    tenants: Annotated[int, typer.Option("--tenants", help="Number of tenants.")] = 2,
    stores: Annotated[int, typer.Option("--stores", help="Total number of stores.")] = 10,
    days: Annotated[int, typer.Option("--days", help="Business dates to simulate.")] = 14,
    start: Annotated[
        datetime, typer.Option("--start", formats=["%Y-%m-%d"], help="First business date.")
    ] = _DEFAULT_START,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed → same bytes).")] = 7,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes writing tenants in parallel.")
    ] = _DEFAULT_WORKERS,
    dst_store_share: Annotated[
        float,
        typer.Option(
            "--dst-store-share",
            help="Share of stores in London, New York and Auckland (daylight saving time).",
        ),
    ] = 0.0,
) -> None:
    """Simulate a retail chain: POS, device and visitor files per FORMATS.md, plus ground truth."""
    from tenpo.simulate import SimConfig, simulate_chain, write_chain, writers

    try:
        config = SimConfig(
            seed=seed,
            tenants=tenants,
            stores=stores,
            days=days,
            start_date=_day(start),
            dst_store_share=dst_store_share,
        )
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        err_console.print(f"[bold red]error:[/] invalid simulation settings: {problems}")
        raise typer.Exit(2) from exc
    if workers < 1:
        err_console.print("[bold red]error:[/] --workers must be at least 1")
        raise typer.Exit(2)
    began = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        generate = progress.add_task("Simulating", total=days)
        chain = simulate_chain(
            config, on_progress=lambda done, total: progress.update(generate, completed=done)
        )
        parallel = (
            workers > 1
            and len(chain.tenants) > 1
            and len(chain.days) >= writers.PARALLEL_MIN_STORE_DAYS
        )
        parts = len(chain.tenants) if parallel else days
        writing = progress.add_task("Writing files", total=parts)
        manifest = write_chain(
            chain,
            out,
            workers=workers,
            on_progress=lambda done, total: progress.update(writing, completed=done),
        )
    receipts = sum(d.sales.receipt_count for d in chain.days)
    visits = sum(len(d.traffic.entry_s) for d in chain.days)
    console.print(
        f"[green]Simulated[/] {len(chain.tenants)} tenants, {len(chain.stores)} stores, "
        f"{days} days: {receipts:,} receipts, {visits:,} visits, "
        f"{len(manifest.entries):,} files in {out} ({time.perf_counter() - began:.1f} s)"
    )


def _day(value: datetime) -> date:
    return value.date()


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    """One validation problem as "field: message"."""
    where = ".".join(str(p) for p in loc) or "settings"
    return f"{where}: {msg.removeprefix('Value error, ')}"
