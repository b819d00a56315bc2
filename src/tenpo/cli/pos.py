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
        str, typer.Option(help="vendor_a, vendor_b or a declarative vendor (mapping file).")
    ] = "vendor_a",
    master: Annotated[
        Path | None, typer.Option(help="Vendor A POS master (CP932 CSV).", exists=True)
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant id written to every row.")] = "local",
    stores: Annotated[
        Path | None,
        typer.Option(
            help="stores.csv (store_id,code[,timezone]); default: id = code.", exists=True
        ),
    ] = None,
    timezone: Annotated[str, typer.Option(help="Timezone of stores without one.")] = "Asia/Tokyo",
) -> None:
    """Convert vendor POS files offline to raw_pos_transactions/raw_pos_lines Parquet."""
    from tenpo.pos import convert_files, offline_directory
    from tenpo.pos.convert import write_result
    from tenpo.pos.mapped import load_mappings, mapping_dirs

    cfg = settings()
    mappings = load_mappings(mapping_dirs(cfg.data_dir, cfg.vendor_mappings_dir))
    by_master = vendor == "vendor_a" or (
        vendor in mappings and mappings[vendor].store_resolution == "master"
    )
    if by_master and master is None:
        raise BadInput(f"{vendor} needs --master: registers resolve to stores through it")
    directory, master_rejects = offline_directory(
        tenant,
        master=master.read_bytes() if master else None,
        stores_csv=stores,
        timezone=timezone,
    )
    result = convert_files(vendor, inputs, directory, tenant, mappings=mappings)
    result.rejects[:0] = master_rejects
    written = write_result(result, out)
    for name, tbl in result.tables.items():
        console.print(f"{name}: [bold]{tbl.num_rows}[/] rows → {written[name]}")
    style = "yellow" if result.rejects else "green"
    console.print(
        f"quarantine: [{style}]{len(result.rejects)}[/] rejects → {written['quarantine']}"
    )
