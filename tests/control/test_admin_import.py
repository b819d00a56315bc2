"""``tenpo admin import``: CSV stores/devices/registers, per-row errors, all or nothing, re-runs,
and 1,000 stores with their devices in seconds (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.control import ControlPlane
from tenpo.core.settings import get_settings

runner = CliRunner()


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


STORE_HEADER = ["code", "name", "timezone", "industry", "floor_area_m2", "opening_hours"]
DEVICE_HEADER = ["device_id", "store_code", "kind", "lines", "zones", "config"]


@pytest.fixture
def control_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("TENPO_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'control.db'}"
    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("TENPO_CONTROL_URL", url)
    get_settings.cache_clear()
    control = ControlPlane.open(url)
    control.create_tenant("acme", "Acme")
    control.create_tenant("other", "Other")
    control.dispose()
    yield url
    get_settings.cache_clear()


def plane(url: str) -> ControlPlane:
    return ControlPlane.open(url, migrate=False)


def test_import_stores_devices_registers(control_url: str, tmp_path: Path) -> None:
    stores = write(tmp_path / "stores.csv", STORE_HEADER, [
        ["S001", "本町店", "Asia/Tokyo", "apparel", "120.5", '{"mon": ["10:00", "21:00"]}'],
        ["S002", "梅田店", "", "cafe", "", ""],
    ])  # fmt: skip
    devices = write(tmp_path / "devices.csv", DEVICE_HEADER, [
        ["pc-1", "S001", "people_counter", "entrance;passby", "", ""],
        ["tof-2", "S002", "tof_camera", "", "floor; checkout", '{"interval_s": 60}'],
    ])  # fmt: skip
    registers = write(tmp_path / "registers.csv",
                      ["vendor", "register_code", "store_code", "valid_from", "valid_to"],
                      [["vendor_a", "0001", "S001", "2026-10-01", "2026-10-31"]])  # fmt: skip
    result = runner.invoke(
        app, ["admin", "import", str(devices), str(stores), str(registers), "--tenant", "acme"]
    )
    assert result.exit_code == 0, result.output
    assert "created 2 stores, 2 devices, 1 registers" in " ".join(result.output.split())
    cp = plane(control_url)
    try:
        s1, s2 = cp.list_stores("acme")
        assert (s1.code, s1.name, str(s1.floor_area_m2), s1.industry) == (
            "S001", "本町店", "120.50", "apparel"
        )  # fmt: skip
        assert s1.opening_hours is not None and s1.opening_hours["mon"] == ["10:00", "21:00"]
        assert s2.timezone == "Asia/Tokyo" and s2.floor_area_m2 is None
        pc, tof = cp.list_devices("acme")
        assert (pc.store_id, pc.lines, pc.kind) == (
            s1.store_id,
            ("entrance", "passby"),
            "people_counter",
        )
        assert (tof.store_id, tof.zones, tof.config) == (
            s2.store_id,
            ("floor", "checkout"),
            {"interval_s": 60},
        )
        (reg,) = cp.list_registers("acme")
        assert (reg.store_id, str(reg.valid_to)) == (s1.store_id, "2026-10-31")
        assert cp.list_stores("other") == []
    finally:
        cp.dispose()
    again = runner.invoke(app, ["admin", "import", str(stores), str(devices), "--tenant", "acme"])
    assert again.exit_code == 0
    assert "unchanged 2 stores, 2 devices" in " ".join(again.output.split())


def test_bad_rows_are_reported_by_file_and_line_and_nothing_is_applied(
    control_url: str, tmp_path: Path
) -> None:
    stores = write(tmp_path / "stores.csv", STORE_HEADER, [
        ["S001", "ok", "Asia/Tokyo", "", "", ""],
        ["S002", "", "Asia/Tokyo", "", "", ""],            # line 3: no name
        ["S003", "bad tz", "Mars/Olympus", "", "", ""],     # line 4
        ["S004", "bad area", "Asia/Tokyo", "", "-5", ""],   # line 5
        ["S001", "dup", "Asia/Tokyo", "", "", ""],          # line 6: repeats S001
    ])  # fmt: skip
    devices = write(tmp_path / "devices.csv", DEVICE_HEADER, [
        ["pc-1", "S001", "people_counter", "entrance", "", ""],
        ["pc-2", "S999", "people_counter", "entrance", "", ""],  # line 3: unknown store
        ["pc/3", "S001", "people_counter", "", "", ""],          # line 4: bad id
        ["pc-4", "S001", "people_counter", "", "", "{not json"],  # line 5
    ])  # fmt: skip
    result = runner.invoke(app, ["admin", "import", str(stores), str(devices), "-t", "acme"])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    for where in ("stores.csv:3", "stores.csv:4", "stores.csv:5", "stores.csv:6",
                  "devices.csv:3", "devices.csv:4", "devices.csv:5"):  # fmt: skip
        assert where in out, out
    assert "stores.csv:2" not in out and "devices.csv:2" not in out
    assert "7 invalid row(s)" in out and "unknown timezone" in out and "repeats row 1" in out
    cp = plane(control_url)
    try:
        assert cp.list_stores("acme") == [] and cp.list_devices("acme") == []
    finally:
        cp.dispose()


def test_unreadable_or_unknown_files_are_refused(control_url: str, tmp_path: Path) -> None:
    odd = write(tmp_path / "odd.csv", ["foo", "bar"], [["1", "2"]])
    result = runner.invoke(app, ["admin", "import", str(odd), "-t", "acme"])
    assert result.exit_code == 2 and "cannot tell stores" in " ".join(result.output.split())
    missing = runner.invoke(app, ["admin", "import", str(tmp_path / "nope.csv"), "-t", "acme"])
    assert missing.exit_code == 2 and "cannot read" in " ".join(missing.output.split())
    stores = write(tmp_path / "s.csv", STORE_HEADER, [["S1", "x", "", "", "", ""]])
    unknown = runner.invoke(app, ["admin", "import", str(stores), "-t", "ghost"])
    assert unknown.exit_code == 2
    assert "tenant 'ghost' does not exist" in " ".join(unknown.output.split())


@pytest.mark.parametrize(
    "control_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
    indirect=True,
)  # fmt: skip
def test_a_thousand_stores_with_devices_take_seconds(control_url: str, tmp_path: Path) -> None:
    n = 1000
    stores = write(tmp_path / "stores.csv", STORE_HEADER,
                   [[f"S{i:04d}", f"店舗{i}", "Asia/Tokyo", "cafe", str(50 + i), ""]
                    for i in range(n)])  # fmt: skip
    devices = write(tmp_path / "devices.csv", DEVICE_HEADER,
                    [row for i in range(n) for row in (
                        [f"pc-{i:04d}", f"S{i:04d}", "people_counter", "entrance;passby", "", ""],
                        [f"tof-{i:04d}", f"S{i:04d}", "tof_camera", "", "floor", ""])])  # fmt: skip
    start = time.perf_counter()
    result = runner.invoke(app, ["admin", "import", str(stores), str(devices), "-t", "acme"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    # Generous on a loaded 2-core machine; measured ~0.6 s (SQLite) for the import itself.
    assert elapsed < 30, elapsed
    cp = plane(control_url)
    try:
        assert len(cp.list_stores("acme")) == n and len(cp.list_devices("acme")) == 2 * n
        by_code = {s.code: s.store_id for s in cp.list_stores("acme")}
        assert all(d.store_id == by_code["S" + d.device_id[-4:]] for d in cp.list_devices("acme"))
    finally:
        cp.dispose()
