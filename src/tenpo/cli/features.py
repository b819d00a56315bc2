"""`tenpo features` commands: erase a person, expire old vectors."""

from __future__ import annotations

import typer

from tenpo.cli._common import console, handles_errors, settings

app = typer.Typer(no_args_is_help=True)


@app.command("erase")
@handles_errors
def erase(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id."),
    person: str = typer.Option(..., "--person", help="PersonID to erase."),
) -> None:
    """Delete every face vector of a PersonID (the person comes back as new)."""
    from tenpo.core.errors import NotFound
    from tenpo.features import open_feature_store

    store = open_feature_store(settings())
    try:
        n = store.erase(tenant, person)
    finally:
        store.close()
    if n == 0:
        raise NotFound(f"tenant {tenant!r} has no person {person!r} in the feature DB")
    console.print(f"erased {n} vectors of {person}")


@app.command("expire")
@handles_errors
def expire() -> None:
    """Delete vectors of persons not seen within the retention (feature_retention_days)."""
    from tenpo.features import open_feature_store

    store = open_feature_store(settings())
    try:
        n = store.expire()
    finally:
        store.close()
    console.print(f"expired {n} vectors")
