"""`tenpo warehouse` commands: ad-hoc SQL over every raw and mart table, a DuckDB file of views."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tenpo.cli._common import console, handles_errors, settings

app = typer.Typer(no_args_is_help=True)

_OUT = typer.Option(
    None, "--out", "-o", help="DuckDB file to write (default: settings.warehouse_file)."
)


@app.command()
@handles_errors
def views(
    out: Path | None = _OUT,
) -> None:
    """Write a DuckDB file with one view per raw and mart table, for analysts' SQL tools."""
    from tenpo.lake import open_lake
    from tenpo.warehouse import Warehouse
    from tenpo.warehouse.views import write_views

    cfg = settings()
    target = out or cfg.warehouse_file
    # A DuckDB file whatever TENPO_ENGINE says: the views are DuckDB SQL.
    with Warehouse(open_lake(cfg.lake_root)) as wh:
        names = write_views(wh, target)
    console.print(f"[green]{len(names)} views[/] in {target}: {', '.join(names)}")
    console.print(f"open it with: duckdb -readonly {target}")


@app.command()
@handles_errors
def sql(
    query: str = typer.Argument(..., help="A SELECT over the tables, by name."),
    limit: int = typer.Option(50, min=1, help="Rows printed at most."),
) -> None:
    """Run a SELECT over the warehouse tables (raw tables deduplicated) and print the rows.

    The query runs on the configured engine (TENPO_ENGINE): DuckDB SQL, or Spark SQL."""
    from tenpo.warehouse import open_warehouse

    with open_warehouse(settings()) as wh:
        result = wh.sql(query)
    table = Table(*result.column_names)
    for row in result.slice(0, limit).to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    more = f" (first {limit} shown)" if result.num_rows > limit else ""
    console.print(f"{result.num_rows} row(s){more}")
