"""Smaregi Platform API transactions: 内税/外税, 8 %/10 %, rounding, discounts, returns, voids.

Every figure is worked by hand in the comments (tenpo.pos.smaregi documents the mapping).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tenpo.control.directory import RegisterAssignment
from tenpo.core.checks import MalformedBody
from tenpo.core.preetl import ParseResult
from tenpo.pos.smaregi import SmaregiPreEtl
from tenpo.pos.vendors import built_in
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS
from tests.data.helpers import TENANT, directory, event

EVENT = event("pos_smaregi", registered_at=datetime(2026, 11, 30, tzinfo=UTC))


def detail(n: int, code: str, price: str, qty: str = "1", **more: str) -> dict[str, str]:
    """A detail as the API sends it (every number a string)."""
    return {
        "transactionHeadId": "1001", "transactionDetailId": str(n),
        "transactionDetailDivision": "1", "productId": f"8000{n}", "productCode": code,
        "productName": f"品{n}", "price": price, "salesPrice": price, "unitDiscountPrice": "0",
        "quantity": qty, "taxRate": "10", **more,
    }  # fmt: skip


def transaction(**changes: Any) -> dict[str, Any]:
    """内税, round up (切り上げ): 129 × 2 at 8 % (軽減) and 1,280 at 10 %.

    8 %: 258 × 8/108 = 19.11 → 20; 10 %: 1,280 × 10/110 = 116.36 → 117; taxInclude 137.
    """
    base: dict[str, Any] = {
        "transactionHeadId": "1001", "transactionHeadDivision": "1", "cancelDivision": "0",
        "subtotal": "1538", "subtotalDiscountPrice": "0", "pointDiscount": "0",
        "total": "1538", "taxInclude": "137", "taxExclude": "0", "sellDivision": "0",
        "taxRounding": "2", "storeId": "1", "storeCode": "T01", "terminalId": "3",
        "terminalTranId": "55", "terminalTranDateTime": "2026-10-05T12:01:09+09:00",
        "details": [
            detail(1, "4901777000011", "129", "2", taxDivision="0", reduceTaxId="10000001",
                   reduceTaxRate="8"),
            detail(2, "4902102000022", "1280", taxDivision="0"),
        ],
    }  # fmt: skip
    base.update(changes)
    return base


def parse(body: Any) -> ParseResult:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    d = directory()
    d.registers[(TENANT, "smaregi", "7")] = [RegisterAssignment("7", "T02", date(2026, 1, 1))]
    result = SmaregiPreEtl().parse(EVENT, data, d)
    if result.tables:
        assert result.tables["raw_pos_transactions"].schema == RAW_POS_TRANSACTIONS
        assert result.tables["raw_pos_lines"].schema == RAW_POS_LINES
    return result


def rows(result: ParseResult, table: str = "raw_pos_transactions") -> list[dict[str, Any]]:
    return result.tables[table].to_pylist()


def money(*values: int) -> tuple[Decimal, ...]:
    return tuple(Decimal(v).quantize(Decimal("0.01")) for v in values)


def test_tax_included_two_rates_rounded_up() -> None:
    result = parse([transaction()])  # the API's answer: a bare array
    assert result.rejects == []
    (tx,) = rows(result)
    assert (tx["transaction_id"], tx["register_id"], tx["store_id"], tx["kind"]) == (
        "1001", "3", "s-01", "sale",
    )  # fmt: skip
    assert tx["ts"] == datetime(2026, 10, 5, 3, 1, 9, tzinfo=UTC)
    assert tx["business_date"] == date(2026, 10, 5) and tx["item_count"] == 3
    # excl. 258 − 20 = 238 and 1,280 − 117 = 1,163: 1,401 + 137 = 1,538.
    assert (tx["total_excl_tax"], tx["total_tax"], tx["total_incl_tax"]) == money(1401, 137, 1538)
    lines = rows(result, "raw_pos_lines")
    assert [(ln["sku"], ln["quantity"], ln["tax_rate"]) for ln in lines] == [
        ("4901777000011", 2, Decimal("0.08")), ("4902102000022", 1, Decimal("0.10")),
    ]  # fmt: skip
    assert [(ln["amount_excl_tax"], ln["tax"], ln["amount_incl_tax"]) for ln in lines] == [
        money(238, 20, 258), money(1163, 117, 1280),
    ]  # fmt: skip
    # 129 / 1.08 = 119.44 and 1,280 / 1.1 = 1,163.64 (unit prices to the sen).
    assert [ln["unit_price_excl_tax"] for ln in lines] == [Decimal("119.44"), Decimal("1163.64")]


def test_tax_excluded_with_a_subtotal_discount_floor() -> None:
    # 外税, 切り捨て: 1,000 + 500 × 2 = 2,000; 100 off spread 50/50 → 950 + 950 = 1,900;
    # tax floor(1,900 × 0.10) = 190; total 2,090.
    body = transaction(
        sellDivision="1", taxRounding="1", subtotal="2000", subtotalDiscountPrice="100",
        taxInclude="0", taxExclude="190", total="2090",
        details=[detail(1, "A", "1000"), detail(2, "B", "500", "2")],
    )  # fmt: skip
    result = parse({"transactions": [body]})
    assert result.rejects == []
    (tx,) = rows(result)
    assert (tx["total_excl_tax"], tx["total_tax"], tx["total_incl_tax"]) == money(1900, 190, 2090)
    lines = rows(result, "raw_pos_lines")
    assert [(ln["amount_excl_tax"], ln["tax"]) for ln in lines] == [money(950, 95), money(950, 95)]
    assert [ln["unit_price_excl_tax"] for ln in lines] == [Decimal("1000.00"), Decimal("500.00")]


def test_mixed_modes_per_line_and_round_half_up() -> None:
    # 四捨五入: 内税 line 1,100 at 10 % → 100 (exact); 外税 line 215 at 8 % → 17.2 → 17;
    # 非課税 line 300 → 0. total = 1,100 + 215 + 300 + 17 = 1,632.
    body = transaction(
        taxRounding="0", subtotal="1615", taxInclude="100", taxExclude="17", total="1632",
        details=[
            detail(1, "A", "1100", taxDivision="0"),
            detail(2, "B", "215", taxDivision="1", reduceTaxId="1", reduceTaxRate="8"),
            detail(3, "C", "300", taxDivision="2"),
        ],
    )  # fmt: skip
    result = parse(body)  # one transaction object
    assert result.rejects == []
    (tx,) = rows(result)
    assert (tx["total_excl_tax"], tx["total_tax"], tx["total_incl_tax"]) == money(1515, 117, 1632)
    lines = rows(result, "raw_pos_lines")
    assert [(ln["amount_excl_tax"], ln["tax"], ln["tax_rate"]) for ln in lines] == [
        (*money(1000, 100), Decimal("0.10")),
        (*money(215, 17), Decimal("0.08")),
        (*money(300, 0), Decimal("0.00")),
    ]  # fmt: skip


def test_return_and_void() -> None:
    # 返品 of 1,280 (内税, 切り捨て): tax −floor(1,280 × 10/110) = −116; excl −1,164.
    returned = transaction(
        transactionHeadId="1002", taxRounding="1", subtotal="-1280", total="-1280",
        taxInclude="-116", details=[detail(1, "A", "1280", transactionDetailDivision="2")],
    )  # fmt: skip
    voided = transaction(transactionHeadId="1003", cancelDivision="1")
    deposit = {"transactionHeadId": "1004", "transactionHeadDivision": "2", "total": "5000"}
    result = parse([returned, voided, deposit])
    assert result.rejects == []  # the 入金 (division 2) holds no goods: skipped
    by_id = {tx["transaction_id"]: tx for tx in rows(result)}
    assert sorted(by_id) == ["1002", "1003"]
    ret = by_id["1002"]
    assert (ret["kind"], ret["item_count"]) == ("return", -1)
    assert (ret["total_excl_tax"], ret["total_tax"], ret["total_incl_tax"]) == money(
        -1164, -116, -1280
    )
    assert by_id["1003"]["kind"] == "void"
    assert by_id["1003"]["total_incl_tax"] == Decimal("1538.00")
    ret_line = next(ln for ln in rows(result, "raw_pos_lines") if ln["transaction_id"] == "1002")
    assert (ret_line["quantity"], ret_line["amount_incl_tax"]) == (-1, Decimal("-1280.00"))


def test_store_from_store_id_registered_for_smaregi() -> None:
    result = parse([transaction(storeCode="", storeId="7")])
    assert result.rejects == [] and rows(result)[0]["store_id"] == "s-02"
    unknown = parse([transaction(storeCode="", storeId="8")])
    (reject,) = unknown.rejects
    assert reject.replayable and "storeId '8' is not registered for vendor smaregi" in reject.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"taxInclude": "130"}, "taxInclude 130 differs from the expected 137"),
        ({"total": "1540"}, "total 1540 is not the lines 1538 + taxExclude 0"),
        ({"subtotal": "1500"}, "details add up to 1538 but subtotal is 1500"),
        ({"storeCode": "T99"}, "unknown storeCode 'T99'"),
        (
            {"terminalTranDateTime": "yesterday"},
            "terminalTranDateTime 'yesterday' is not an ISO 8601",
        ),
        ({"details": []}, "no details (fetch with with_details=all)"),
        ({"taxRounding": "5"}, "taxRounding '5' is not 0, 1 or 2"),
        ({"total": "15.5"}, "total '15.5' is not a whole number of yen"),
        ({"details": [detail(1, "A", "100", taxRate="5")]}, "unsupported tax rate"),
    ],
)
def test_bad_transactions_are_rejected_whole(change: dict[str, Any], reason: str) -> None:
    result = parse([transaction(**change), transaction(transactionHeadId="2000")])
    assert [r.reason for r in result.rejects] and reason in result.rejects[0].reason
    assert result.rejects[0].reason.startswith("transaction '1001': ")
    assert [tx["transaction_id"] for tx in rows(result)] == ["2000"]  # the other one loads
    assert {ln["transaction_id"] for ln in rows(result, "raw_pos_lines")} == {"2000"}


def test_duplicates_and_unreadable_bodies() -> None:
    result = parse([transaction(), transaction()])
    assert len(rows(result)) == 1 and "duplicate transactionHeadId" in result.rejects[0].reason
    assert "unreadable body" in parse(b"{not json").rejects[0].reason


def test_gateway_check_counts_and_names_store_codes() -> None:
    check = built_in()["smaregi"].sales.check
    body = json.dumps([transaction(), transaction(storeCode="Ｔ０２"), transaction(storeCode="")])
    found = check(body.encode())
    assert found.counts == {"transactions": 3} and found.store_codes == {"T01", "T02"}
    with pytest.raises(MalformedBody, match="not a transaction object"):
        check(b"[1]")


def test_cli_convert_smaregi(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tenpo.cli import app

    src = tmp_path / "transactions.json"
    src.write_text(json.dumps([transaction()]), encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["pos", "convert", "--vendor", "smaregi", str(src), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    import pyarrow.parquet as pq

    (tx,) = pq.read_table(out / "raw_pos_transactions.parquet").to_pylist()
    assert (tx["store_id"], tx["total_tax"]) == ("T01", Decimal("137.00"))  # store id = code
