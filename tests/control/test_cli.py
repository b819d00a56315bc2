"""`tenpo admin` through Typer's CliRunner, on the settings' SQLite control plane."""

from __future__ import annotations

import json
import re
from datetime import date

from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, ["admin", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _fails(*args: str) -> str:
    result = runner.invoke(app, ["admin", *args])
    assert result.exit_code == 2, result.output
    return result.output


def test_admin_flow(settings: Settings) -> None:
    assert "up to date" in _ok("migrate")
    _ok("tenant", "create", "acme", "--name", "Acme Retail")
    assert "acme" in _ok("tenant", "list")
    _ok(
        "store", "create", "--tenant", "acme", "--code", "T01", "--name", "Honten",
        "--industry", "apparel", "--region", "kanto", "--area", "120.5",
        "--hours", json.dumps({"mon": ["10:00", "21:00"]}),
    )  # fmt: skip
    _ok("store", "create", "--tenant", "acme", "--code", "T02", "--name", "Osaka")
    listing = _ok("store", "list", "--tenant", "acme")
    assert "T01" in listing and "Honten" in listing and "120.50" in listing and "T02" in listing
    _ok(
        "device", "create", "--tenant", "acme", "--store-code", "T01", "--id", "pc-001",
        "--kind", "people_counter", "--line", "entrance", "--line", "passby",
    )  # fmt: skip
    _ok("register", "create", "--tenant", "acme", "--vendor", "vendor_a", "--code", "0001",
        "--store-code", "T01", "--from", "2026-04-01", "--to", "2026-04-15")  # fmt: skip
    _ok("register", "create", "--tenant", "acme", "--vendor", "vendor_a", "--code", "0001",
        "--store-code", "T02", "--from", "2026-04-16")  # fmt: skip
    out = _ok("key", "create", "--tenant", "acme", "--name", "gw", "--scope", "pos:write",
              "--scope", "iot:write")  # fmt: skip
    assert "cannot be shown again" in out
    token = re.search(r"tnp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", out)
    assert token is not None
    key_id = "key_" + token.group().split("_")[1]

    plane = ControlPlane.open(settings.control_db_url)
    try:
        store = plane.store_by_code("acme", "T01")
        assert store.industry == "apparel" and store.opening_hours is not None
        assert store.opening_hours["mon"] == ["10:00", "21:00"]
        assert [d.lines for d in plane.list_devices("acme")] == [("entrance", "passby")]
        moved = plane.directory().register_store("acme", "vendor_a", "0001", date(2026, 4, 16))
        assert moved is not None and moved.code == "T02"
        principal = plane.authenticate(token.group())
        assert principal.scopes == {"pos:write", "iot:write"}
    finally:
        plane.dispose()

    assert key_id in _ok("key", "list", "--tenant", "acme")
    assert "revoked" in _ok("key", "revoke", "--tenant", "acme", key_id)
    plane = ControlPlane.open(settings.control_db_url)
    try:
        assert plane.list_api_keys("acme")[0].revoked_at is not None
    finally:
        plane.dispose()


def test_admin_bad_input(settings: Settings) -> None:
    _ok("tenant", "create", "acme", "--name", "Acme")
    assert "already exists" in _fails("tenant", "create", "acme", "--name", "Again")
    assert "invalid tenant id" in _fails("tenant", "create", "Bad Id", "--name", "x")
    out = _fails("store", "create", "--tenant", "acme", "--code", "T1", "--name", "x",
                 "--timezone", "Mars/Base")  # fmt: skip
    assert "unknown timezone 'Mars/Base'" in out
    assert len(out.strip().splitlines()) == 1
    assert "--hours: invalid JSON" in _fails(
        "store", "create", "--tenant", "acme", "--code", "T1", "--name", "x", "--hours", "{mon"
    )
    assert "invalid floor area" in _fails(
        "store", "create", "--tenant", "acme", "--code", "T1", "--name", "x", "--area", "lots"
    )
    _ok("store", "create", "--tenant", "acme", "--code", "T1", "--name", "x")
    assert "unknown device kind 'webcam'" in _fails(
        "device", "create", "--tenant", "acme", "--store-code", "T1", "--id", "c", "--kind",
        "webcam",
    )  # fmt: skip
    assert "no store with code 'T9'" in _fails(
        "device", "create", "--tenant", "acme", "--store-code", "T9", "--id", "c", "--kind",
        "rgb_camera",
    )  # fmt: skip
    assert "--from: invalid date '2026/04/01'" in _fails(
        "register", "create", "--tenant", "acme", "--vendor", "vendor_a", "--code", "0001",
        "--store-code", "T1", "--from", "2026/04/01",
    )  # fmt: skip
    assert "unknown scope 'root'" in _fails(
        "key", "create", "--tenant", "acme", "--name", "k", "--scope", "root"
    )
    assert "no API key 'key_0000'" in _fails("key", "revoke", "--tenant", "acme", "key_0000")
    assert "tenant 'zzz' does not exist" in _fails("store", "list", "--tenant", "zzz")
