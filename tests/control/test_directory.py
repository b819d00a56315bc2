"""SqlDirectory: registers valid by date, POS master replacement, caching."""

from __future__ import annotations

from datetime import date

import pytest

from tenpo.control import ControlPlane, Directory, RegisterAssignment, SqlDirectory
from tenpo.core.errors import BadInput, Conflict

APRIL_1, APRIL_15, APRIL_16 = date(2026, 4, 1), date(2026, 4, 15), date(2026, 4, 16)


@pytest.fixture
def chain(plane: ControlPlane) -> ControlPlane:
    plane.create_tenant("acme", "Acme")
    plane.create_tenant("beta", "Beta")
    plane.create_store("acme", "T01", "Honten", store_id="st_t01")
    plane.create_store("acme", "T02", "Osaka", store_id="st_t02", timezone="Asia/Tokyo")
    plane.create_store("beta", "T01", "Beta", store_id="st_beta")
    return plane


def test_sql_directory_is_a_directory(chain: ControlPlane) -> None:
    assert isinstance(chain.directory(), Directory)


def test_register_moving_between_stores(chain: ControlPlane) -> None:
    chain.create_register("acme", "vendor_a", "0001", "st_t01", APRIL_1, APRIL_15)
    chain.create_register("acme", "vendor_a", "0001", "st_t02", APRIL_16)
    d = chain.directory()

    def at(day: date) -> str | None:
        ref = d.register_store("acme", "vendor_a", "0001", day)
        return ref.store_id if ref else None

    assert at(date(2026, 3, 31)) is None
    assert at(APRIL_1) == "st_t01"
    assert at(APRIL_15) == "st_t01"  # valid_to is inclusive
    assert at(APRIL_16) == "st_t02"
    assert at(date(2030, 1, 1)) == "st_t02"
    # "1" is another register than "0001"; other vendors and tenants see nothing.
    assert d.register_store("acme", "vendor_a", "1", APRIL_16) is None
    assert d.register_store("acme", "vendor_b", "0001", APRIL_16) is None
    assert d.register_store("beta", "vendor_a", "0001", APRIL_16) is None


def test_create_register_rejects_overlap(chain: ControlPlane) -> None:
    chain.create_register("acme", "vendor_a", "0001", "st_t01", APRIL_1, APRIL_15)
    with pytest.raises(Conflict, match="overlapping"):
        chain.create_register("acme", "vendor_a", "0001", "st_t02", APRIL_15)
    chain.create_register("acme", "vendor_b", "0001", "st_t02", APRIL_15)  # other vendor: fine


def test_apply_pos_master_replaces_listed_registers(chain: ControlPlane) -> None:
    chain.create_register("acme", "vendor_a", "0001", "st_t01", APRIL_1)
    chain.create_register("acme", "vendor_a", "0002", "st_t01", APRIL_1)
    d = chain.directory()
    assert d.register_store("acme", "vendor_a", "0001", APRIL_16) == d.store("acme", "st_t01")

    applied = d.apply_pos_master(
        "acme",
        "vendor_a",
        [
            RegisterAssignment("0001", "T01", APRIL_1, APRIL_15),
            RegisterAssignment("0001", "T02", APRIL_16),
            RegisterAssignment("0003", "T02", APRIL_1),
        ],
    )
    assert applied == 3
    # The cache was invalidated: the move is visible at once.
    moved = d.register_store("acme", "vendor_a", "0001", APRIL_16)
    assert moved is not None and moved.store_id == "st_t02"
    kept = d.register_store("acme", "vendor_a", "0002", APRIL_16)  # not listed: untouched
    assert kept is not None and kept.store_id == "st_t01"
    new = d.register_store("acme", "vendor_a", "0003", APRIL_1)
    assert new is not None and new.store_id == "st_t02"
    rows = [
        (r.register_code, r.store_id, r.valid_from, r.valid_to)
        for r in chain.list_registers("acme")
    ]
    assert rows == [
        ("0001", "st_t01", APRIL_1, APRIL_15),
        ("0001", "st_t02", APRIL_16, None),
        ("0002", "st_t01", APRIL_1, None),
        ("0003", "st_t02", APRIL_1, None),
    ]

    # Re-applying the same master is idempotent.
    assert d.apply_pos_master("acme", "vendor_a", [RegisterAssignment("0003", "T02", APRIL_1)]) == 1
    assert len(chain.list_registers("acme", "vendor_a")) == 4


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([RegisterAssignment("0001", "T99", APRIL_1)], "unknown store code 'T99'"),
        ([RegisterAssignment("0001", "T01", APRIL_16, APRIL_1)], "valid_to 2026-04-01 is before"),
        (
            [
                RegisterAssignment("0001", "T01", APRIL_1),
                RegisterAssignment("0001", "T02", APRIL_16),
            ],
            "overlapping",
        ),
        ([RegisterAssignment(" ", "T01", APRIL_1)], "register code must not be empty"),
    ],
)
def test_apply_pos_master_bad_rows_change_nothing(
    chain: ControlPlane, rows: list[RegisterAssignment], message: str
) -> None:
    chain.create_register("acme", "vendor_a", "0001", "st_t01", APRIL_1)
    before = chain.list_registers("acme")
    good = RegisterAssignment("0002", "T02", APRIL_1)  # valid, but must not be applied alone
    with pytest.raises(BadInput, match=message):
        chain.directory().apply_pos_master("acme", "vendor_a", [good, *rows])
    assert chain.list_registers("acme") == before


def test_apply_pos_master_other_tenant_store_code_is_unknown(chain: ControlPlane) -> None:
    chain.create_store("beta", "B7", "Beta Seven")
    with pytest.raises(BadInput, match="unknown store code 'B7'"):
        chain.directory().apply_pos_master(
            "acme", "vendor_a", [RegisterAssignment("0001", "B7", APRIL_1)]
        )


def test_lookups_are_cached(chain: ControlPlane) -> None:
    cached = SqlDirectory(chain.engine, positive_ttl=60, negative_ttl=60)
    uncached = SqlDirectory(chain.engine, positive_ttl=0, negative_ttl=0)
    assert cached.store_by_code("acme", "T03") is None
    assert cached.device("acme", "pc-9") is None
    store = chain.create_store("acme", "T03", "Nagoya")
    chain.create_device("acme", "pc-9", store.store_id, "people_counter")
    # Another process's directory keeps its answers for the TTL, a fresh read sees the rows.
    assert cached.store_by_code("acme", "T03") is None
    assert cached.device("acme", "pc-9") is None
    assert uncached.store_by_code("acme", "T03") == store.to_ref()
    dev = uncached.device("acme", "pc-9")
    assert dev is not None and dev.store_id == store.store_id
    cached.invalidate()
    assert cached.store_by_code("acme", "T03") == store.to_ref()


def test_plane_writes_invalidate_its_directory(chain: ControlPlane) -> None:
    d = chain.directory()
    assert d.store_by_code("acme", "T03") is None
    store = chain.create_store("acme", "T03", "Nagoya")
    assert d.store_by_code("acme", "T03") == store.to_ref()
