"""Vendor B Pre-ETL: body shapes, money and rate spellings, returns, voids, and rejects."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tenpo.core.preetl import ParseResult
from tenpo.pos import VendorBPreEtl, _vendor_b_fast
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS
from tests.data.helpers import DATA, directory, event


@pytest.fixture(autouse=True)
def _columns_for_small_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The column-wise path on these small bodies too (parse compares it with the row path)."""
    monkeypatch.setattr(_vendor_b_fast, "MIN_RECEIPTS", 1)


EVENT = event(
    "pos_vendor_b", registered_at=datetime(2026, 11, 30, tzinfo=UTC)
)  # after the receipts


def receipt(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "storeCode": "T01",
        "registerId": "R1",
        "receiptId": "B-1",
        "transactedAt": "2026-11-02T10:15:00+09:00",
        "type": "SALE",
        "items": [
            {"sku": "4901234567894", "name": "お茶 500ml", "qty": 2, "unitPrice": "120.00",
             "discount": "0", "taxRate": "8.000"},
            {"sku": "4902102000022", "name": "ノート", "qty": 1, "unitPrice": 300,
             "taxRate": 0.1, "note": "extra fields are ignored"},
        ],
        "subtotal": "540.00",
        "tax": "49",  # floor(240·0.08)=19 + floor(300·0.10)=30
        "total": "589",
    }  # fmt: skip
    base.update(changes)
    return base


def parse(body: Any, fast: bool = True) -> ParseResult:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    result = VendorBPreEtl(_fast=fast).parse(EVENT, data, directory())
    if result.tables:
        assert result.tables["raw_pos_transactions"].schema == RAW_POS_TRANSACTIONS
        assert result.tables["raw_pos_lines"].schema == RAW_POS_LINES
        slow = VendorBPreEtl(_fast=False).parse(EVENT, data, directory())
        for name in result.tables:  # both validation paths agree
            assert result.tables[name].equals(slow.tables[name]), name
        assert [r.reason for r in result.rejects] == [r.reason for r in slow.rejects]
    return result


def test_sample() -> None:
    result = parse((DATA / "vendor_b_sales.json").read_bytes())
    assert result.rejects == []
    (tx,) = result.tables["raw_pos_transactions"].to_pylist()
    assert tx["transaction_id"] == "POS-2-R-000001" and tx["store_id"] == "s-01"
    assert tx["ts"].isoformat() == "2026-10-05T03:01:09+00:00"
    assert tx["ts_local"].isoformat() == "2026-10-05T12:01:09"
    assert (tx["total_excl_tax"], tx["total_tax"], tx["total_incl_tax"]) == (
        Decimal("259.26"), Decimal("20"), Decimal("279.26"),
    )  # fmt: skip
    (ln,) = result.tables["raw_pos_lines"].to_pylist()
    assert (ln["quantity"], ln["unit_price_excl_tax"], ln["tax_rate"]) == (
        2, Decimal("129.63"), Decimal("0.08"),
    )  # fmt: skip


@pytest.mark.parametrize("shape", ["object", "array", "receipts"])
def test_body_shapes(shape: str) -> None:
    body = {"object": receipt(), "array": [receipt()], "receipts": {"receipts": [receipt()]}}
    result = parse(body[shape])
    assert result.rejects == []
    lines = result.tables["raw_pos_lines"].to_pylist()
    assert [(ln["tax_rate"], ln["tax"], ln["amount_excl_tax"]) for ln in lines] == [
        (Decimal("0.08"), 19, 240), (Decimal("0.10"), 30, 300),
    ]  # fmt: skip
    assert lines[0]["amount_incl_tax"] == 259


def test_money_as_numbers_and_strings_and_rate_spellings() -> None:
    r = receipt(subtotal=540, tax=Decimal("49"), total="589.00")
    r["items"][0].update(unitPrice=120, taxRate=0.08, discount=0)
    r["items"][1].update(unitPrice="300", taxRate="10")
    as_numbers = json.dumps(r, default=float).replace('"taxRate": 0.08', '"taxRate": 0.080')
    result = parse(as_numbers.encode())
    assert result.rejects == []
    assert result.tables["raw_pos_transactions"]["total_incl_tax"][0].as_py() == 589


def test_return_becomes_negative_and_void_is_kept() -> None:
    result = parse([receipt(type="RETURN"), receipt(type="VOID", receiptId="B-2")])
    ret, void = result.tables["raw_pos_transactions"].to_pylist()
    assert (ret["kind"], ret["total_excl_tax"], ret["total_tax"], ret["item_count"]) == (
        "return", -540, -49, -3,
    )  # fmt: skip
    assert (void["kind"], void["total_incl_tax"]) == ("void", 589)
    lines = result.tables["raw_pos_lines"].to_pylist()
    assert [ln["quantity"] for ln in lines[:2]] == [-2, -1]
    assert lines[0]["amount_incl_tax"] == -259


def test_vendor_tax_within_one_yen_per_rate_is_kept() -> None:
    result = parse(receipt(tax="51", total="591"))  # expected 49, two rates: ±2 allowed
    assert result.rejects == []
    assert sum(result.tables["raw_pos_lines"]["tax"].to_pylist()) == 51


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tax": "52", "total": "592"}, "tax 52.00 differs from the expected 49.00"),
        ({"subtotal": "541.00", "total": "590"}, "items add up to 540.00 but subtotal is 541.00"),
        ({"total": "600"}, "total 600.00 is not subtotal 540.00 + tax 49.00"),
        ({"type": "EXCHANGE"}, "type: Input should be 'SALE', 'RETURN' or 'VOID'"),
        ({"transactedAt": "2026-11-02T10:15:00"}, "transactedAt: Input should have timezone info"),
        ({"transactedAt": 1700000000}, "transactedAt: Value error, expected an ISO 8601"),
        ({"items": []}, "items: List should have at least 1 item"),
        ({"receiptId": 5}, "receiptId: Input should be a valid string"),
        ({"subtotal": "abc"}, "subtotal: Input should be a valid decimal"),
    ],
)
def test_bad_receipts(change: dict[str, Any], reason: str) -> None:
    result = parse([receipt(receiptId="OK"), receipt(**change)])
    (reject,) = result.rejects
    assert reject.reason.startswith("receipt 1: ") and reason in reject.reason, reject.reason
    assert reject.line == 2 and reject.record is not None
    assert result.tables["raw_pos_transactions"].num_rows == 1


@pytest.mark.parametrize(
    ("item_change", "reason"),
    [
        ({"qty": "2"}, "items.0.qty: Input should be a valid integer"),
        ({"qty": 0}, "items.0.qty: Input should be greater than 0"),
        ({"taxRate": "5"}, "items.0.taxRate: unsupported tax rate 5"),
        ({"unitPrice": "120.005"}, "items.0.unitPrice: Decimal input should have no more than 2"),
        ({"unitPrice": True}, "items.0.unitPrice: Decimal input should be an integer"),
    ],
)
def test_bad_items_name_field_and_index(item_change: dict[str, Any], reason: str) -> None:
    r = receipt()
    r["items"] = copy.deepcopy(r["items"])
    r["items"][0].update(item_change)
    (reject,) = parse(r).rejects
    assert reason in reject.reason, reject.reason


def test_unknown_store_is_replayable_and_bad_bodies() -> None:
    (reject,) = parse(receipt(storeCode="T99")).rejects
    assert "unknown storeCode 'T99'" in reject.reason and reject.replayable
    (reject,) = parse(b'{"receipts": [').rejects
    assert reject.reason.startswith("unreadable body:")
    (reject,) = parse(b'"just a string"').rejects
    assert "body must be a receipt object, an array of receipts" in reject.reason
    (reject,) = parse([receipt(), 3]).rejects
    assert reject.reason == "receipt 1: expected an object, got int"
    dup = parse([receipt(), receipt()])
    assert "duplicate receipt" in dup.rejects[0].reason


def test_return_without_its_type_is_rejected() -> None:
    # Vendor B marks returns by type RETURN with positive figures: negative ones on a SALE are
    # a return without its kind and are refused, naming the field.
    r = receipt()
    r["items"] = copy.deepcopy(r["items"])
    r["items"][0]["qty"] = -2
    (reject,) = parse(r).rejects
    assert "items.0.qty: Input should be greater than 0" in reject.reason
    (reject,) = parse(receipt(subtotal="-540.00", total="-491")).rejects
    assert "items add up to 540.00 but subtotal is -540.00" in reject.reason


def test_transaction_in_the_future_beyond_the_tolerance_is_rejected() -> None:
    # EVENT arrived 2026-11-30 00:00 UTC; tolerance 1 hour by default.
    late = receipt(receiptId="LATE", transactedAt="2026-11-30T10:00:01+09:00")
    ok = receipt(receiptId="OK", transactedAt="2026-11-30T09:59:59+09:00")
    result = parse([late, ok])
    (reject,) = result.rejects
    assert "'LATE': transactedAt 2026-11-30T10:00:01+09:00 is in the future" in reject.reason
    assert "tolerance 1:00:00" in reject.reason and reject.line == 1
    assert result.tables["raw_pos_transactions"]["transaction_id"].to_pylist() == ["R1-OK"]
    lenient = VendorBPreEtl(future_tolerance=timedelta(days=1)).parse(
        EVENT, json.dumps([late]).encode(), directory()
    )
    assert lenient.rejects == []


def test_receipt_that_is_also_a_wrapper_is_rejected_whole_as_ambiguous() -> None:
    """Same rule as the gateway: neither the outer receipt nor the inner list is loaded."""
    result = parse({**receipt(), "receipts": [receipt(receiptId="B-2")]})
    assert result.tables == {} or result.row_count == 0
    (reject,) = result.rejects
    assert "unreadable body: ambiguous body" in reject.reason and "'receiptId'" in reject.reason


def test_deep_nesting_and_huge_integers_reject_the_body() -> None:
    (reject,) = parse(b"[" * 50_000 + b"]" * 50_000).rejects
    assert reject.reason == "unreadable body: JSON nested too deeply"
    (reject,) = parse(b'[{"total": ' + b"9" * 5000 + b"}]").rejects
    assert reject.reason.startswith("unreadable body: JSON number too long")


def test_absurd_amounts_reject_that_receipt_and_load_the_rest() -> None:
    """One receipt of 10^17 yen and one of 2×10^16 yen: each rejected alone, with the reason;
    no OverflowError for the body, nothing beyond decimal(18,2) stored (issue 11)."""

    def tax_free(receipt_id: str, yen: int, qty: int = 1) -> dict[str, Any]:
        items = [{"sku": "1", "name": "x", "qty": qty, "unitPrice": yen, "taxRate": 0}]
        total = yen * qty
        return receipt(receiptId=receipt_id, items=items, subtotal=total, tax=0, total=total)

    result = parse(
        [tax_free("B-huge", 10**17), tax_free("B-big", 2 * 10**16), receipt(),
         tax_free("B-many", 1, qty=5_000_000)]
    )  # fmt: skip
    reasons = sorted(r.reason for r in result.rejects)
    assert len(reasons) == 3, reasons
    assert "'R1-B-big': total_excl_tax ¥20,000,000,000,000,000.00 is beyond" in reasons[0]
    assert "'R1-B-huge': total_excl_tax ¥100,000,000,000,000,000.00 is beyond" in reasons[1]
    assert "'R1-B-many': item_count 5,000,000 is beyond the ±1,000,000" in reasons[2]
    (tx,) = result.tables["raw_pos_transactions"].to_pylist()
    assert tx["transaction_id"] == "R1-B-1" and tx["total_excl_tax"] == Decimal("540.00")
    assert result.tables["raw_pos_lines"].num_rows == 2
