"""Airレジ (AirREGI): the 会計明細 CSV of one store, as the Airレジ バックオフィス exports it.

The export is CP932; its output items are switched on and off by the user (「会計明細CSVファイル
の設定」), so columns are found by their header name, in any order, and unknown columns are
ignored. The file names no store: it is sent with the store it belongs to
(``POST /v1/pos/airregi/sales?store=<store code>``, ``tenpo pos convert --vendor airregi
--store <code>``). One row is one item of a 会計 (a receipt); the rows of a receipt share its
伝票番号. The mapping and the decisions taken where Airレジ's documentation is silent are in
``docs/vendors.md`` ("Airレジ"); in short:

- receipt id 会計ID, else 伝票番号 (取引No); sale time 会計日時 (or 会計日 + 会計時刻), local
  time of the store; items 商品名, 数量, 単価, optional 値引, 小計 (checked: 単価 × 数量 − 値引),
  商品コード (else the name is the SKU), 明細番号;
- tax rate 税率 or 税区分 (``10%``, ``8%``, ``軽減``, ``標準``, ``非課税``…); 内税/外税 from a
  内税/外税 (税込/税抜) column, or from the rate's text, else 内税; tax per receipt and (mode,
  rate), rounded down (``AirregiPreEtl(rounding=...)``); optional 消費税 checked within 1 yen
  per rate (the vendor's figure kept) and 合計金額 checked exactly;
- 取消 (取消区分) marks a cancelled receipt, kept as ``void``; 返品 in 会計区分 (取引区分), or lines
  adding up below zero, make a ``return`` (positive figures of a 返品 receipt become negative).

A receipt is loaded whole or rejected whole, with a reason naming the row (CSV line) and the
column.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from tenpo.core import checks
from tenpo.pos import _text
from tenpo.pos.tax import Rounding, added_tax, allocate, included_tax
from tenpo.pos.vendors import CSV_CP932, STORE_META, Checked, Upload, Vendor

if TYPE_CHECKING:
    from tenpo.control.directory import Directory, StoreRef
    from tenpo.core.preetl import ParseResult
    from tenpo.lake.landing import ObjectRegistered
    from tenpo.pos._arrow import PosColumns

__all__ = ["COLUMNS", "AirregiPreEtl", "VENDOR", "find_columns"]

log = logging.getLogger(__name__)

KEY = "airregi"
SOURCE = f"pos_{KEY}"
TRANSACTIONS = "raw_pos_transactions"
FUTURE_TOLERANCE = timedelta(hours=1)

COLUMNS: dict[str, tuple[str, ...]] = {
    # field: header names accepted, preferred first (compared after NFKC, without spaces)
    "receipt": ("会計ID", "伝票番号", "伝票No", "取引No", "取引番号", "会計番号"),
    "time": ("会計日時", "取引日時", "売上日時"),
    "date": ("会計日", "取引日", "売上日"),
    "clock": ("会計時刻", "会計時間", "取引時刻", "取引時間"),
    "name": ("商品名", "メニュー名", "品名"),
    "quantity": ("数量", "個数", "点数"),
    "unit": ("単価", "商品単価", "販売単価"),
    "rate": ("税率", "税区分", "消費税率", "消費税区分"),
    "mode": ("内税/外税", "内税外税", "内外税区分", "税種別", "税込/税抜", "課税方式"),
    "amount": ("小計", "金額", "明細金額", "商品小計"),
    "discount": ("値引", "値引額", "値引金額", "割引額", "値割引額"),
    "sku": ("商品コード", "商品ID", "JANコード", "バーコード", "品番"),
    "line": ("明細番号", "明細No", "行番号"),
    "register": ("レジ番号", "レジ名", "端末名", "端末番号", "レジ"),
    "void": ("取消", "取消区分", "取消フラグ", "会計状態", "ステータス"),
    "kind": ("会計区分", "取引区分", "売上区分"),
    "tax": ("消費税", "消費税額", "税額", "内消費税"),
    "total": ("合計金額", "会計金額", "会計合計", "合計"),
}
"""The columns tenpo reads, by field; every other column of the export is ignored."""

REQUIRED = ("receipt", "name", "quantity", "unit", "rate")
"""Fields a file must have (plus 会計日時, or 会計日 and 会計時刻)."""

_VOID = {
    "1",
    "取消",
    "取消済",
    "取消済み",
    "取り消し",
    "キャンセル",
    "○",
    "〇",
    "済",
    "TRUE",
    "はい",
}
_NOT_VOID = {"", "0", "-", "ー", "通常", "FALSE", "いいえ", "なし"}
_RETURN = {"返品", "返金", "返品会計", "返品・返金"}
_SALE = {"", "売上", "通常", "販売", "会計", "通常会計"}
_INCLUSIVE = ("内税", "税込")
_EXCLUSIVE = ("外税", "税抜", "税別")
_EXEMPT = ("非課税", "対象外", "不課税", "免税")
_RATE_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*%?")
_TIME = re.compile(
    r"(\d{4})[/年-](\d{1,2})[/月-](\d{1,2})日?(?:[ T]+|$)(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def _header_name(text: str) -> str:
    return checks.normalize_code(text).lstrip("\ufeff").replace(" ", "")


def find_columns(header: Iterable[str]) -> dict[str, int]:
    """Field → column index of a 会計明細 header (first alias found wins, extra columns
    ignored); :class:`checks.MalformedBody` naming every required column that is missing."""
    at: dict[str, int] = {}
    for i, name in enumerate(header):
        at.setdefault(_header_name(name), i)
    found: dict[str, int] = {}
    for fld, names in COLUMNS.items():
        for name in names:
            if name in at:
                found[fld] = at[name]
                break
    missing = [" or ".join(COLUMNS[f]) for f in REQUIRED if f not in found]
    if "time" not in found and not ("date" in found and "clock" in found):
        missing.append("会計日時 (or 会計日 and 会計時刻)")
    if missing:
        raise checks.MalformedBody(
            "Airレジ 会計明細 CSV lacks the column(s): " + "; ".join(missing),
            missing=missing,
        )
    return found


def check_sales(body: bytes) -> Checked:
    """CP932 (not re-encoded UTF-8), a CSV whose header has the columns tenpo needs; counts
    its data rows. The store is the upload's (checked by the gateway), none is in the file."""
    checks.refuse_utf8_as_cp932(body, KEY)
    rows = [r for r in checks.csv_rows(checks.decode_cp932(body)) if any(f.strip() for f in r)]
    if not rows:
        raise checks.MalformedBody("Airレジ 会計明細 CSV has no header row")
    find_columns(rows[0])  # the first non-blank row, as the Pre-ETL reads it
    return Checked({"rows": len(rows) - 1})


class _Problem(Exception):
    """Why one receipt cannot be loaded."""


@dataclass
class _Receipt:
    tid: str
    first_line: int
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Item:
    line_no: int
    sku: str
    name: str
    quantity: int
    unit: int
    amount: int
    rate: int
    excluded: bool


def _yen(text: str, what: str) -> int:
    """Whole yen from an export cell: ``1,280``, ``¥1,280``, ``1280円``, ``-116``, ``1280.0``."""
    value = _text.nfkc(text).replace(",", "").replace("¥", "").replace("円", "").strip()
    if value.isdigit() or (value[:1] == "-" and value[1:].isdigit()):
        return int(value)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Problem(f"{what} {text!r} is not a number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise _Problem(f"{what} {text!r} is not a whole number of yen")
    return int(number)


def _rate(text: str) -> tuple[int, bool | None]:
    """(rate %, excluded?) of a 税率 / 税区分 cell; excluded is None unless the cell says."""
    value = _text.nfkc(text).replace(" ", "")
    excluded = (
        True if any(w in value for w in _EXCLUSIVE)
        else False if any(w in value for w in _INCLUSIVE)
        else None
    )  # fmt: skip
    if any(w in value for w in _EXEMPT):
        return 0, excluded
    match = _RATE_NUMBER.search(value)
    if match is not None:
        number = Decimal(match[1])
        percent = number * 100 if number < 1 and "%" not in value else number
        if percent in (0, 8, 10):
            return int(percent), excluded
        raise _Problem(f"tax rate {text!r}: unsupported (expected 10 %, 8 % or 非課税)")
    if "軽減" in value:
        return 8, excluded
    if "標準" in value:
        return 10, excluded
    raise _Problem(f"tax rate {text!r} is not a rate (10%, 8%, 軽減, 標準, 非課税)")


def _mode(text: str) -> bool | None:
    """Whether a 内税/外税 cell says 外税 (True), 内税 (False) or nothing (None)."""
    value = _text.nfkc(text).replace(" ", "")
    if not value:
        return None
    if any(w in value for w in _EXCLUSIVE):
        return True
    if any(w in value for w in _INCLUSIVE) or any(w in value for w in _EXEMPT):
        return False
    raise _Problem(f"内税/外税 {text!r} is neither 内税 (税込) nor 外税 (税抜)")


def _local_time(date_text: str, clock_text: str | None) -> datetime:
    """A naive local time from 会計日時 (``2026/10/05 12:01:09``, ``2026-10-05 12:01``,
    ``2026年10月5日 12:01``), or from 会計日 and 会計時刻."""
    text = _text.nfkc(date_text) + ("" if clock_text is None else " " + _text.nfkc(clock_text))
    match = _TIME.fullmatch(text.strip())
    if match is None or match[4] is None:
        what = "会計日時" if clock_text is None else "会計日 + 会計時刻"
        raise _Problem(f"{what} {text.strip()!r} is not a date and time (2026/10/05 12:01:09)")
    y, mo, d, h, mi = (int(g) for g in match.groups()[:5])
    try:
        return datetime(y, mo, d, h, mi, int(match[6] or 0))
    except ValueError as exc:
        raise _Problem(f"会計日時 {text.strip()!r} is not a valid date and time ({exc})") from None


class AirregiPreEtl:
    """Pre-ETL of an Airレジ 会計明細 CSV of one store (module docstring: the mapping)."""

    source = SOURCE

    def __init__(
        self, *, rounding: Rounding = "floor", future_tolerance: timedelta = FUTURE_TOLERANCE
    ) -> None:
        self.rounding: Rounding = rounding
        self.future_tolerance = future_tolerance

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every loadable receipt; a reject per bad receipt (or one for the file)."""
        from tenpo.core.preetl import ParseResult, Reject
        from tenpo.pos._arrow import PosColumns

        result = ParseResult()
        try:
            records = [
                (line, row)
                for line, row in _text.rows(_text.decode(data, "cp932"))
                if any(cell.strip() for cell in row)
            ]
            if not records:
                raise _Problem("the file is empty (no header row)")
            col = find_columns(records[0][1])
        except (_text.DecodeProblem, csv.Error, _Problem, checks.MalformedBody) as exc:
            result.rejects.append(Reject(TRANSACTIONS, f"unreadable Airレジ 会計明細 CSV: {exc}"))
            return result
        code = event.meta.get(STORE_META, "")
        store = directory.store_by_code(event.tenant_id, code) if code else None
        if store is None:
            reason = (
                f"store code {code!r} is not a store of tenant {event.tenant_id!r}"
                if code
                else "no store: an Airレジ export is sent with its store (?store=<store code>)"
            )
            result.rejects.append(Reject(TRANSACTIONS, reason, replayable=bool(code)))
            return result
        header = records[0][1]
        receipts: dict[str, _Receipt] = {}
        for line, row in records[1:]:
            tid = _text.nfkc(row[col["receipt"]]) if col["receipt"] < len(row) else ""
            if not tid:
                result.rejects.append(
                    Reject(
                        TRANSACTIONS,
                        f"line {line}: {header[col['receipt']]} is empty",
                        record=_record(header, [(line, row)]),
                        line=line,
                    )
                )
                continue
            receipts.setdefault(tid, _Receipt(tid, line)).rows.append((line, row))
        cols = PosColumns(event.tenant_id, KEY, event.object_id, event.registered_at)
        for receipt in receipts.values():
            try:
                self._load(receipt, header, col, store, event, cols)
            except _Problem as exc:
                result.rejects.append(
                    Reject(
                        TRANSACTIONS,
                        f"receipt {receipt.tid!r}: {exc}",
                        record=_record(header, receipt.rows),
                        line=receipt.first_line,
                    )
                )
        for tid, reason in cols.take_out_of_range():
            result.rejects.append(Reject(TRANSACTIONS, f"receipt {tid!r}: {reason}"))
        result.tables = cols.tables()
        log.debug(
            "airregi object %s: %d receipts, %d rejects",
            event.object_id, len(receipts), len(result.rejects),
        )  # fmt: skip
        return result

    def _load(
        self,
        receipt: _Receipt,
        header: list[str],
        col: dict[str, int],
        store: StoreRef,
        event: ObjectRegistered,
        cols: PosColumns,
    ) -> None:
        def cell(row: list[str], fld: str) -> str | None:
            at = col.get(fld)
            if at is None:
                return None
            return row[at] if at < len(row) else ""

        def shared(fld: str) -> str | None:
            """A receipt-level cell: the same on every row of the receipt."""
            values = {_text.nfkc(cell(r, fld) or "") for _, r in receipt.rows}
            if fld not in col:
                return None
            if len(values) > 1:
                raise _Problem(f"its rows disagree on {header[col[fld]]}: {sorted(values)}")
            return values.pop()

        first = receipt.rows[0][1]
        if "time" in col:
            shared("time")
            local = _local_time(cell(first, "time") or "", None)
        else:
            shared("date")
            shared("clock")
            local = _local_time(cell(first, "date") or "", cell(first, "clock") or "")
        void_text = shared("void") or ""
        if void_text.upper() not in _VOID | _NOT_VOID:
            raise _Problem(f"{header[col['void']]} {void_text!r} is neither 取消 nor empty")
        kind_text = shared("kind") or ""
        if kind_text not in _RETURN | _SALE and kind_text not in ("取消",):
            raise _Problem(f"{header[col['kind']]} {kind_text!r} is not 売上 or 返品")
        voided = void_text.upper() in _VOID or kind_text == "取消"
        marked_return = kind_text in _RETURN
        register = shared("register") or "-"

        items: list[_Item] = []
        numbers: set[int] = set()
        for index, (line, row) in enumerate(receipt.rows):
            try:
                items.append(self._item(row, header, col, index, numbers))
            except _Problem as exc:
                raise _Problem(f"line {line}: {exc}") from None
        if marked_return and sum(i.amount for i in items) > 0:  # 返品 sent with positive figures
            items = [
                _Item(i.line_no, i.sku, i.name, -i.quantity, i.unit, -i.amount, i.rate, i.excluded)
                for i in items
            ]
        amounts = [i.amount for i in items]
        if marked_return and sum(amounts) > 0:
            raise _Problem("a 返品 receipt whose lines add up above zero (mixed signs)")

        groups: dict[tuple[bool, int], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.excluded, item.rate), []).append(i)
        taxes = {
            key: (added_tax if key[0] else included_tax)(
                sum(amounts[i] for i in idx), key[1], rounding=self.rounding
            )
            for key, idx in groups.items()
        }
        sent_tax = shared("tax")
        if sent_tax:
            sent = _yen(sent_tax, header[col["tax"]])
            sign = -1 if marked_return and sent > 0 and sum(amounts) < 0 else 1
            self._keep_vendor_tax(taxes, sign * sent, header[col["tax"]])
        added = sum(t for k, t in taxes.items() if k[0])
        sent_total = shared("total")
        if sent_total:
            total = _yen(sent_total, header[col["total"]])
            if marked_return and total > 0 and sum(amounts) < 0:
                total = -total
            if total != sum(amounts) + added:
                raise _Problem(
                    f"{header[col['total']]} {total} is not the lines {sum(amounts)}"
                    + (f" + 外税 {added}" if added else "")
                )

        aware = local.replace(tzinfo=_text.zone(store.timezone))
        if aware > event.registered_at + self.future_tolerance:
            raise _Problem(
                f"会計日時 {local:%Y/%m/%d %H:%M:%S} is in the future (the file arrived at "
                f"{event.registered_at.astimezone(aware.tzinfo):%Y/%m/%d %H:%M:%S})"
            )
        self._append(receipt.tid, register, voided, local, aware, store, items, groups, taxes, cols)

    def _item(
        self,
        row: list[str],
        header: list[str],
        col: dict[str, int],
        index: int,
        numbers: set[int],
    ) -> _Item:
        def cell(fld: str) -> str:
            at = col.get(fld)
            return "" if at is None or at >= len(row) else row[at]

        def name_of(fld: str) -> str:
            return header[col[fld]]

        try:
            quantity = _text.parse_int(cell("quantity"))
        except ValueError:
            raise _Problem(
                f"{name_of('quantity')} {cell('quantity')!r} is not an integer"
            ) from None
        if quantity == 0:
            raise _Problem(f"{name_of('quantity')} is 0")
        unit = _yen(cell("unit"), name_of("unit"))
        discount = abs(_yen(cell("discount"), name_of("discount"))) if cell("discount") else 0
        gross = unit * quantity
        amount = gross - discount if gross >= 0 else gross + discount  # 値引 towards zero
        if cell("amount").strip():
            sent = _yen(cell("amount"), name_of("amount"))
            if sent != amount:
                raise _Problem(
                    f"{name_of('amount')} {sent} is not {name_of('unit')} × "
                    f"{name_of('quantity')}" + (" − 値引" if discount else "") + f" = {amount}"
                )
        rate, excluded = _rate(cell("rate"))
        mode = _mode(cell("mode")) if "mode" in col else None
        excluded_final = mode if mode is not None else bool(excluded)
        name = _text.nfkc(cell("name"))
        if not name:
            raise _Problem(f"{name_of('name')} is empty")
        sku = _text.nfkc(cell("sku")) or name
        number = _text.nfkc(cell("line"))
        line_no = int(number) if number.isdigit() else index + 1
        if line_no in numbers:
            raise _Problem(f"明細番号 {line_no} twice in the receipt")
        numbers.add(line_no)
        return _Item(line_no, sku, name, quantity, unit, amount, rate, excluded_final)

    @staticmethod
    def _keep_vendor_tax(taxes: dict[tuple[bool, int], int], sent: int, what: str) -> None:
        """Keep the export's 消費税 when it is within 1 yen per taxable rate of tenpo's."""
        taxable = [k for k in taxes if k[1] > 0]
        difference = sent - sum(taxes.values())
        if abs(difference) > len(taxable):
            raise _Problem(
                f"{what} {sent} differs from the expected {sum(taxes.values())} by more than "
                "1 yen per tax rate"
            )
        for k in sorted(taxable, key=lambda k: (-k[1], k[0])):  # the higher rate first
            step = max(-1, min(1, difference))
            taxes[k] += step
            difference -= step

    @staticmethod
    def _append(
        tid: str,
        register: str,
        voided: bool,
        local: datetime,
        aware: datetime,
        store: StoreRef,
        items: list[_Item],
        groups: dict[tuple[bool, int], list[int]],
        taxes: dict[tuple[bool, int], int],
        cols: PosColumns,
    ) -> None:
        from tenpo.pos import _arrow

        line_tax = [0] * len(items)
        for key, idx in groups.items():
            for i, share in zip(
                idx, allocate(taxes[key], [items[i].amount for i in idx]), strict=True
            ):
                line_tax[i] = share
        day_no = _arrow.day_number(local.date())
        total_excl = total_tax = 0
        for item, tax in zip(items, line_tax, strict=True):
            excl = item.amount if item.excluded else item.amount - tax
            rate = item.rate
            unit_excl = (
                item.unit * 100
                if item.excluded
                else (2 * item.unit * 10_000 + 100 + rate) // (2 * (100 + rate))
            )
            total_excl += excl
            total_tax += tax
            cols.ln.append(
                (store.store_id, tid, day_no, item.line_no, item.sku, item.name, item.quantity,
                 unit_excl, excl * 100, rate, tax * 100, (excl + tax) * 100)
            )  # fmt: skip
        amount = sum(i.amount for i in items)
        kind = "void" if voided else "return" if amount < 0 else "sale"
        cols.tx.append(
            (store.store_id, register, tid, day_no, _arrow.micros(aware), _arrow.micros(local),
             kind, total_excl * 100, total_tax * 100, (total_excl + total_tax) * 100,
             sum(i.quantity for i in items))
        )  # fmt: skip


def _record(header: list[str], rows: list[tuple[int, list[str]]]) -> dict[str, object]:
    """The receipt's rows as received, by header name, and their CSV lines (quarantine)."""
    return {
        "lines": [line for line, _ in rows],
        "rows": [dict(zip(header, row, strict=False)) for _, row in rows],
    }


def _pre_etl() -> AirregiPreEtl:
    return AirregiPreEtl()


VENDOR = Vendor(
    key=KEY,
    title="Airレジ (AirREGI) 会計明細 CSV (CP932) of one store: columns found by header name, "
    "内税/外税 per line, the store named with the upload",
    sales=Upload(SOURCE, "csv", CSV_CP932, check_sales, _pre_etl, store_from_upload=True),
)
