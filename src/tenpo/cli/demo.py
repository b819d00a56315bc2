"""`tenpo demo`: the whole platform end to end on the embedded defaults, rendered with Rich.

The run itself is :func:`tenpo.flow.demo.run_demo`; this module shows its progress, the KPI
summary against the ground truth, and how to log in.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tenpo.cli._common import console, err_console, handles_errors, settings
from tenpo.flow.demo import AddTask, DemoInterrupted, DemoObserver, DemoResult, run_demo

log = logging.getLogger(__name__)


class RichObserver(DemoObserver):
    """The demo's progress on the console: spinners, bars, the summary tables."""

    def __init__(self, *, serve: bool) -> None:
        self.serve = serve

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        with console.status(description):
            yield

    @contextlib.contextmanager
    def tasks(self) -> Iterator[AddTask]:
        with Progress(
            TextColumn("[bold]{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:

            def add_task(description: str, total: int) -> Any:
                task = progress.add_task(description, total=total)
                return lambda: progress.advance(task)

            yield add_task

    def note(self, text: str) -> None:
        console.print(text)

    def ready(self, result: DemoResult) -> None:
        from tenpo.flow import DEMO_PASSWORD

        _print_summary(result, result.chain)
        if result.sim_dir is not None:
            _print_initiatives(result.initiatives, result.sim_dir)
        console.print(
            f"\n[bold]Dashboard:[/] {result.dashboard_url}"
            + ("" if self.serve else " (served by `tenpo demo` without --no-serve)")
        )
        for tenant_id, email in result.logins.items():
            console.print(f"  {tenant_id}: log in as {email} / {DEMO_PASSWORD}", highlight=False)
        console.print("A read key per tenant (the data dir is wiped by the next demo):")
        for tenant_id, token in result.keys.items():
            console.print(f"  {tenant_id}: {token}", highlight=False, soft_wrap=True)

    def serving(self, url: str) -> None:
        console.print(
            f"\n[bold green]API serving at {url}[/] (docs at {url}/docs). "
            "Ctrl-C or SIGTERM to stop."
        )


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
    try:
        result = run_demo(
            settings(),
            stores=stores,
            days=days,
            seed=seed,
            serve=serve,
            lake_url=lake_url,
            observer=RichObserver(serve=serve),
        )
    except DemoInterrupted as exc:
        err_console.print(f"[bold red]demo {exc}[/] (servers stopped, connections closed)")
        raise typer.Exit(128 + exc.signum) from None
    console.print(f"demo finished in {time.perf_counter() - started:.1f}s")
    if result.mismatches:
        raise typer.Exit(1)


__all__ = ["RichObserver", "demo"]
