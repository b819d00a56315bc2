"""POS vendor B: UTF-8 JSON receipts, amounts excluding tax (FORMATS.md).

A body is one receipt, an array of them, or ``{"receipts": [...]}``. Each receipt is
validated on its own (strict types, unknown extra fields ignored) and loaded or rejected
whole; rejects name the receipt index and the field. ``RETURN`` receipts carry positive
figures, made negative here; ``VOID`` receipts are kept with kind ``void``.
"""

from __future__ import annotations

import gc
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

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
from tenpo.core.bodies import RECEIPT_FIELDS, loads, split_records
from tenpo.core.preetl import ParseResult, Reject, unicode_text
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text
from tenpo.pos.tax import ROUNDINGS, Rounding, added_tax, allocate

__all__ = ["VendorBItem", "VendorBPreEtl", "VendorBReceipt"]

log = logging.getLogger(__name__)

VENDOR = "vendor_b"
TRANSACTIONS = "raw_pos_transactions"
KINDS = {"SALE": "sale", "RETURN": "return", "VOID": "void"}
SUPPORTED_RATES = (0, 8, 10)  # percent
FUTURE_TOLERANCE = timedelta(hours=1)
"""How far after the body's arrival a transaction time may be (register clocks drift)."""
# Decimal hashes equal for equal values, so "8.000", 8, 0.08 and "0.080" all hit.
RATE_PERCENTS = {Decimal(p): p for p in SUPPORTED_RATES if p > 1} | {
    Decimal(p) / 100: p for p in SUPPORTED_RATES
}


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with an offset")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_string), Field(strict=False)]
# JSON numbers are parsed as Decimal (never float); strings must be decimal numbers.
Money = Annotated[Decimal, Field(strict=False, decimal_places=2, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(strict=False, ge=0, allow_inf_nan=False)]


Text = Annotated[str, AfterValidator(unicode_text)]
"""A text field of a record (no lone surrogate: see :func:`tenpo.core.preetl.unicode_text`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class VendorBItem(_Strict):
    """One receipt line as vendor B sends it."""

    sku: Text = Field(min_length=1)
    name: Text
    qty: int = Field(gt=0, description="Positive, also on RETURN receipts.")
    unitPrice: Money = Field(ge=0)  # noqa: N815 - the vendor's field names
    discount: Money = Field(default=Decimal(0), ge=0)
    taxRate: Rate = Field(description="Fraction (0.08) or percent (8.000): above 1 is percent.")  # noqa: N815


class VendorBReceipt(_Strict):
    """One receipt as vendor B sends it."""

    storeCode: Text = Field(min_length=1)  # noqa: N815
    registerId: Text = Field(min_length=1)  # noqa: N815
    receiptId: Text = Field(min_length=1)  # noqa: N815
    transactedAt: IsoDatetime  # noqa: N815
    type: Literal["SALE", "RETURN", "VOID"]
    items: list[VendorBItem] = Field(min_length=1)
    subtotal: Money
    tax: Money
    total: Money


def receipts_of(data: bytes) -> list[Any]:
    """The receipts of a body: one object, an array, or ``{"receipts": [...]}`` — the gateway's
    rule (:func:`tenpo.core.bodies.split_records`: both at once is refused as ambiguous)."""
    body = loads(_text.decode(data, "utf-8"), parse_float=Decimal)
    return split_records(body, "receipts", RECEIPT_FIELDS, "receipt")


@contextmanager
def _paused_gc() -> Iterator[None]:
    """Pause the cyclic GC: a large body allocates millions of acyclic objects and the
    collector's repeated passes over them cost about a quarter of the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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

    def __init__(
        self,
        rounding: Rounding = "floor",
        *,
        future_tolerance: timedelta = FUTURE_TOLERANCE,
        _fast: bool = True,
    ) -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")
        self.rounding: Rounding = rounding
        self.future_tolerance = future_tolerance
        self._fast = _fast  # False: every receipt row by row through the model (tests compare)

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid receipt; a reject per bad receipt (or one for a bad body)."""
        with _paused_gc():
            if self._fast:
                from tenpo.pos._vendor_b_fast import parse_fast  # imports this module

                fast = parse_fast(self, event, data, directory)
                if fast is not None:
                    return fast
            return self._parse(event, data, directory)

    def parse_many(
        self, items: list[tuple[ObjectRegistered, bytes]], directory: Directory
    ) -> list[ParseResult]:
        """The results of several objects, in order, as :meth:`parse` gives them; the column
        path runs once over all of them (its per-object fixed cost shared)."""
        with _paused_gc():
            if not self._fast:
                return [self._parse(event, data, directory) for event, data in items]
            from tenpo.pos._vendor_b_fast import parse_many_fast  # imports this module

            fast = parse_many_fast(self, items, directory)
            return [
                self.parse(event, data, directory) if result is None else result
                for result, (event, data) in zip(fast, items, strict=True)
            ]

    def _parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        result = ParseResult()
        try:
            raw_receipts = receipts_of(data)
        except (ValueError, RecursionError) as exc:
            # json.JSONDecodeError and the decode problem are ValueErrors.
            result.rejects.append(Reject(TRANSACTIONS, f"unreadable body: {exc}"))
            return result

        cols = _arrow.PosColumns(event.tenant_id, VENDOR, event.object_id, event.registered_at)
        stores: dict[str, StoreRef | None] = {}
        seen: set[str] = set()
        for index, raw in enumerate(raw_receipts):
            reject = self._load(index, raw, event, directory, stores, seen, cols)
            if reject is not None:
                result.rejects.append(reject)
        for tid, reason in cols.take_out_of_range():
            result.rejects.append(Reject(TRANSACTIONS, f"transaction {tid!r}: {reason}"))
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
        flat = _fast_flat(raw) if self._fast else None
        if flat is None:  # not the plain common shape: let the strict model judge it
            try:
                receipt = VendorBReceipt.model_validate(raw)
            except ValidationError as exc:
                return reject(_describe(exc))
            checked = _flatten(receipt)
            if isinstance(checked, str):
                return reject(f"{receipt.receiptId!r}: {checked}")
            flat = checked
        label = f"{flat.receipt_id!r}"
        if flat.transacted_at > event.registered_at + self.future_tolerance:
            return reject(
                f"{label}: transactedAt {flat.transacted_at.isoformat()} is in the future (the"
                f" body arrived at {event.registered_at.isoformat()}, tolerance"
                f" {self.future_tolerance})"
            )
        if flat.store_code not in stores:
            stores[flat.store_code] = directory.store_by_code(event.tenant_id, flat.store_code)
        store = stores[flat.store_code]
        if store is None:
            return reject(f"{label}: unknown storeCode {flat.store_code!r}", replayable=True)

        # All arithmetic in integer cents.
        amounts = [qty * unit - discount for _, _, qty, unit, discount, _ in flat.items]
        rates = [item[5] for item in flat.items]
        subtotal, tax, total = flat.subtotal, flat.tax, flat.total
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

        tid = f"{flat.register_id}-{flat.receipt_id}"
        if tid in seen:
            return reject(f"{label}: duplicate receipt in this body")
        seen.add(tid)
        if len(by_rate) == 1:
            line_tax = allocate(rate_tax[rates[0]], amounts)
        else:
            line_tax = [0] * len(amounts)
            for r, idx in by_rate.items():
                shares = allocate(rate_tax[r], [amounts[i] for i in idx])
                for i, t in zip(idx, shares, strict=True):
                    line_tax[i] = t
        _append(cols, flat, store, tid, amounts, line_tax)
        return None


class _Flat(NamedTuple):
    """A validated receipt in integer cents; items are (sku, name, qty, unit, discount, rate%)."""

    store_code: str
    register_id: str
    receipt_id: str
    transacted_at: datetime
    type: str
    items: list[tuple[str, str, int, int, int, int]]
    subtotal: int
    tax: int
    total: int


def _flatten(receipt: VendorBReceipt) -> _Flat | str:
    """The receipt in cents, or the reason it cannot be loaded (an unsupported tax rate)."""
    items = []
    for i, item in enumerate(receipt.items):
        percent = RATE_PERCENTS.get(item.taxRate)
        if percent is None:
            return (
                f"items.{i}.taxRate: unsupported tax rate {item.taxRate}"
                " (expected 0, 8 or 10 %, as a fraction or a percentage)"
            )
        items.append(
            (item.sku, item.name, item.qty, _cents(item.unitPrice), _cents(item.discount), percent)
        )
    return _Flat(
        receipt.storeCode,
        receipt.registerId,
        receipt.receiptId,
        receipt.transactedAt,
        receipt.type,
        items,
        _cents(receipt.subtotal),
        _cents(receipt.tax),
        _cents(receipt.total),
    )


# --- fast path ---------------------------------------------------------------------------
# Validating every receipt through pydantic costs ~25 µs per line; receipts in the plain
# shape (money as "123.45" strings or integers, known rate spellings, ISO times) are
# checked here directly with the same rules. Anything else goes through the strict model,
# which also names the problem. Tests assert both paths produce identical tables.

_MONEY_TEXT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?")
RATE_TEXT = {
    text: p
    for p in SUPPORTED_RATES
    for text in (str(p), f"{p}.0", f"{p}.00", f"{p}.000", f"0.{p:02d}", f"0.{p:02d}0")
} | {"0.1": 10, "0.10": 10, "0.100": 10, "0.0": 0}
RATE_INT = {p: p for p in SUPPORTED_RATES if p > 1} | {0: 0}
_NONEMPTY = ("storeCode", "registerId", "receiptId")


_MONEY_SEEN: dict[str, int | None] = {}  # prices repeat: parse each spelling once


def _money_cents(value: Any) -> int | None:
    if type(value) is str:
        cents = _MONEY_SEEN.get(value, -1)
        if cents != -1:
            return cents
        m = _MONEY_TEXT.fullmatch(value)
        frac = (m[2] or "") if m else ""
        cents = int(m[1]) * 100 + (int(frac.ljust(2, "0")) if frac else 0) if m else None
        if len(_MONEY_SEEN) > 200_000:
            _MONEY_SEEN.clear()
        _MONEY_SEEN[value] = cents
        return cents
    if type(value) is int:
        return value * 100 if value >= 0 else None
    if type(value) is Decimal and value.is_finite() and value >= 0:
        scaled = value * 100
        return int(scaled) if scaled == scaled.to_integral_value() else None
    return None


def _rate(value: Any) -> int | None:
    if type(value) is str:
        return RATE_TEXT.get(value)
    if type(value) is int:
        return RATE_INT.get(value)
    if type(value) is Decimal:
        return RATE_PERCENTS.get(value)
    return None


_TIMES: dict[str, datetime | None] = {}


def aware_datetime(value: Any) -> datetime | None:
    if type(value) is not str:
        return None
    if value not in _TIMES:
        if len(_TIMES) > 100_000:
            _TIMES.clear()
        try:
            ts: datetime | None = datetime.fromisoformat(value)
        except ValueError:
            ts = None
        _TIMES[value] = ts if ts is not None and ts.utcoffset() is not None else None
    return _TIMES[value]


def _fast_flat(raw: dict[str, Any]) -> _Flat | None:
    """``raw`` as a :class:`_Flat` when it is a valid receipt in the plain shape, else None."""
    for key in _NONEMPTY:
        value = raw.get(key)
        if type(value) is not str or not value or not _plain_text(value):
            return None
    kind = raw.get("type")
    ts = aware_datetime(raw.get("transactedAt"))
    raw_items = raw.get("items")
    if kind not in KINDS or ts is None or type(raw_items) is not list or not raw_items:
        return None
    items = []
    for item in raw_items:
        if type(item) is not dict:
            return None
        sku, name, qty = item.get("sku"), item.get("name"), item.get("qty")
        if type(sku) is not str or not sku or type(name) is not str:
            return None
        if not (_plain_text(sku) and _plain_text(name)):  # the model names a lone surrogate
            return None
        if type(qty) is not int or qty <= 0:
            return None
        unit = _money_cents(item.get("unitPrice"))
        discount = _money_cents(item.get("discount", 0))
        rate = _rate(item.get("taxRate"))
        if unit is None or discount is None or rate is None:
            return None
        items.append((sku, name, qty, unit, discount, rate))
    subtotal = _money_cents(raw.get("subtotal"))
    tax = _money_cents(raw.get("tax"))
    total = _money_cents(raw.get("total"))
    if subtotal is None or tax is None or total is None:
        return None
    return _Flat(
        raw["storeCode"], raw["registerId"], raw["receiptId"], ts, kind, items, subtotal, tax, total
    )


def _plain_text(value: str) -> bool:
    """True unless ``value`` holds a lone surrogate (what :func:`unicode_text` refuses)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cents(value: Decimal) -> int:
    return int(value * 100)


def _yen(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def _jsonable(raw: Any) -> Any:
    """The record as JSON-safe values (Decimals from parsing become strings)."""
    return json.loads(json.dumps(raw, default=str, ensure_ascii=False))


def _append(
    cols: _arrow.PosColumns,
    flat: _Flat,
    store: StoreRef,
    tid: str,
    amounts: list[int],
    line_tax: list[int],
) -> None:
    sign = -1 if flat.type == "RETURN" else 1
    local = flat.transacted_at.astimezone(_text.zone(store.timezone)).replace(tzinfo=None)
    store_id, day_no = store.store_id, _arrow.day_number(local.date())
    append = cols.ln.append
    for i, (sku, name, qty, unit, _, rate) in enumerate(flat.items):
        append(
            (store_id, tid, day_no, i + 1, sku, name, sign * qty, unit, sign * amounts[i], rate,
             sign * line_tax[i], sign * (amounts[i] + line_tax[i]))
        )  # fmt: skip
    subtotal = sum(amounts)
    cols.tx.append(
        (store_id, flat.register_id, tid, day_no, _arrow.micros(flat.transacted_at),
         _arrow.micros(local), KINDS[flat.type], sign * subtotal, sign * flat.tax,
         sign * (subtotal + flat.tax), sign * sum(item[2] for item in flat.items))
    )  # fmt: skip
