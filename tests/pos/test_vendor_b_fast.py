"""The column-wise vendor-B path gives exactly the row-wise path's rows and rejects."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tenpo.control.directory import StaticDirectory, StoreRef
from tenpo.core.preetl import ParseResult
from tenpo.pos import VendorBPreEtl, _vendor_b_fast
from tenpo.pos._vendor_b_fast import parse_fast
from tests.data.helpers import TENANT, event

EVENT = event("pos_vendor_b", registered_at=datetime(2026, 11, 30, tzinfo=UTC))
DIRECTORY = StaticDirectory(
    stores=[
        StoreRef("s-tokyo", TENANT, "T01"),
        StoreRef("s-london", TENANT, "L01", timezone="Europe/London"),
        StoreRef("s-ny", TENANT, "N01", timezone="America/New_York"),
    ]
)
RATE_SPELLINGS = {0: ("0", 0, "0.00"), 8: ("8.000", 8, "0.08"), 10: ("10", 10, "0.10")}


@pytest.fixture(autouse=True)
def _columns_for_small_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vendor_b_fast, "MIN_RECEIPTS", 1)


def _receipt(rng: random.Random, no: int, kind: str = "SALE") -> dict[str, Any]:
    items, by_rate = [], {}
    for _ in range(rng.randint(1, 5)):
        rate = rng.choice((0, 8, 10, 10))
        qty, cents = rng.randint(1, 4), rng.randint(1, 300_000)
        discount = rng.choice((0, 0, 0, rng.randint(0, cents)))
        amount = qty * cents - discount
        by_rate[rate] = by_rate.get(rate, 0) + amount
        money = (
            str(Decimal(cents).scaleb(-2))
            if cents % 100
            else rng.choice((cents // 100, f"{cents // 100}"))
        )
        rate_text = rng.choice(RATE_SPELLINGS[rate])
        item = {"sku": f"49{rng.randrange(10**11):011d}", "name": rng.choice(("お茶", "", "x")),
                "qty": qty, "unitPrice": money, "taxRate": rate_text}  # fmt: skip
        if discount or rng.random() < 0.5:
            item["discount"] = str(Decimal(discount).scaleb(-2))
        items.append(item)
    subtotal = sum(by_rate.values())
    tax = sum(abs(v) * r // 10_000 * 100 * (1 if v >= 0 else -1) for r, v in by_rate.items())
    tax += rng.choice((0, 0, 0, 100, -100)) if any(r for r in by_rate) else 0  # vendor rounding
    # Around London's and New York's fall-back nights, with and without fractions of a second.
    at = datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + timedelta(seconds=rng.randrange(-4, 8) * 1800
                                                              + rng.randrange(3600))  # fmt: skip
    if no % 3 == 0:
        at = datetime(2026, 11, 1, 5, 30, tzinfo=UTC) + timedelta(seconds=rng.randrange(7200))
    stamp = at.astimezone(timezone_of(rng)).isoformat()
    if rng.random() < 0.2:
        stamp = stamp.replace("+00:00", "Z")
    return {"storeCode": rng.choice(("T01", "L01", "N01")), "registerId": f"R{rng.randint(1, 3)}",
            "receiptId": f"B-{no:05d}", "transactedAt": stamp, "type": kind, "items": items,
            "subtotal": str(Decimal(subtotal).scaleb(-2)), "tax": str(Decimal(tax).scaleb(-2)),
            "total": str(Decimal(subtotal + tax).scaleb(-2))}  # fmt: skip


def timezone_of(rng: random.Random) -> Any:
    from datetime import timezone

    return timezone(timedelta(minutes=rng.choice((540, 0, -300, 330))))


def _spoil(rng: random.Random, r: dict[str, Any]) -> None:
    """One of the problems (or oddities) receipts arrive with."""
    item = r["items"][0]
    spoil = rng.choice(
        [
            lambda: r.update(storeCode="ZZZ"),  # unknown store (replayable)
            lambda: r.update(subtotal="1.00"),  # items do not add up
            lambda: r.update(total="0"),  # total is not subtotal + tax
            lambda: r.update(tax=str(Decimal(r["tax"]) + 5)),  # tax off by more than 1 yen
            lambda: r.update(transactedAt="2027-06-01T00:00:00+09:00"),  # in the future
            lambda: r.update(transactedAt="2026-02-30T10:00:00+09:00"),  # no such day
            lambda: r.update(transactedAt="2026-10-25T01:30:00"),  # no offset
            lambda: r.update(transactedAt="2026-10-25T01:30:00.1234567+00:00"),
            lambda: r.update(type="REFUND"),
            lambda: r.update(items=[]),
            lambda: r.update(registerId=""),
            lambda: r.update(receiptId=7),
            lambda: r.pop("total"),
            lambda: item.update(qty=0),
            lambda: item.update(qty="2"),
            lambda: item.update(qty=True),
            lambda: item.update(qty=2.0),
            lambda: item.update(sku=""),
            lambda: item.update(name=None),
            lambda: item.update(unitPrice="1.005"),
            lambda: item.update(unitPrice="-1"),
            lambda: item.update(unitPrice=True),
            lambda: item.update(unitPrice="01.50"),  # Decimal reads it; the columns do not
            lambda: item.update(taxRate="5"),
            lambda: item.update(taxRate=0.1),  # a JSON float: the row path reads it exactly
            lambda: item.update(discount=10**13),
            lambda: r.update(receiptId="B-00000"),  # a duplicate of the first receipt
            lambda: r.update(note="extra fields are ignored"),
        ]
    )
    spoil()


def _compare(data: bytes, directory: StaticDirectory = DIRECTORY) -> ParseResult:
    fast = VendorBPreEtl().parse(EVENT, data, directory)
    rows = VendorBPreEtl(_fast=False).parse(EVENT, data, directory)
    assert fast.tables.keys() == rows.tables.keys()
    for name, table in fast.tables.items():
        assert table.schema == rows.tables[name].schema
        assert table.to_pylist() == rows.tables[name].to_pylist(), name
    assert [(r.table, r.reason, r.record, r.line, r.replayable) for r in fast.rejects] == [
        (r.table, r.reason, r.record, r.line, r.replayable) for r in rows.rejects
    ]
    return fast


@pytest.mark.parametrize("seed", range(12))
def test_random_bodies_with_bad_receipts_match_the_row_path(seed: int) -> None:
    rng = random.Random(seed)
    receipts = [_receipt(rng, i, rng.choice(("SALE", "SALE", "RETURN", "VOID"))) for i in range(60)]
    for r in rng.sample(receipts[1:], k=rng.randint(0, 6)):
        _spoil(rng, r)
    data = json.dumps({"receipts": receipts}, ensure_ascii=False).encode()
    result = _compare(data)
    assert sum(t.num_rows for t in result.tables.values()) > 0


def test_columns_decide_clean_bodies_and_name_the_bad_receipts() -> None:
    """The fast path itself loads the clean receipts and the row path only names the others."""
    rng = random.Random(99)
    receipts = [_receipt(rng, i) for i in range(40)]
    receipts[3]["storeCode"] = "ZZZ"
    receipts[7]["items"][0]["qty"] = 0
    receipts[9]["subtotal"] = "1.00"
    data = json.dumps(receipts, ensure_ascii=False).encode()
    fast = parse_fast(VendorBPreEtl(), EVENT, data, DIRECTORY)
    assert fast is not None
    assert [r.line for r in fast.rejects] == [4, 8, 10]
    assert "unknown storeCode 'ZZZ'" in fast.rejects[0].reason and fast.rejects[0].replayable
    assert "items.0.qty: Input should be greater than 0" in fast.rejects[1].reason
    assert "items add up to" in fast.rejects[2].reason
    assert fast.tables["raw_pos_transactions"].num_rows == 37
    _compare(data)


def test_json_numbers_are_exact_and_a_duplicate_leaves_the_object_to_the_row_path() -> None:
    rng = random.Random(5)
    receipts = [_receipt(rng, i) for i in range(5)]
    floats = copy.deepcopy(receipts)
    item = floats[2]["items"][0]
    rate = next(r for r, spellings in RATE_SPELLINGS.items() if item["taxRate"] in spellings)
    item["taxRate"] = rate / 100  # the same rate as a JSON decimal number
    floats[2]["subtotal"] = float(floats[2]["subtotal"])  # "1234.56" as 1234.56
    data = json.dumps(floats).encode()
    assert parse_fast(VendorBPreEtl(), EVENT, data, DIRECTORY) is not None
    assert _compare(data).rejects == []
    # More than 15 digits: a double cannot tell 146.30000000000001 from 146.3, Decimal can.
    floats[3]["items"][0]["unitPrice"] = "@"
    data = json.dumps(floats).encode().replace(b'"@"', b"146.30000000000001")
    (reject,) = _compare(data).rejects
    assert "Decimal input should have no more than 2 decimal places" in reject.reason
    receipts[4]["receiptId"], receipts[4]["registerId"] = (
        receipts[1]["receiptId"],
        receipts[1]["registerId"],
    )
    data = json.dumps(receipts).encode()
    assert parse_fast(VendorBPreEtl(), EVENT, data, DIRECTORY) is None
    (reject,) = _compare(data).rejects
    assert "duplicate receipt in this body" in reject.reason


@pytest.mark.parametrize("rounding", ["floor", "round", "ceil"])
def test_rounding_rules_match(rounding: str) -> None:
    rng = random.Random(7)
    receipts = [_receipt(rng, i) for i in range(30)]
    data = json.dumps(receipts).encode()
    fast = VendorBPreEtl(rounding).parse(EVENT, data, DIRECTORY)  # type: ignore[arg-type]
    rows = VendorBPreEtl(rounding, _fast=False).parse(EVENT, data, DIRECTORY)  # type: ignore[arg-type]
    for name in fast.tables:
        assert fast.tables[name].to_pylist() == rows.tables[name].to_pylist()
    assert [r.reason for r in fast.rejects] == [r.reason for r in rows.rejects]


def test_long_number_check_matches_the_regex_it_replaces() -> None:
    import re

    pattern = re.compile(rb"[0-9.]{16,}")
    rng = random.Random(11)
    for _ in range(5000):
        data = bytes(rng.choice(b'0123456789.,: "a\xff') for _ in range(rng.randint(0, 70)))
        assert _vendor_b_fast._has_long_number(data) == (pattern.search(data) is not None), data
    assert _vendor_b_fast._has_long_number(b'{"a": 1234567890.123456}')
    assert not _vendor_b_fast._has_long_number(b'{"a": 123456789.12345, "b": 4912345678901}')


def _respell(rng: random.Random, receipts: list[dict[str, Any]], odd: bool) -> None:
    """Money as JSON floats and integers too (as the simulator writes them); with ``odd``,
    some -0.0 and 12-digit integers, which the columns leave to the row path."""
    for r in receipts:
        fields = [(r, k) for k in ("subtotal", "tax", "total")]
        fields += [(it, k) for it in r["items"] for k in ("unitPrice", "discount") if k in it]
        for holder, key in fields:
            value, x = Decimal(str(holder[key])), rng.random()
            if x < 0.3:
                holder[key] = float(value)
            elif x < 0.45 and value == value.to_integral_value():
                holder[key] = int(value)
            elif odd and x < 0.47:
                holder[key] = -0.0
            elif odd and x < 0.49:
                holder[key] = 10**11


@pytest.mark.parametrize("seed", range(10))
def test_money_in_mixed_spellings_matches_the_row_path(seed: int) -> None:
    rng = random.Random(300 + seed)
    receipts = [_receipt(rng, i) for i in range(40)]
    _respell(rng, receipts, odd=False)
    data = json.dumps({"receipts": receipts}).encode()
    assert parse_fast(VendorBPreEtl(), EVENT, data, DIRECTORY) is not None
    _compare(data)
    _respell(rng, receipts, odd=True)
    _compare(json.dumps({"receipts": receipts}).encode())


def test_many_bodies_in_one_column_pass_match_the_row_path_body_by_body() -> None:
    """parse_many: bodies of two tenants, arrival times, sizes and shapes in one pass, each
    with exactly its own row-path result; quirky bodies left to the row path alone."""
    rng = random.Random(41)
    directory = StaticDirectory(stores=[*DIRECTORY.stores, StoreRef("s-t2", "t2", "T01")])
    bodies: list[bytes] = []
    for b in range(9):
        receipts = [
            _receipt(rng, i, rng.choice(("SALE", "RETURN", "VOID")))
            for i in range(rng.choice((2, 5, 40)))
        ]
        _respell(rng, receipts, odd=b == 4)
        for r in rng.sample(receipts[1:], k=min(2, len(receipts) - 1)):
            _spoil(rng, r)
        bodies.append(json.dumps({"receipts": receipts} if b % 2 else receipts).encode())
    twice = [dict(_receipt(rng, i), storeCode="T01") for i in range(40)]
    twice[30]["registerId"], twice[30]["receiptId"] = twice[3]["registerId"], twice[3]["receiptId"]
    bodies.append(json.dumps(twice).encode())  # a duplicate receipt
    bodies.append(b'{"receipts": [')  # unreadable
    bodies.append(json.dumps(_receipt(rng, 1)).encode())  # a lone receipt object
    floats = [_receipt(rng, i) for i in range(3)]
    floats[1]["items"][0]["unitPrice"] = "@"
    bodies.append(json.dumps(floats).encode().replace(b'"@"', b"146.30000000000001"))
    events = [
        EVENT.model_copy(update={"object_id": f"obj{i}", "tenant_id": ("t1", "t2")[i % 2],
                                 "registered_at": EVENT.registered_at - timedelta(days=i % 3 * 20)})
        for i in range(len(bodies))
    ]  # fmt: skip
    items = list(zip(events, bodies, strict=True))
    fast = _vendor_b_fast.parse_many_fast(VendorBPreEtl(), items, directory)
    assert sum(r is not None for r in fast) >= 6  # the column pass itself decided most
    many = VendorBPreEtl().parse_many(items, directory)
    for (ev, data), got in zip(items, many, strict=True):
        want = VendorBPreEtl(_fast=False).parse(ev, data, directory)
        assert got.tables.keys() == want.tables.keys()
        for name, table in got.tables.items():
            assert table.schema == want.tables[name].schema
            assert table.to_pylist() == want.tables[name].to_pylist(), (ev.object_id, name)
        assert [(r.table, r.reason, r.record, r.line, r.replayable) for r in got.rejects] == [
            (r.table, r.reason, r.record, r.line, r.replayable) for r in want.rejects
        ], ev.object_id
