"""ControlPlane round trips on SQLite and PostgreSQL, tenant isolation and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tenpo.control import ControlPlane, DeviceInfo, StoreInfo, StoreRef
from tenpo.core.errors import BadInput, Conflict, NotFound

HOURS = {
    "mon": ["10:00", "21:00"],
    "tue": ["10:00", "21:00"],
    "wed": ["10:00", "21:00"],
    "thu": ["10:00", "21:00"],
    "fri": ["10:00", "25:00"],
    "sat": ["09:00", "22:00"],
}


def test_round_trip(plane: ControlPlane) -> None:
    plane.create_tenant("acme", "Acme Retail")
    plane.create_tenant("beta", "Beta Stores")
    assert [t.tenant_id for t in plane.list_tenants()] == ["acme", "beta"]

    store = plane.create_store(
        "acme",
        "T01",
        "本店",
        industry="apparel",
        region="kanto",
        floor_area_m2=Decimal("120.50"),
        opening_hours=HOURS,
    )
    assert store.store_id.startswith("st_") and len(store.store_id) == 15
    other = plane.create_store("acme", "T02", "Osaka", timezone="Asia/Tokyo", store_id="st_osaka")
    assert other.store_id == "st_osaka"

    again = plane.get_store("acme", store.store_id)
    assert again == store
    assert again.floor_area_m2 == Decimal("120.50")
    assert isinstance(again.floor_area_m2, Decimal)
    assert again.opening_hours is not None
    assert again.opening_hours["fri"] == ["10:00", "25:00"]
    assert again.opening_hours["sun"] is None
    assert again.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - again.created_at).total_seconds()) < 60
    assert plane.store_by_code("acme", "T02") == other
    assert [s.code for s in plane.list_stores("acme")] == ["T01", "T02"]
    assert plane.list_stores("beta") == []

    device = plane.create_device(
        "acme", "pc-001", store.store_id, "people_counter", lines=["entrance", "passby"]
    )
    cam = plane.create_device(
        "acme",
        "cam-1",
        store.store_id,
        "rgb_camera",
        config={"entrance_line": [[0.1, 0.8], [0.9, 0.8]]},
    )
    tof = plane.create_device("acme", "tof-1", other.store_id, "tof_camera", zones=["A", "B"])
    assert plane.list_devices("acme") == [cam, device, tof]
    assert device == DeviceInfo(
        tenant_id="acme",
        device_id="pc-001",
        store_id=store.store_id,
        kind="people_counter",
        lines=("entrance", "passby"),
        zones=(),
        config={},
        active=True,
        created_at=device.created_at,
    )
    assert plane.list_devices("acme")[0].config == {"entrance_line": [[0.1, 0.8], [0.9, 0.8]]}

    reg = plane.create_register("acme", "vendor_a", "0001", store.store_id, date(2026, 4, 1))
    assert reg.register_code == "0001"  # leading zeros are kept
    assert plane.list_registers("acme") == [reg]

    key, token = plane.create_api_key("acme", "gateway", ["pos:write", "iot:write"])
    assert key.scopes == ("iot:write", "pos:write")
    assert plane.authenticate(token).tenant_id == "acme"

    directory = plane.directory()
    assert directory.store_by_code("acme", "T01") == StoreRef(store.store_id, "acme", "T01")
    assert directory.register_store("acme", "vendor_a", "0001", date(2026, 4, 2)) == (
        store.to_ref()
    )
    ref = directory.device("acme", "pc-001")
    assert ref is not None and ref.lines == ("entrance", "passby")
    assert ref.store_id == store.store_id and ref.timezone == "Asia/Tokyo"


def test_data_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    first = ControlPlane.open(url)
    first.create_tenant("acme", "Acme")
    created = first.create_store("acme", "T01", "Honten", floor_area_m2="88")
    first.dispose()

    second = ControlPlane.open(url)
    try:
        assert second.get_store("acme", created.store_id) == created
        assert second.get_store("acme", created.store_id).floor_area_m2 == Decimal("88.00")
    finally:
        second.dispose()


def _two_tenants(plane: ControlPlane) -> tuple[StoreInfo, StoreInfo]:
    plane.create_tenant("acme", "Acme")
    plane.create_tenant("beta", "Beta")
    a = plane.create_store("acme", "T01", "Acme One")
    b = plane.create_store("beta", "T01", "Beta One")  # same code, other tenant: allowed
    return a, b


def test_tenant_isolation(plane: ControlPlane) -> None:
    a, b = _two_tenants(plane)
    plane.create_device("acme", "pc-001", a.store_id, "people_counter", lines=["entrance"])
    plane.create_device("beta", "pc-001", b.store_id, "people_counter", lines=["passby"])

    assert plane.store_by_code("acme", "T01").store_id == a.store_id
    assert plane.store_by_code("beta", "T01").store_id == b.store_id
    with pytest.raises(NotFound, match="no store"):
        plane.get_store("acme", b.store_id)
    with pytest.raises(NotFound):
        plane.create_device("acme", "pc-002", b.store_id, "people_counter")
    with pytest.raises(NotFound):
        plane.create_register("acme", "vendor_a", "0001", b.store_id, date(2026, 4, 1))
    assert [s.store_id for s in plane.list_stores("acme")] == [a.store_id]
    assert [d.lines for d in plane.list_devices("beta")] == [("passby",)]

    directory = plane.directory()
    assert directory.store("acme", b.store_id) is None
    assert directory.store("beta", b.store_id) == b.to_ref()
    dev_a, dev_b = directory.device("acme", "pc-001"), directory.device("beta", "pc-001")
    assert dev_a is not None and dev_a.store_id == a.store_id
    assert dev_b is not None and dev_b.store_id == b.store_id
    assert directory.device("gamma", "pc-001") is None


def test_duplicates_conflict(plane: ControlPlane) -> None:
    a, _ = _two_tenants(plane)
    with pytest.raises(Conflict, match="tenant 'acme' already exists"):
        plane.create_tenant("acme", "Again")
    with pytest.raises(Conflict, match="code 'T01'"):
        plane.create_store("acme", "T01", "Dup")
    with pytest.raises(Conflict, match="store id"):
        plane.create_store("acme", "T09", "Dup id", store_id=a.store_id)
    plane.create_device("acme", "pc-001", a.store_id, "people_counter")
    with pytest.raises(Conflict, match="pc-001"):
        plane.create_device("acme", "pc-001", a.store_id, "tof_camera")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"timezone": "../etc/passwd"}, "unknown timezone"),
        ({"floor_area_m2": "-3"}, "invalid floor area"),
        ({"floor_area_m2": "big"}, "invalid floor area"),
        ({"floor_area_m2": 12.5}, "not float"),
        ({"opening_hours": {"monday": ["10:00", "20:00"]}}, "unknown weekday 'monday'"),
        ({"opening_hours": {"mon": ["10:00"]}}, "expected \\[open, close\\]"),
        ({"opening_hours": {"mon": ["10:00", "09:00"]}}, "not after"),
        ({"opening_hours": {"mon": ["9:00", "18:00"]}}, "invalid time '9:00'"),
        ({"store_id": "st/evil"}, "invalid store id"),
    ],
)
def test_store_bad_input(
    sqlite_plane: ControlPlane, kwargs: dict[str, object], message: str
) -> None:
    sqlite_plane.create_tenant("acme", "Acme")
    with pytest.raises(BadInput, match=message):
        sqlite_plane.create_store("acme", "T01", "Honten", **kwargs)  # type: ignore[arg-type]
    assert sqlite_plane.list_stores("acme") == []


def test_other_bad_input(sqlite_plane: ControlPlane) -> None:
    with pytest.raises(BadInput, match="invalid tenant id 'Acme Corp'"):
        sqlite_plane.create_tenant("Acme Corp", "Acme")
    with pytest.raises(BadInput, match="tenant name must not be empty"):
        sqlite_plane.create_tenant("acme", "  ")
    sqlite_plane.create_tenant("acme", "Acme")
    with pytest.raises(NotFound, match="tenant 'nope'"):
        sqlite_plane.create_store("nope", "T01", "x")
    with pytest.raises(NotFound, match="tenant 'nope'"):
        sqlite_plane.list_stores("nope")
    store = sqlite_plane.create_store("acme", "T01", "Honten")
    with pytest.raises(BadInput, match="unknown device kind 'webcam'"):
        sqlite_plane.create_device("acme", "cam-9", store.store_id, "webcam")
    with pytest.raises(BadInput, match="invalid device id 'pc/1'"):
        sqlite_plane.create_device("acme", "pc/1", store.store_id, "people_counter")
    with pytest.raises(BadInput, match="line name 'entrance' is listed twice"):
        sqlite_plane.create_device(
            "acme", "pc-1", store.store_id, "people_counter", lines=["entrance", "entrance"]
        )
    with pytest.raises(BadInput, match="valid_to 2026-03-01 is before valid_from 2026-04-01"):
        sqlite_plane.create_register(
            "acme", "vendor_a", "0001", store.store_id, date(2026, 4, 1), date(2026, 3, 1)
        )
    with pytest.raises(NotFound, match="code 'T99'"):
        sqlite_plane.store_by_code("acme", "T99")
