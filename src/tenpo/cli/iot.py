"""`tenpo iot` commands: broker access for the registered devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenpo.cli._common import console, handles_errors, settings

app = typer.Typer(no_args_is_help=True)


@app.command("acl")
@handles_errors
def acl(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the Mosquitto files.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Only these tenants (repeatable).")
    ] = None,
) -> None:
    """Write Mosquitto passwd/ACL files: each active device may publish only to its own topic."""
    from tenpo.control import ControlPlane
    from tenpo.iot.acl import DeviceUser, write_mosquitto_files

    s = settings()
    control = ControlPlane.open(s.control_db_url)
    try:
        tenants = tenant or [t.tenant_id for t in control.list_tenants()]
        devices = [
            DeviceUser(t, d.device_id)
            for t in tenants
            for d in control.list_devices(t)
            if d.active and d.kind != "rgb_camera"
        ]
    finally:
        control.dispose()
    files = write_mosquitto_files(
        devices,
        out,
        prefix=s.mqtt_topic_prefix,
        subscriber_user=s.mqtt_username or "tenpo-iot",
        subscriber_password=s.mqtt_password,
    )
    console.print(
        f"{files.devices} device(s) ({files.new_devices} new) → {files.passwd}, {files.acl}, "
        f"{files.conf}; passwords in {files.credentials} (keep it secret)"
    )
