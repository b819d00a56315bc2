"""The ``tenpo`` command (Typer + Rich). Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

from tenpo.cli import (
    admin,
    bench,
    demo,
    features,
    iot,
    jobs,
    pos,
    serve,
    simulate,
    streamer,
    video,
    warehouse,
)
from tenpo.cli._common import app_callback

app = typer.Typer(
    name="tenpo",
    help="tenpo: retail-store analytics data platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.callback()(app_callback)
app.add_typer(admin.app, name="admin", help="Manage tenants, stores, devices, registers, keys.")
app.add_typer(serve.app, name="serve", help="Run the gateway and/or the API server.")
app.add_typer(streamer.app, name="streamer", help="Load landed objects into raw tables.")
app.add_typer(pos.app, name="pos", help="POS Pre-ETL tools.")
app.add_typer(jobs.app, name="jobs", help="Materialize and backfill pipeline assets.")
app.add_typer(iot.app, name="iot", help="IoT devices: broker access (Mosquitto ACL).")
app.add_typer(video.app, name="video", help="Record cameras and analyze video.")
app.add_typer(features.app, name="features", help="Feature DB: erase and expire face vectors.")
app.add_typer(warehouse.app, name="warehouse", help="Ad-hoc SQL and DuckDB views over the lake.")
app.add_typer(bench.app, name="bench", help="Benchmarks: the whole platform at scale.")
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)


def main() -> None:
    """Console-script entry point."""
    app()
