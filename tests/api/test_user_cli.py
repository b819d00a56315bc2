"""``tenpo admin user create|list`` over the control plane of the settings."""

from __future__ import annotations

from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings


def test_user_create_and_list(settings: Settings) -> None:
    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("acme", "Acme")
    store = control.create_store("acme", "S01", "Shibuya")
    control.dispose()
    runner = CliRunner()
    base = ["admin", "user", "create", "--tenant", "acme"]
    out = runner.invoke(
        app,
        [*base, "--email", "m@acme.jp", "--role", "store_manager", "--store-code", "S01"],
        env={"TENPO_NEW_USER_PASSWORD": "a long password"},
    )
    assert out.exit_code == 0, out.output
    assert "m@acme.jp (store_manager) created in acme for stores S01" in out.output
    # The password is prompted (hidden, confirmed) when not given.
    out = runner.invoke(
        app,
        [*base, "--email", "boss@acme.jp", "--role", "tenant_admin"],
        input="another password\nanother password\n",
    )
    assert out.exit_code == 0, out.output
    bad = runner.invoke(
        app,
        [*base, "--email", "x@acme.jp", "--role", "owner", "--password", "long enough pw"],
    )
    assert bad.exit_code == 2 and "unknown role 'owner'" in bad.output
    missing = runner.invoke(
        app,
        [*base, "--email", "y@acme.jp", "--role", "store_manager", "--store-code", "S99",
         "--password", "long enough pw"],
    )  # fmt: skip
    assert missing.exit_code == 2 and "no store with code 'S99'" in missing.output
    listing = runner.invoke(
        app, ["admin", "user", "list", "--tenant", "acme"], env={"COLUMNS": "200"}
    )
    assert "boss@acme.jp" in listing.output and "tenant_admin" in listing.output
    control = ControlPlane.open(settings.control_db_url)
    users = {u.email: u for u in control.list_users("acme")}
    assert users["m@acme.jp"].store_ids == (store.store_id,)
    assert control.authenticate_user("boss@acme.jp", "another password").role == "tenant_admin"
    control.dispose()


def test_user_passwd_and_remove(settings: Settings) -> None:
    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("acme", "Acme")
    user = control.create_user("acme", "m@acme.jp", "a long password", "tenant_admin")
    control.dispose()
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["admin", "user", "passwd", "--tenant", "acme", user.user_id],
        input="a newer password\na newer password\n",
    )
    assert out.exit_code == 0, out.output
    assert "password of m@acme.jp changed; its sessions ended" in out.output
    control = ControlPlane.open(settings.control_db_url)
    changed = control.authenticate_user("m@acme.jp", "a newer password")
    assert changed.session_version == user.session_version + 1
    control.dispose()
    wrong = runner.invoke(app, ["admin", "user", "remove", "--tenant", "other", user.user_id])
    assert wrong.exit_code == 2 and "has no user" in wrong.output
    out = runner.invoke(app, ["admin", "user", "remove", "--tenant", "acme", user.user_id])
    assert out.exit_code == 0 and "m@acme.jp removed" in out.output
    control = ControlPlane.open(settings.control_db_url)
    removed = control.get_user(user.user_id)
    assert removed.disabled_at is not None and removed.session_version == 2
    control.dispose()
