"""`tenpo bench scale`: a simulated chain through the whole platform, every stage measured."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tenpo.cli._common import console, handles_errors, settings

app = typer.Typer(no_args_is_help=True)

RESULTS = Path("bench/results")


class _Bars:
    """One Rich bar per stage; the previous stage's bar is completed when the next starts."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: TaskID | None = None

    def __call__(self, name: str, total: int | None) -> Any:
        self._finish()
        task = self.progress.add_task(name, total=total)
        self.current = task
        return lambda n: self.progress.advance(task, n)

    def _finish(self) -> None:
        if self.current is not None:
            task = self.progress.tasks[self.current]
            self.progress.update(
                self.current, total=task.completed or 1, completed=task.completed or 1
            )

    def close(self) -> None:
        self._finish()


def print_report(report: dict[str, Any]) -> None:
    """The stage table and the headline figures."""
    table = Table(
        title=f"scale {report['stores']} stores × {report['days']} days "
        f"({report.get('profile', 'embedded')} profile, {report.get('engine', 'duckdb')}, "
        f"{report['datamart']} datamart, {report.get('lake', 'local')} lake)"
    )
    for col in ("stage", "seconds", "CPU s", "moved", "per second", "peak RSS"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, st in report["stages"].items():
        amounts = {
            k: v
            for k, v in st.items()
            if k not in ("seconds", "peak_rss_bytes")
            and not k.startswith("cpu_")
            and not k.endswith("_per_s")
        }
        moved = ", ".join(f"{v:,} {k}" for k, v in amounts.items())
        rates = ", ".join(
            f"{st[k + '_per_s']:,.0f} {k}/s" for k in amounts if st.get(k + "_per_s") is not None
        )
        rss = f"{st.get('peak_rss_bytes', 0) / 2**20:,.0f} MiB"
        cpu = f"{st['cpu_seconds']:.2f}" if "cpu_seconds" in st else ""
        table.add_row(name, f"{st['seconds']:.2f}", cpu, moved, rates, rss)
    console.print(table)
    per = report["lake_bytes_per_store_day"]
    console.print(
        f"end to end (send → API): {report['e2e_seconds']:.1f} s, "
        f"{report.get('e2e_cpu_seconds', 0):.1f} CPU s (process tree, user + system), "
        f"{report['e2e_raw_rows_per_s'] or 0:,.0f} raw rows/s over {report['raw_rows']:,} rows; "
        f"peak RSS {report['peak_rss_bytes'] / 2**20:,.0f} MiB; lake per store-day: "
        f"landing {per['landing'] / 1024:,.0f} KiB, tables {per['tables'] / 1024:,.0f} KiB",
        highlight=False,
    )
    if report["ground_truth_exact"]:
        console.print(
            f"[bold green]✓ all {report['store_days_checked']:,} store-days equal the ground "
            "truth[/] (net sales, receipts, visitors)"
        )
    else:
        console.print(f"[bold red]{len(report['mismatches'])}+ differences from the truth:[/]")
        for m in report["mismatches"]:
            console.print(f"  {m}", highlight=False)


@app.command("scale")
@handles_errors
def scale(
    stores: int = typer.Option(100, "--stores", min=1, help="Stores in the simulated chain."),
    days: int = typer.Option(30, "--days", min=1, help="Days simulated."),
    tenants: int = typer.Option(2, "--tenants", min=1, help="Tenants (stores split evenly)."),
    datamart: str = typer.Option(
        "sqlite", "--datamart", help="Datamart engine: sqlite or postgresql (a fresh database)."
    ),
    pg_server: str = typer.Option(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "--pg-server",
        help="PostgreSQL server for --datamart postgresql and --profile production (a "
        "maintenance database URL).",
    ),
    profile: str = typer.Option(
        "embedded",
        "--profile",
        help="embedded (SQLite, in-process bus) or production: fresh PostgreSQL databases "
        "on --pg-server for control plane, datamart, ledger and Dagster storage, a fresh "
        "NATS JetStream stream on TENPO_NATS_URL; the engine is TENPO_ENGINE.",
    ),
    lake_url: str | None = typer.Option(
        None, "--lake-url", help="Put the lake there (s3://bucket/prefix, empty) instead."
    ),
    device_path: str = typer.Option(
        "auto", "--devices", help="Device events over mqtt, http, or auto (MQTT if it answers)."
    ),
    keep_databases: bool = typer.Option(
        False,
        "--keep-databases",
        help="Keep the run's PostgreSQL databases (tenpo_scale_{N}x{D}_{run id}_*, named in "
        "the result) instead of dropping them at the end.",
    ),
    seed: int = typer.Option(7, help="Simulation seed."),
    out: Annotated[Path, typer.Option("--out", help="Folder of the JSON result.")] = RESULTS,
) -> None:
    """Simulate a chain, run it through the whole platform, time every stage, check the truth.

    Writes ``{out}/scale_{stores}x{days}.json``. Exit status 1 when the API's KPIs differ
    from the simulator's ground truth.
    """
    from tenpo.core.errors import BadInput
    from tenpo.flow.scale import ScaleReport, run_scale, write_result

    if datamart not in ("sqlite", "postgresql"):
        raise BadInput(f"--datamart must be sqlite or postgresql, not {datamart!r}")
    if profile not in ("embedded", "production"):
        raise BadInput(f"--profile must be embedded or production, not {profile!r}")
    if device_path not in ("auto", "mqtt", "http"):
        raise BadInput(f"--devices must be auto, mqtt or http, not {device_path!r}")
    kind: Literal["sqlite", "postgresql"] = "postgresql" if datamart == "postgresql" else "sqlite"
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("tenpo", "dagster"):
            logging.getLogger(name).setLevel(logging.WARNING)
    base = settings()
    started = time.perf_counter()

    def checkpoint(partial: ScaleReport) -> None:
        # After every stage: a run that fails (or is killed) still leaves what it measured.
        write_result(partial, out, wall_seconds=round(time.perf_counter() - started, 1))

    with Progress(
        TextColumn("[bold]{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bars = _Bars(progress)
        result = run_scale(
            base,
            (base.data_dir / "scale").resolve(),
            stores=stores,
            days=days,
            tenants=tenants,
            datamart=kind,
            datamart_server=pg_server,
            seed=seed,
            mqtt=None if device_path == "auto" else device_path == "mqtt",
            progress=bars,
            on_stage=checkpoint,
            profile="production" if profile == "production" else "embedded",
            lake_url=lake_url,
            keep_databases=keep_databases,
        )
        bars.close()
    report = result.as_dict()
    path = write_result(result, out, wall_seconds=round(time.perf_counter() - started, 1))
    body = json.loads(path.read_text(encoding="utf-8"))
    print_report(report)
    mark = "met" if body["met"] else "NOT met"
    console.print(
        f"{body['name']}: {body['value']:.1f} s vs floor {body['baseline']:.1f} s → ratio "
        f"{body['ratio']:.2f} ({mark}); written to {path}",
        highlight=False,
    )
    if result.databases_kept:
        console.print(f"kept databases: {', '.join(result.databases)}", highlight=False)
    if result.mismatches:
        raise typer.Exit(1)
