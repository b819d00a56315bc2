"""`tenpo pos` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenpo.cli._common import console, handles_errors, settings
from tenpo.core.errors import BadInput

app = typer.Typer(no_args_is_help=True)


@app.command("convert")
@handles_errors
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Vendor sales files.", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    vendor: Annotated[
        str,
        typer.Option(
            help="POS vendor: a key of `tenpo pos vendors` or a declarative vendor (mapping)."
        ),
    ],
    master: Annotated[
        Path | None,
        typer.Option(
            help="POS master, for vendors whose registers resolve through one.", exists=True
        ),
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant id written to every row.")] = "local",
    stores: Annotated[
        Path | None,
        typer.Option(
            help="stores.csv (store_id,code[,timezone]); default: id = code.", exists=True
        ),
    ] = None,
    timezone: Annotated[str, typer.Option(help="Timezone of stores without one.")] = "Asia/Tokyo",
    store: Annotated[
        str | None,
        typer.Option(
            help="Store code the files belong to, for a vendor whose files name no store "
            "(e.g. airregi); refused for the others."
        ),
    ] = None,
) -> None:
    """Convert vendor POS files offline to raw_pos_transactions/raw_pos_lines Parquet."""
    from tenpo.pos import convert_files, offline_directory
    from tenpo.pos.convert import master_vendor, write_result
    from tenpo.pos.mapped import load_mappings, mapping_dirs

    cfg = settings()
    mappings = load_mappings(mapping_dirs(cfg.data_dir, cfg.vendor_mappings_dir))
    master_of = master_vendor(vendor, mappings)
    if master_of is not None and master is None:
        raise BadInput(f"{vendor} needs --master: registers resolve to stores through it")
    directory, master_rejects = offline_directory(
        tenant,
        master=master.read_bytes() if master else None,
        stores_csv=stores,
        timezone=timezone,
        master_of=master_of,
    )
    result = convert_files(vendor, inputs, directory, tenant, mappings=mappings, store=store)
    result.rejects[:0] = master_rejects
    written = write_result(result, out)
    for name, tbl in result.tables.items():
        console.print(f"{name}: [bold]{tbl.num_rows}[/] rows → {written[name]}")
    style = "yellow" if result.rejects else "green"
    console.print(
        f"quarantine: [{style}]{len(result.rejects)}[/] rejects → {written['quarantine']}"
    )


@app.command("vendors")
@handles_errors
def vendors(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the Markdown table of docs/vendors.md.")
    ] = False,
    write: Annotated[
        list[Path] | None,
        typer.Option(help="Rewrite the vendors table of these Markdown files in place."),
    ] = None,
) -> None:
    """List the POS vendors: every plugin and declarative vendor, with its upload endpoints."""
    from tenpo.pos.vendors import markdown_table, registry_for, routes, with_table

    if write:
        for path in write:
            path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
            console.print(f"vendors table written to {path}")
        return
    if markdown:
        typer.echo(markdown_table(), nl=False)
        return
    known = registry_for(settings())
    for source, (route, content_type) in routes(known).items():
        console.print(f"POST {route}  [dim]{content_type}[/]  → landing/{source}")
    for vendor in known.values():
        console.print(f"[bold]{vendor.key}[/]: {vendor.title}")


@app.command("pull")
@handles_errors
def pull(
    vendor: Annotated[str, typer.Argument(help="A vendor with a pull connector (e.g. smaregi).")],
    tenant: Annotated[str, typer.Option(help="Tenant the pulled sales belong to.")],
    since: Annotated[
        str | None, typer.Option("--from", help="Backfill from (ISO date-time, by sale time).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Backfill to / pull up to (ISO date-time).")
    ] = None,
) -> None:
    """Pull a vendor's sales from its API into the lake (credentials from the environment,
    e.g. SMAREGI_CONTRACT_ID / SMAREGI_CLIENT_ID / SMAREGI_CLIENT_SECRET)."""
    import importlib
    import os
    from datetime import datetime

    from tenpo.bus import open_bus
    from tenpo.lake import open_lake
    from tenpo.lake.landing import LandingZone
    from tenpo.pos.vendors import built_in

    pullable = {k: v.connector for k, v in built_in().items() if v.connector}
    if vendor not in pullable:
        raise BadInput(f"no pull connector for {vendor!r}; vendors with one: {', '.join(pullable)}")

    def when(text: str | None, name: str) -> datetime | None:
        if text is None:
            return None
        try:
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise BadInput(f"{name} {text!r} is not an ISO date-time") from exc
        return ts if ts.utcoffset() is not None else ts.astimezone()

    start, end = when(since, "--from"), when(until, "--to")
    if start is not None and end is None:
        raise BadInput("--from needs --to (a backfill is a closed range)")
    cfg = settings()
    module = importlib.import_module(str(pullable[vendor]))
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    try:
        report = module.run_pull(
            tenant,
            lake,
            LandingZone(lake, bus, cfg.default_timezone),
            environ=os.environ,
            until=None if start else end,
            backfill=(start, end) if start and end else None,
        )
    finally:
        bus.close()
    console.print(
        f"{vendor}: {report.windows} windows, {report.pages} pages, "
        f"{report.transactions} transactions, {report.landed} new objects"
        + (f"; cursor {report.cursor.isoformat()}" if report.cursor else "")
    )
