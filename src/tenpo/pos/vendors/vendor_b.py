"""Vendor B: JSON receipts (UTF-8) with nested items, amounts excluding tax, store codes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenpo.core import bodies, checks
from tenpo.pos.vendors import JSON_UTF8, Checked, Upload, Vendor, records_schema

if TYPE_CHECKING:
    from tenpo.core.preetl import PreEtl

KEY = "vendor_b"


def receipts(doc: Any) -> list[dict[str, Any]]:
    """The receipts of a vendor B body: one object, an array, or ``{"receipts": [...]}``.

    The same rule as the streamer's (:func:`tenpo.core.bodies.split_records`): an object with
    both ``receipts`` and receipt fields is refused as ambiguous.
    """
    try:
        found = bodies.split_records(doc, "receipts", bodies.RECEIPT_FIELDS, "receipt")
    except bodies.BodyError as exc:
        raise checks.MalformedBody(str(exc)) from exc
    where = "receipts" if isinstance(doc, dict) and "receipts" in doc else ""
    for i, receipt in enumerate(found):
        if not isinstance(receipt, dict):
            raise checks.MalformedBody(f"{where}[{i}] is not a receipt object")
    return found


def store_codes(found: list[dict[str, Any]]) -> frozenset[str]:
    """The distinct store codes the receipts name (receipts without one are left to Pre-ETL)."""
    codes: set[str] = set()
    for receipt in found:
        code = receipt.get("storeCode")
        if isinstance(code, str | int) and not isinstance(code, bool):
            normalized = checks.normalize_code(str(code))
            if normalized:
                codes.add(normalized)
    return frozenset(codes)


def check_sales(body: bytes) -> Checked:
    """UTF-8 JSON receipts; counts them and names their store codes."""
    found = receipts(checks.parse_json(body))
    return Checked({"receipts": len(found)}, store_codes(found))


BODY_SCHEMA = records_schema(
    "receipts",
    bodies.RECEIPT_FIELDS,
    "receipt",
    {
        "receipts": [
            {
                "storeCode": "S001", "registerId": "R1", "receiptId": "B-20261102-000123",
                "transactedAt": "2026-11-02T10:15:00+09:00", "type": "SALE",
                "items": [
                    {"sku": "4901234567894", "name": "お茶 500ml", "qty": 2,
                     "unitPrice": "120.00", "discount": "0", "taxRate": "8.000"}
                ],
                "subtotal": "240.00", "tax": "19", "total": "259",
            }
        ]
    },  # FORMATS.md
)  # fmt: skip
"""What :func:`check_sales` accepts (receipts are checked by the Pre-ETL)."""


def _sales_pre_etl() -> PreEtl:
    from tenpo.pos.vendor_b import VendorBPreEtl

    return VendorBPreEtl()


VENDOR = Vendor(
    key=KEY,
    title="Vendor B: JSON receipts (UTF-8), amounts excl. tax, store codes in the data",
    sales=Upload(
        f"pos_{KEY}", "json", JSON_UTF8, check_sales, _sales_pre_etl, json_schema=BODY_SCHEMA
    ),
    writer="vendor_b_sales",
)
