"""Smaregi (スマレジ): Platform API transactions (JSON, numbers as strings), pushed or pulled.

Pushed: ``POST /v1/pos/smaregi/sales`` with the JSON of ``GET /pos/transactions`` (with
details). Pulled: ``tenpo pos pull smaregi`` (:mod:`tenpo.pos.connectors.smaregi`) polls the
API and lands the same bodies. Stores come from ``storeCode`` (checked for ownership here),
else from ``storeId`` registered for vendor ``smaregi`` in the control plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenpo.core import bodies, checks
from tenpo.pos.vendors import JSON_UTF8, Checked, Upload, Vendor

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


def _sales_pre_etl() -> PreEtl:
    from tenpo.pos.smaregi import SmaregiPreEtl

    return SmaregiPreEtl()


VENDOR = Vendor(
    key=KEY,
    title="Smaregi (スマレジ) Platform API transactions: JSON, 内税/外税 per line, pushed or "
    "pulled (tenpo pos pull smaregi)",
    sales=Upload(f"pos_{KEY}", "json", JSON_UTF8, check_sales, _sales_pre_etl),
    connector="tenpo.pos.connectors.smaregi",
)
