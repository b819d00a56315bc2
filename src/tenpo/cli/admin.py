"""`tenpo admin` commands: tenants, stores, devices, POS registers, API keys, users, staff,
bulk import.

Each command opens the control plane at ``settings.control_db_url`` (migrating it first)
and reports tenpo errors as one line with exit code 2.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from tenpo.cli._common import console, err_console, handles_errors, settings
from tenpo.control import ControlPlane, migrate
from tenpo.core.errors import BadInput

app = typer.Typer(no_args_is_help=True)
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants.")
store_app = typer.Typer(no_args_is_help=True, help="Stores of a tenant.")
device_app = typer.Typer(no_args_is_help=True, help="Devices (people counters, cameras).")
register_app = typer.Typer(no_args_is_help=True, help="POS registers and their stores.")
key_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(store_app, name="store")
app.add_typer(device_app, name="device")
app.add_typer(register_app, name="register")
app.add_typer(key_app, name="key")
user_app = typer.Typer(no_args_is_help=True, help="Dashboard users.")
app.add_typer(user_app, name="user")
staff_app = typer.Typer(
    no_args_is_help=True, help="Enrolled staff (face descriptors; never counted as visitors)."
)
app.add_typer(staff_app, name="staff")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id.")]


@contextmanager
def _plane() -> Iterator[ControlPlane]:
    plane = ControlPlane.open(settings().control_db_url)
    try:
        yield plane
    finally:
        plane.dispose()


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{option}: invalid date {value!r} (expected YYYY-MM-DD)") from None


def _parse_json(value: str, option: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{option}: invalid JSON ({exc.msg})") from None


@app.command("migrate")
@handles_errors
def migrate_cmd() -> None:
    """Upgrade the control-plane database to the newest schema."""
    migrate(settings().control_db_url)
    console.print("control plane schema is up to date")


@tenant_app.command("create")
@handles_errors
def tenant_create(
    tenant_id: Annotated[str, typer.Argument(help="Short slug, e.g. acme.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
) -> None:
    """Create a tenant."""
    with _plane() as plane:
        tenant = plane.create_tenant(tenant_id, name)
    console.print(f"tenant [bold]{tenant.tenant_id}[/] created")


@tenant_app.command("list")
@handles_errors
def tenant_list() -> None:
    """List tenants."""
    with _plane() as plane:
        tenants = plane.list_tenants()
    table = Table("tenant", "name", "created")
    for t in tenants:
        table.add_row(t.tenant_id, t.name, t.created_at.isoformat(timespec="seconds"))
    console.print(table)


@store_app.command("create")
@handles_errors
def store_create(
    tenant: Tenant,
    code: Annotated[str, typer.Option("--code", help="The tenant's store code.")],
    name: Annotated[str, typer.Option("--name", help="Store name.")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA timezone.")] = "Asia/Tokyo",
    industry: Annotated[
        str | None, typer.Option("--industry", help="apparel, drugstore, supermarket, cafe, ...")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="Region label.")] = None,
    area: Annotated[str | None, typer.Option("--area", help="Floor area in m².")] = None,
    hours: Annotated[
        str | None,
        typer.Option("--hours", help='Opening hours JSON: {"mon": ["10:00", "21:00"], ...}.'),
    ] = None,
) -> None:
    """Create a store."""
    opening_hours = _parse_json(hours, "--hours") if hours is not None else None
    with _plane() as plane:
        store = plane.create_store(
            tenant,
            code,
            name,
            timezone=timezone,
            industry=industry,
            region=region,
            floor_area_m2=area,
            opening_hours=opening_hours,
        )
    console.print(f"store [bold]{store.store_id}[/] ({store.code}) created")


@store_app.command("list")
@handles_errors
def store_list(tenant: Tenant) -> None:
    """List a tenant's stores."""
    with _plane() as plane:
        stores = plane.list_stores(tenant)
    table = Table(
        Column("store id", no_wrap=True),
        "code",
        "name",
        "timezone",
        "industry",
        "region",
        "area m²",
    )
    for s in stores:
        table.add_row(
            s.store_id,
            s.code,
            s.name,
            s.timezone,
            s.industry or "",
            s.region or "",
            str(s.floor_area_m2) if s.floor_area_m2 is not None else "",
        )
    console.print(table)


@device_app.command("create")
@handles_errors
def device_create(
    tenant: Tenant,
    store_code: Annotated[str, typer.Option("--store-code", help="Store code.")],
    device_id: Annotated[str, typer.Option("--id", help="Device id as the device sends it.")],
    kind: Annotated[str, typer.Option("--kind", help="people_counter, tof_camera or rgb_camera.")],
    line: Annotated[
        list[str] | None, typer.Option("--line", help="Counting line (repeatable).")
    ] = None,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Zone (repeatable).")] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="Device config JSON object.")
    ] = None,
) -> None:
    """Register a device in a store."""
    device_config = _parse_json(config, "--config") if config is not None else None
    with _plane() as plane:
        store = plane.store_by_code(tenant, store_code)
        device = plane.create_device(
            tenant,
            device_id,
            store.store_id,
            kind,
            lines=line or (),
            zones=zone or (),
            config=device_config,
        )
    console.print(f"device [bold]{device.device_id}[/] ({device.kind}) created in {store.code}")


@device_app.command("list")
@handles_errors
def device_list(tenant: Tenant) -> None:
    """List a tenant's devices."""
    with _plane() as plane:
        devices = plane.list_devices(tenant)
    table = Table(Column("device", no_wrap=True), "kind", "store id", "lines", "zones", "active")
    for d in devices:
        table.add_row(
            d.device_id, d.kind, d.store_id, ", ".join(d.lines), ", ".join(d.zones), str(d.active)
        )
    console.print(table)


@register_app.command("create")
@handles_errors
def register_create(
    tenant: Tenant,
    vendor: Annotated[str, typer.Option("--vendor", help="POS vendor, e.g. vendor_a.")],
    code: Annotated[str, typer.Option("--code", help="Register code (leading zeros kept).")],
    store_code: Annotated[str, typer.Option("--store-code", help="Store code.")],
    valid_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    valid_to: Annotated[
        str | None, typer.Option("--to", help="Last day (inclusive), YYYY-MM-DD.")
    ] = None,
) -> None:
    """Assign a POS register to a store for a date range."""
    first = _parse_date(valid_from, "--from")
    last = _parse_date(valid_to, "--to") if valid_to is not None else None
    with _plane() as plane:
        store = plane.store_by_code(tenant, store_code)
        reg = plane.create_register(tenant, vendor, code, store.store_id, first, last)
    until = reg.valid_to.isoformat() if reg.valid_to else "open end"
    console.print(
        f"register [bold]{reg.vendor}/{reg.register_code}[/] in {store.code} "
        f"from {reg.valid_from.isoformat()} to {until}"
    )


@key_app.command("create")
@handles_errors
def key_create(
    tenant: Tenant,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="pos:write, iot:write, video:write, read or admin."),
    ],
) -> None:
    """Create an API key and print its token (shown only this once)."""
    with _plane() as plane:
        key, token = plane.create_api_key(tenant, name, scope)
    console.print(f"API key [bold]{key.key_id}[/] created with scopes {', '.join(key.scopes)}")
    console.print(
        "[bold yellow]Store this token now; it cannot be shown again:[/]", highlight=False
    )
    console.print(token, highlight=False, soft_wrap=True)


@key_app.command("list")
@handles_errors
def key_list(tenant: Tenant) -> None:
    """List a tenant's API keys (never their secrets)."""
    with _plane() as plane:
        keys = plane.list_api_keys(tenant)
    table = Table(
        Column("key id", no_wrap=True), "name", "scopes", "created", "last used", "revoked"
    )
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            ", ".join(k.scopes),
            k.created_at.isoformat(timespec="seconds"),
            k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "",
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    console.print(table)


@key_app.command("revoke")
@handles_errors
def key_revoke(
    tenant: Tenant,
    key_id: Annotated[str, typer.Argument(help="Key id (key_...).")],
) -> None:
    """Revoke an API key."""
    with _plane() as plane:
        key = plane.revoke_api_key(tenant, key_id)
    console.print(f"API key [bold]{key.key_id}[/] revoked")


@user_app.command("create")
@handles_errors
def user_create(
    tenant: Tenant,
    email: Annotated[str, typer.Option("--email", help="Login email (unique).")],
    role: Annotated[str, typer.Option("--role", help="tenant_admin or store_manager.")],
    store_code: Annotated[
        list[str] | None,
        typer.Option("--store-code", help="A store a store_manager sees (repeatable)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="TENPO_NEW_USER_PASSWORD",
            help="Password (default: prompt, hidden).",
        ),
    ] = None,
) -> None:
    """Create a dashboard user; the password is prompted for unless given."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _plane() as plane:
        store_ids = [plane.store_by_code(tenant, code).store_id for code in store_code or ()]
        user = plane.create_user(tenant, email, password, role, store_ids)
    stores = f" for stores {', '.join(store_code or ())}" if store_code else ""
    console.print(f"user [bold]{user.email}[/] ({user.role}) created in {tenant}{stores}")


@user_app.command("passwd")
@handles_errors
def user_passwd(
    tenant: Tenant,
    user_id: Annotated[str, typer.Argument(help="User id (usr_...).")],
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="TENPO_NEW_USER_PASSWORD",
            help="New password (default: prompt, hidden).",
        ),
    ] = None,
) -> None:
    """Set a user's password; every session the user had ends."""
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _plane() as plane:
        user = plane.set_password(tenant, user_id, password)
    console.print(f"password of [bold]{user.email}[/] changed; its sessions ended")


@user_app.command("remove")
@handles_errors
def user_remove(
    tenant: Tenant, user_id: Annotated[str, typer.Argument(help="User id (usr_...).")]
) -> None:
    """Remove a user: no more logins, every session ends (the record stays for the audit)."""
    with _plane() as plane:
        user = plane.remove_user(tenant, user_id)
    console.print(f"user [bold]{user.email}[/] removed; its sessions ended")


@user_app.command("list")
@handles_errors
def user_list(tenant: Tenant) -> None:
    """List a tenant's dashboard users."""
    with _plane() as plane:
        users = plane.list_users(tenant)
    table = Table(Column("user id", no_wrap=True), "email", "role", "stores", "last login")
    for u in users:
        table.add_row(
            u.user_id,
            u.email,
            u.role,
            ", ".join(u.store_ids),
            u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "",
        )
    console.print(table)


_KINDS = {
    # A file's kind is told by its header: the columns only that kind has.
    "stores": {"code", "name"},
    "devices": {"device_id", "kind"},
    "registers": {"vendor", "register_code"},
}


def _read_rows(path: Path) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """The file's kind and its rows with their line numbers (the header is line 1)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read as UTF-8 CSV ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = {h.strip() for h in reader.fieldnames or ()}
    kinds = [k for k, needed in _KINDS.items() if needed <= header]
    if len(kinds) != 1:
        raise BadInput(
            f"{path}: cannot tell stores, devices or registers from the header "
            f"{sorted(header)} (stores need code,name; devices device_id,store_code,kind; "
            "registers vendor,register_code,store_code,valid_from)"
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    for row in reader:
        extra = row.pop(None, None)
        values = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        if extra:
            values["(extra values)"] = extra
        if any(v for v in values.values()):  # blank lines are not rows
            rows.append((reader.line_num, values))
    return kinds[0], rows


@app.command("import")
@handles_errors
def import_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="CSV files of stores, devices and/or registers.")
    ],
    tenant: Tenant,
) -> None:
    """Register many stores, devices and POS registers from CSV files, all or nothing.

    Every row of every file is validated first; any bad row is reported with its file and line
    and nothing is applied. Otherwise all rows go in one transaction. Rows identical to stored
    ones are left alone, so re-running an import is safe.
    """
    from tenpo.control import ImportRejected

    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {k: [] for k in _KINDS}
    origin: dict[tuple[str, int], str] = {}
    for path in files:
        kind, found = _read_rows(path)
        for number, values in found:
            # Row numbers are the import's; remember which file line each one was.
            index = len(rows[kind]) + 1
            rows[kind].append((index, values))
            origin[(kind, index)] = f"{path.name}:{number}"
    started = time.perf_counter()
    with _plane() as plane:
        try:
            report = plane.import_registry(tenant, **rows)
        except ImportRejected as exc:
            table = Table("file:line", "kind", "error", title="nothing imported")
            for e in exc.errors:
                table.add_row(origin.get((e.kind, e.row), str(e.row)), e.kind, e.message)
            err_console.print(table)
            raise BadInput(f"{len(exc.errors)} invalid row(s) in {tenant}'s import") from None
    elapsed = time.perf_counter() - started
    created = ", ".join(f"{n} {k}" for k, n in report.created.items())
    unchanged = ", ".join(f"{n} {k}" for k, n in report.unchanged.items()) or "none"
    console.print(
        f"imported into [bold]{tenant}[/]: created {created}; unchanged {unchanged} "
        f"({elapsed:.2f}s)"
    )


@staff_app.command("enroll")
@handles_errors
def staff_enroll(
    tenant: Tenant,
    store: Annotated[str, typer.Option("--store", "-s", help="Store id or code.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The member of staff's name.")],
    photos: Annotated[
        list[Path], typer.Argument(help="Photos of the face, one person each (JPEG, PNG, ...).")
    ],
) -> None:
    """Enrol a member of staff from photos: only face descriptors are stored, never a photo."""
    from tenpo.video.enrol import photo_descriptors

    data: list[bytes] = []
    for path in photos:
        try:
            data.append(path.read_bytes())
        except OSError as exc:
            raise BadInput(f"cannot read photo {path}: {exc.strerror or exc}") from None
    vectors = photo_descriptors(data, names=[str(p) for p in photos])
    del data
    with _plane() as plane:
        info = plane.enroll_staff(tenant, store, name, vectors)
    console.print(
        f"staff [bold]{info.staff_id}[/] ({info.name}) enrolled at store {info.store_id}"
        f" from {info.descriptors} photo(s); photos not stored"
    )


@staff_app.command("list")
@handles_errors
def staff_list(
    tenant: Tenant,
    store: Annotated[str | None, typer.Option("--store", "-s", help="Store id or code.")] = None,
) -> None:
    """List a tenant's enrolled staff."""
    with _plane() as plane:
        rows = plane.list_staff(tenant, store)
    table = Table(Column("staff id", no_wrap=True), "store id", "name", "descriptors", "enrolled")
    for r in rows:
        table.add_row(r.staff_id, r.store_id, r.name, str(r.descriptors), r.created_at.isoformat())
    console.print(table)


@staff_app.command("remove")
@handles_errors
def staff_remove(
    tenant: Tenant, staff_id: Annotated[str, typer.Argument(help="Staff id.")]
) -> None:
    """Remove a member of staff and their face descriptors."""
    with _plane() as plane:
        info = plane.remove_staff(tenant, staff_id)
    console.print(f"staff {info.staff_id} ({info.name}) removed")
