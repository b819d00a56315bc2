"""POS vendor B: UTF-8 JSON receipts, amounts excluding tax (FORMATS.md).

A body is one receipt, an array of them, or ``{"receipts": [...]}``. Each receipt is
validated on its own (strict types, unknown extra fields ignored) and loaded or rejected
whole; rejects name the receipt index and the field. ``RETURN`` receipts carry positive
figures, made negative here; ``VOID`` receipts are kept with kind ``void``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from tenpo.control.directory import Directory, StoreRef
from tenpo.core.preetl import ParseResult, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text
from tenpo.pos.tax import ROUNDINGS, Rounding, added_tax, allocate

__all__ = ["VendorBItem", "VendorBPreEtl", "VendorBReceipt"]

log = logging.getLogger(__name__)

VENDOR = "vendor_b"
TRANSACTIONS = "raw_pos_transactions"
KINDS = {"SALE": "sale", "RETURN": "return", "VOID": "void"}
SUPPORTED_RATES = (0, 8, 10)  # percent


def _to_decimal(value: Any) -> Decimal:
    """Money: a JSON number (parsed as Decimal, never float) or a decimal string."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a decimal string, got a boolean")
    if isinstance(value, Decimal | int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(_text.nfkc(value).replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    else:
        raise ValueError(f"expected a number or a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def _two_decimals(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{value} has more than 2 decimal places")
    return value


def _rate_percent(value: Decimal) -> Decimal:
    percent = value if value > 1 else value * 100
    if percent not in SUPPORTED_RATES:
        raise ValueError(f"unsupported tax rate {value} (expected 0, 8 or 10 %)")
    return percent


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_string), Field(strict=False)]
Money = Annotated[
    Decimal, BeforeValidator(_to_decimal), AfterValidator(_two_decimals), Field(strict=False)
]
TaxRatePercent = Annotated[
    Decimal, BeforeValidator(_to_decimal), AfterValidator(_rate_percent), Field(strict=False)
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class VendorBItem(_Strict):
    """One receipt line as vendor B sends it (``taxRate`` is normalised to a percent)."""

    sku: str = Field(min_length=1)
    name: str
    qty: int = Field(gt=0, description="Positive, also on RETURN receipts.")
    unitPrice: Money = Field(ge=0)  # noqa: N815 - the vendor's field names
    discount: Money = Field(default=Decimal(0), ge=0)
    taxRate: TaxRatePercent  # noqa: N815


class VendorBReceipt(_Strict):
    """One receipt as vendor B sends it."""

    storeCode: str = Field(min_length=1)  # noqa: N815
    registerId: str = Field(min_length=1)  # noqa: N815
    receiptId: str = Field(min_length=1)  # noqa: N815
    transactedAt: IsoDatetime  # noqa: N815
    type: Literal["SALE", "RETURN", "VOID"]
    items: list[VendorBItem] = Field(min_length=1)
    subtotal: Money
    tax: Money
    total: Money


def _receipts(data: bytes) -> list[Any]:
    """The receipts of a body: one object, an array, or ``{"receipts": [...]}``."""
    body = json.loads(_text.decode(data, "utf-8"), parse_float=Decimal)
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "receipts" in body and "receiptId" not in body:
            if not isinstance(body["receipts"], list):
                raise ValueError("'receipts' must be an array")
            return list(body["receipts"])
        return [body]
    raise ValueError(f"expected a receipt object or an array, got {type(body).__name__}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "receipt"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class VendorBPreEtl:
    """Pre-ETL of vendor B JSON receipts into ``raw_pos_transactions`` and ``raw_pos_lines``.

    The vendor's tax is kept when it is within 1 yen per taxable rate of the expected tax
    (``rounding`` of subtotal_r × r per rate, default floor); otherwise the receipt is rejected.
    """

    source = "pos_vendor_b"

    def __init__(self, rounding: Rounding = "floor") -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")
        self.rounding: Rounding = rounding

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid receipt; a reject per bad receipt (or one for a bad body)."""
        result = ParseResult()
        try:
            raw_receipts = _receipts(data)
        except (ValueError, RecursionError) as exc:
            # json.JSONDecodeError and the decode problem are ValueErrors.
            result.rejects.append(Reject(TRANSACTIONS, f"unreadable body: {exc}"))
            return result

        cols = _arrow.PosColumns()
        stores: dict[str, StoreRef | None] = {}
        seen: set[str] = set()
        for index, raw in enumerate(raw_receipts):
            reject = self._load(index, raw, event, directory, stores, seen, cols)
            if reject is not None:
                result.rejects.append(reject)
        result.tables = cols.tables()
        log.debug(
            "vendor B object %s: %d receipts, %d rejects",
            event.object_id,
            len(raw_receipts),
            len(result.rejects),
        )
        return result

    def _load(
        self,
        index: int,
        raw: Any,
        event: ObjectRegistered,
        directory: Directory,
        stores: dict[str, StoreRef | None],
        seen: set[str],
        cols: _arrow.PosColumns,
    ) -> Reject | None:
        def reject(reason: str, replayable: bool = False) -> Reject:
            return Reject(
                TRANSACTIONS,
                f"receipt {index}: {reason}",
                record=_jsonable(raw),
                line=index + 1,
                replayable=replayable,
            )

        if not isinstance(raw, dict):
            return reject(f"expected an object, got {type(raw).__name__}")
        try:
            receipt = VendorBReceipt.model_validate(raw)
        except ValidationError as exc:
            return reject(_describe(exc))
        label = f"{receipt.receiptId!r}"
        if receipt.storeCode not in stores:
            stores[receipt.storeCode] = directory.store_by_code(event.tenant_id, receipt.storeCode)
        store = stores[receipt.storeCode]
        if store is None:
            return reject(f"{label}: unknown storeCode {receipt.storeCode!r}", replayable=True)

        # All arithmetic in integer cents.
        amounts = [_cents(item.qty * item.unitPrice - item.discount) for item in receipt.items]
        rates = [int(item.taxRate) for item in receipt.items]
        subtotal, tax, total = _cents(receipt.subtotal), _cents(receipt.tax), _cents(receipt.total)
        if sum(amounts) != subtotal:
            return reject(
                f"{label}: items add up to {_yen(sum(amounts))} but subtotal is {_yen(subtotal)}"
            )
        if total != subtotal + tax:
            return reject(
                f"{label}: total {_yen(total)} is not subtotal {_yen(subtotal)} + tax {_yen(tax)}"
            )
        by_rate: dict[int, list[int]] = {}
        for i, rate in enumerate(rates):
            by_rate.setdefault(rate, []).append(i)
        expected = {
            r: added_tax(sum(amounts[i] for i in idx), r, 100, self.rounding) * 100
            for r, idx in by_rate.items()
        }
        taxable = [r for r in by_rate if r > 0]
        difference = tax - sum(expected.values())
        if abs(difference) > 100 * len(taxable):
            detail = ", ".join(f"{r}%: {_yen(expected[r])}" for r in sorted(expected))
            return reject(
                f"{label}: tax {_yen(tax)} differs from the expected {_yen(sum(expected.values()))}"
                f" ({detail}) by more than 1 yen per tax rate"
            )
        rate_tax = dict(expected)
        for r in sorted(taxable, reverse=True):  # spread the vendor's rounding difference
            step = max(-100, min(100, difference))
            rate_tax[r] += step
            difference -= step

        local = receipt.transactedAt.astimezone(_text.zone(store.timezone)).replace(tzinfo=None)
        tid = f"{receipt.registerId}-{receipt.receiptId}"
        if tid in seen:
            return reject(f"{label}: duplicate receipt in this body")
        seen.add(tid)

        line_tax = [0] * len(amounts)
        for r, idx in by_rate.items():
            for i, t in zip(idx, allocate(rate_tax[r], [amounts[i] for i in idx]), strict=True):
                line_tax[i] = t
        sign = -1 if receipt.type == "RETURN" else 1
        _append(
            cols,
            event=event,
            store=store,
            receipt=receipt,
            tid=tid,
            local=local,
            sign=sign,
            amounts=amounts,
            rates=rates,
            line_tax=line_tax,
            tax=tax,
        )
        return None


def _cents(value: Decimal) -> int:
    return int(value * 100)


def _yen(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def _jsonable(raw: Any) -> Any:
    """The record as JSON-safe values (Decimals from parsing become strings)."""
    return json.loads(json.dumps(raw, default=str, ensure_ascii=False))


def _append(
    cols: _arrow.PosColumns,
    *,
    event: ObjectRegistered,
    store: StoreRef,
    receipt: VendorBReceipt,
    tid: str,
    local: datetime,
    sign: int,
    amounts: list[int],
    rates: list[int],
    line_tax: list[int],
    tax: int,
) -> None:
    tenant, object_id = event.tenant_id, event.object_id
    day_no = _arrow.day_number(local.date())
    ln = cols.ln
    for i, item in enumerate(receipt.items):
        ln["tenant_id"].append(tenant)
        ln["store_id"].append(store.store_id)
        ln["transaction_id"].append(tid)
        ln["business_date"].append(day_no)
        ln["line_no"].append(i + 1)
        ln["sku"].append(item.sku)
        ln["name"].append(item.name)
        ln["quantity"].append(sign * item.qty)
        ln["unit_price_excl_tax"].append(_cents(item.unitPrice))
        ln["amount_excl_tax"].append(sign * amounts[i])
        ln["tax_rate"].append(rates[i])
        ln["tax"].append(sign * line_tax[i])
        ln["amount_incl_tax"].append(sign * (amounts[i] + line_tax[i]))
        ln["source_object_id"].append(object_id)
    subtotal = sum(amounts)
    tx = cols.tx
    tx["tenant_id"].append(tenant)
    tx["store_id"].append(store.store_id)
    tx["register_id"].append(receipt.registerId)
    tx["transaction_id"].append(tid)
    tx["business_date"].append(day_no)
    tx["ts"].append(_arrow.micros(receipt.transactedAt))
    tx["ts_local"].append(_arrow.micros(local))
    tx["kind"].append(KINDS[receipt.type])
    tx["total_excl_tax"].append(sign * subtotal)
    tx["total_tax"].append(sign * tax)
    tx["total_incl_tax"].append(sign * (subtotal + tax))
    tx["item_count"].append(sign * sum(item.qty for item in receipt.items))
    tx["vendor"].append(VENDOR)
    tx["source_object_id"].append(object_id)
