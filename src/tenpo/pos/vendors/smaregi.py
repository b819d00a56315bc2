"""Smaregi (スマレジ): Platform API transactions (JSON, numbers as strings), pushed or pulled.

Pushed: ``POST /v1/pos/smaregi/sales`` with the JSON of ``GET /pos/transactions`` (with
details). Pulled: ``tenpo pos pull smaregi`` (:mod:`tenpo.pos.connectors.smaregi`) polls the
API and lands the same bodies. Stores come from ``storeCode`` (checked for ownership here),
else from ``storeId`` registered for vendor ``smaregi`` in the control plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenpo.core import bodies, checks
from tenpo.pos.vendors import JSON_UTF8, Checked, Upload, Vendor, records_schema

if TYPE_CHECKING:
    from tenpo.core.preetl import PreEtl

KEY = "smaregi"
FIELDS = frozenset(
    {"transactionHeadId", "transactionHeadDivision", "terminalTranDateTime", "details"}
)
"""Fields that make an object a transaction (not a ``{"transactions": [...]}`` wrapper)."""


def transactions(doc: Any) -> list[dict[str, Any]]:
    """The transactions of a body: an array, ``{"transactions": [...]}`` or one object."""
    try:
        found = bodies.split_records(doc, "transactions", FIELDS, "transaction")
    except bodies.BodyError as exc:
        raise checks.MalformedBody(str(exc)) from exc
    for i, item in enumerate(found):
        if not isinstance(item, dict):
            raise checks.MalformedBody(f"[{i}] is not a transaction object")
    return found


def check_sales(body: bytes) -> Checked:
    """UTF-8 JSON transactions; counts them and names their store codes."""
    found = transactions(checks.parse_json(body))
    codes = {
        checks.normalize_code(str(t["storeCode"]))
        for t in found
        if isinstance(t.get("storeCode"), str | int) and not isinstance(t.get("storeCode"), bool)
    }
    return Checked({"transactions": len(found)}, frozenset(codes - {""}))


BODY_SCHEMA = records_schema(
    "transactions",
    FIELDS,
    "transaction",
    [
        {
            "transactionHeadId": "1001", "transactionHeadDivision": "1", "cancelDivision": "0",
            "subtotal": "1280", "total": "1280", "taxInclude": "116", "taxExclude": "0",
            "sellDivision": "0", "taxRounding": "1", "storeId": "1", "storeCode": "S001",
            "terminalId": "3", "terminalTranDateTime": "2026-11-02T12:01:09+09:00",
            "details": [
                {"transactionDetailId": "1", "transactionDetailDivision": "1",
                 "productId": "80001", "productCode": "4902102000022", "productName": "弁当",
                 "salesPrice": "1280", "unitDiscountPrice": "0", "quantity": "1",
                 "taxDivision": "0", "taxRate": "10"}
            ],
        }
    ],
)  # fmt: skip
"""What :func:`check_sales` accepts: the API's answer (transactions are checked later)."""


def _sales_pre_etl() -> PreEtl:
    from tenpo.pos.smaregi import SmaregiPreEtl

    return SmaregiPreEtl()


VENDOR = Vendor(
    key=KEY,
    title="Smaregi (スマレジ) Platform API transactions: JSON, 内税/外税 per line, pushed or "
    "pulled (tenpo pos pull smaregi)",
    sales=Upload(
        f"pos_{KEY}", "json", JSON_UTF8, check_sales, _sales_pre_etl, json_schema=BODY_SCHEMA
    ),
    connector="tenpo.pos.connectors.smaregi",
)
