"""Smaregi (スマレジ) Platform API transactions → ``raw_pos_transactions`` / ``raw_pos_lines``.

The body is what ``GET /pos/transactions?with_details=all`` answers (a JSON array of
transactions, each with its ``details``), or ``{"transactions": [...]}``, or one transaction.
Numbers arrive as strings. The mapping (docs/vendors.md, "Smaregi"):

- only ``transactionHeadDivision`` 1 (通常) is a sale; 入金/出金/預り金/ポイント... (2–16) hold
  no goods and are skipped (counted in the log, not quarantined);
- ``cancelDivision`` 1 (取消) is a ``void``; a transaction whose lines add up below zero (lines
  of ``transactionDetailDivision`` 2 = 返品, or negative quantities) is a ``return``;
- the sale time is ``terminalTranDateTime`` (ISO 8601; without an offset, the store's zone);
- the transaction id is ``transactionHeadId`` (unique per contract); the register
  ``terminalId``; the store ``storeCode``, else ``storeId`` as a register of vendor
  ``smaregi`` in the control plane (``tenpo admin register create --vendor smaregi
  --code <storeId>``);
- each line's tax mode is its ``taxDivision`` (0 税込 = 内税, 1 税抜 = 外税, 2 非課税), else the
  transaction's ``sellDivision`` (0 内税, 1 外税); its rate ``reduceTaxRate`` when
  ``reduceTaxId`` is set (軽減), else ``taxRate``; 0, 8 and 10 % are supported;
- the transaction's discounts (``subtotalDiscountPrice``, ``pointDiscount``,
  ``couponDiscount``) are spread over the lines by amount (largest remainder);
- tax per (mode, rate) of the net amounts, rounded by ``taxRounding`` (0 四捨五入, 1 切り捨て,
  2 切り上げ; absent: 切り捨て), checked against ``taxInclude`` / ``taxExclude`` within 1 yen
  per rate, the vendor's figure kept; ``total`` must be the net lines plus ``taxExclude``
  (plus ``carriage`` and ``commission``, which are not goods and stay out of the lines).

A transaction is loaded whole or rejected whole, with a reason naming the field.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tenpo.control.directory import Directory, StoreRef
from tenpo.core.bodies import BodyError, loads, split_records
from tenpo.core.preetl import ParseResult, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text
from tenpo.pos.tax import Rounding, added_tax, allocate, included_tax
from tenpo.pos.vendors.smaregi import FIELDS

__all__ = ["SmaregiPreEtl", "TRANSACTION_FIELDS", "transactions"]

log = logging.getLogger(__name__)

VENDOR = "smaregi"
SOURCE = "pos_smaregi"
TRANSACTIONS = "raw_pos_transactions"
SALE_DIVISION = "1"
"""``transactionHeadDivision`` of a normal sale (通常); the other divisions hold no goods."""
ROUNDINGS: dict[str, Rounding] = {"0": "round", "1": "floor", "2": "ceil"}
TRANSACTION_FIELDS = FIELDS
"""Fields that make an object a transaction (not a ``{"transactions": [...]}`` wrapper)."""
RATES = (0, 8, 10)
FUTURE_TOLERANCE = timedelta(hours=1)


class _Problem(Exception):
    """Why one transaction cannot be loaded."""


def transactions(doc: Any) -> list[Any]:
    """The transactions of a parsed body; :class:`BodyError` for another shape."""
    return split_records(doc, "transactions", TRANSACTION_FIELDS, "transaction")


def _text_of(value: Any) -> str:
    if type(value) is str:  # the common case: the API sends strings
        return value.strip() if value.isascii() else _text.nfkc(value)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _Problem(f"expected a string, got {type(value).__name__}")
    return _text.nfkc(str(value))


def _field(raw: dict[str, Any], key: str, *, required: bool = True) -> str:
    try:
        text = _text_of(raw.get(key))
    except _Problem as exc:
        raise _Problem(f"{key}: {exc}") from None
    if required and not text:
        raise _Problem(f"{key} is missing")
    return text


def _yen(raw: dict[str, Any], key: str, where: str = "", *, default: int | None = 0) -> int:
    """A money field in whole yen (strings like "1280", "1280.00", "-116")."""
    text = _field(raw, key, required=default is None)
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)  # the common case: "1280", "-116"
    text = text.replace(",", "")
    if not text:
        return default or 0
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Problem(f"{where}{key} {text!r} is not a number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise _Problem(f"{where}{key} {text!r} is not a whole number of yen")
    return int(value)


def _quantity(raw: dict[str, Any], where: str) -> int:
    value = _yen(raw, "quantity", where, default=None)
    if value == 0:
        raise _Problem(f"{where}quantity is 0")
    return value


def _rate(detail: dict[str, Any], where: str) -> int:
    if _field(detail, "taxDivision", required=False) == "2":
        return 0  # 非課税
    key = "reduceTaxRate" if _field(detail, "reduceTaxId", required=False) else "taxRate"
    text = _field(detail, key, required=False)
    if not text:
        raise _Problem(f"{where}{key} is missing")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Problem(f"{where}{key} {text!r} is not a number") from None
    if value not in RATES:
        raise _Problem(f"{where}{key} {text!r}: unsupported tax rate (expected 0, 8 or 10 %)")
    return int(value)


def _when(raw: dict[str, Any], store: StoreRef | None) -> datetime:
    """The sale time; naive when no ``store`` is given (and the time has no offset)."""
    text = _field(raw, "terminalTranDateTime")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise _Problem(
            f"terminalTranDateTime {text!r} is not an ISO 8601 date-time (e.g. "
            "2026-10-05T12:01:09+09:00)"
        ) from None
    if ts.utcoffset() is None and store is not None:
        ts = ts.replace(tzinfo=_text.zone(store.timezone))
    return ts


class SmaregiPreEtl:
    """Pre-ETL of Smaregi Platform API transactions (module docstring: the mapping)."""

    source = SOURCE

    def __init__(self, *, future_tolerance: timedelta = FUTURE_TOLERANCE) -> None:
        self.future_tolerance = future_tolerance

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every loadable sale; a reject per bad transaction (or one for the body)."""
        result = ParseResult()
        try:
            found = transactions(loads(data.decode("utf-8-sig")))
        except (UnicodeDecodeError, BodyError, ValueError, RecursionError) as exc:
            result.rejects.append(Reject(TRANSACTIONS, f"unreadable body: {exc}"))
            return result
        cols = _arrow.PosColumns(event.tenant_id, VENDOR, event.object_id, event.registered_at)
        seen: set[str] = set()
        skipped = 0
        for index, raw in enumerate(found):
            if not isinstance(raw, dict):
                result.rejects.append(
                    Reject(TRANSACTIONS, f"transaction {index}: not an object", line=index + 1)
                )
                continue
            label = f"transaction {raw.get('transactionHeadId', index)!r}"
            try:
                if _field(raw, "transactionHeadDivision", required=False) not in (
                    "", SALE_DIVISION,
                ):  # fmt: skip
                    skipped += 1
                    continue
                self._load(raw, event, directory, seen, cols)
            except _Problem as exc:
                result.rejects.append(
                    Reject(
                        TRANSACTIONS,
                        f"{label}: {exc}",
                        record=json.loads(json.dumps(raw, default=str, ensure_ascii=False)),
                        line=index + 1,
                        replayable="unknown store" in str(exc),
                    )
                )
        for tid, reason in cols.take_out_of_range():
            result.rejects.append(Reject(TRANSACTIONS, f"transaction {tid!r}: {reason}"))
        result.tables = cols.tables()
        log.debug(
            "smaregi object %s: %d transactions (%d not sales), %d rejects",
            event.object_id, len(found), skipped, len(result.rejects),
        )  # fmt: skip
        return result

    def _store(self, raw: dict[str, Any], tenant: str, directory: Directory) -> StoreRef:
        code = _field(raw, "storeCode", required=False)
        if code:
            store = directory.store_by_code(tenant, code)
            if store is None:
                raise _Problem(f"unknown storeCode {code!r}")
            return store
        store_id = _field(raw, "storeId", required=False)
        if not store_id:
            raise _Problem("neither storeCode nor storeId is given")
        found = directory.register_store(tenant, VENDOR, store_id, _when(raw, None).date())
        if found is None:
            raise _Problem(
                f"unknown store: storeId {store_id!r} is not registered for vendor smaregi "
                "(tenpo admin register create --vendor smaregi --code <storeId>)"
            )
        return found

    def _load(
        self,
        raw: dict[str, Any],
        event: ObjectRegistered,
        directory: Directory,
        seen: set[str],
        cols: _arrow.PosColumns,
    ) -> None:
        tid = _field(raw, "transactionHeadId")
        register = _field(raw, "terminalId", required=False) or "-"
        _when(raw, None)  # a bad time is named before the store is looked up
        store = self._store(raw, event.tenant_id, directory)
        ts = _when(raw, store)
        if ts > event.registered_at + self.future_tolerance:
            raise _Problem(
                f"terminalTranDateTime {ts.isoformat()} is in the future (the body arrived at "
                f"{event.registered_at.isoformat()})"
            )
        voided = _field(raw, "cancelDivision", required=False) not in ("", "0")
        rounding = ROUNDINGS.get(_field(raw, "taxRounding", required=False) or "1")
        if rounding is None:
            raise _Problem(f"taxRounding {raw.get('taxRounding')!r} is not 0, 1 or 2")
        head_mode = _field(raw, "sellDivision", required=False) or "0"
        if head_mode not in ("0", "1"):
            raise _Problem(f"sellDivision {head_mode!r} is not 0 (内税) or 1 (外税)")
        details = raw.get("details")
        if not isinstance(details, list) or not details:
            raise _Problem("no details (fetch with with_details=all)")

        # (line no, sku, name, quantity, gross amount, rate, excluded?)
        lines: list[tuple[int, str, str, int, int, int, bool, int]] = []
        for i, detail in enumerate(details):
            where = f"details[{i}]."
            if not isinstance(detail, dict):
                raise _Problem(f"details[{i}] is not an object")
            quantity = _quantity(detail, where)
            if _field(detail, "transactionDetailDivision", required=False) == "2":  # 返品
                quantity = -abs(quantity)
            price = _yen(detail, "salesPrice", where, default=None)
            unit = price - _yen(detail, "unitDiscountPrice", where)
            mode = _field(detail, "taxDivision", required=False)
            if mode not in ("", "0", "1", "2"):
                raise _Problem(f"{where}taxDivision {mode!r} is not 0, 1 or 2")
            excluded = mode == "1" or (mode == "" and head_mode == "1")
            number = _field(detail, "transactionDetailId", required=False)
            line_no = int(number) if number.isdigit() else i + 1
            sku = _field(detail, "productCode", required=False) or _field(detail, "productId")
            name = _field(detail, "productName", required=False)
            lines.append(
                (line_no, sku, name, quantity, unit * quantity, _rate(detail, where), excluded,
                 price)
            )  # fmt: skip
        gross = [ln[4] for ln in lines]
        subtotal = _yen(raw, "subtotal", default=sum(gross))
        if subtotal != sum(gross):
            raise _Problem(f"details add up to {sum(gross)} but subtotal is {subtotal}")
        discount = sum(
            _yen(raw, k) for k in ("subtotalDiscountPrice", "pointDiscount", "couponDiscount")
        )
        net = [g - d for g, d in zip(gross, allocate(discount, gross), strict=True)]

        groups: dict[tuple[bool, int], list[int]] = {}
        for i, ln in enumerate(lines):
            groups.setdefault((ln[6], ln[5]), []).append(i)
        taxes = {
            key: (added_tax if key[0] else included_tax)(
                sum(net[i] for i in idx), key[1], rounding=rounding
            )
            for key, idx in groups.items()
        }
        for excluded, field in ((False, "taxInclude"), (True, "taxExclude")):
            mine = {k: t for k, t in taxes.items() if k[0] is excluded}
            sent = _yen(raw, field, default=sum(mine.values()))
            taxable = [k for k in mine if k[1] > 0]
            difference = sent - sum(mine.values())
            if abs(difference) > len(taxable):
                raise _Problem(
                    f"{field} {sent} differs from the expected {sum(mine.values())} "
                    f"({rounding} of each rate's amount) by more than 1 yen per tax rate"
                )
            for k in sorted(taxable, key=lambda k: -k[1]):  # keep the vendor's figure
                step = max(-1, min(1, difference))
                taxes[k] += step
                difference -= step
        added = sum(t for k, t in taxes.items() if k[0])
        extra = _yen(raw, "carriage") + _yen(raw, "commission")
        total = _yen(raw, "total", default=None)
        if total != sum(net) + added + extra:
            raise _Problem(
                f"total {total} is not the lines {sum(net)} + taxExclude {added}"
                + (f" + carriage/commission {extra}" if extra else "")
            )
        if tid in seen:
            raise _Problem("duplicate transactionHeadId in this body")
        seen.add(tid)

        line_tax = [0] * len(lines)
        for key, idx in groups.items():
            for i, share in zip(idx, allocate(taxes[key], [net[i] for i in idx]), strict=True):
                line_tax[i] = share
        local = ts.astimezone(_text.zone(store.timezone)).replace(tzinfo=None)
        day_no = _arrow.day_number(local.date())
        total_excl = total_tax = 0
        for i, (line_no, sku, name, qty, _, rate, excluded, price) in enumerate(lines):
            excl = net[i] if excluded else net[i] - line_tax[i]
            unit_excl = (
                price * 100 if excluded else (2 * price * 10_000 + 100 + rate) // (2 * (100 + rate))
            )
            total_excl += excl
            total_tax += line_tax[i]
            cols.ln.append(
                (store.store_id, tid, day_no, line_no, sku, name, qty, unit_excl, excl * 100,
                 rate, line_tax[i] * 100, (excl + line_tax[i]) * 100)
            )  # fmt: skip
        kind = "void" if voided else "return" if sum(net) < 0 else "sale"
        cols.tx.append(
            (store.store_id, register, tid, day_no, _arrow.micros(ts), _arrow.micros(local), kind,
             total_excl * 100, total_tax * 100, (total_excl + total_tax) * 100,
             sum(ln[3] for ln in lines))
        )  # fmt: skip
