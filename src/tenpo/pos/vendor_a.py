"""POS vendor A: CP932 CSV, one row per receipt line, amounts including tax (FORMATS.md).

Rows are grouped into receipts by (register, receipt number, transaction time). A receipt is
loaded whole or rejected whole: any bad field, a line whose 金額 is not 単価 × 数量 − 値引額,
or lines that do not add up to 合計金額 quarantines every line of it with the figures. The
register is resolved to a store through the POS master valid on the receipt's local date; an
unknown register is a *replayable* reject (a later master upload fixes it).

取引日時 is the store's wall-clock time without an offset; ``ts`` is that time in the store's
zone. On daylight-saving nights two wall times need a rule: a time in the hour repeated when
clocks go back is the **first** pass (the summer-time offset, the earlier instant: London's
01:30 on 25 Oct 2026 is 00:30 UTC); a time in the hour skipped when they go forward, which no
clock showed, is read with the offset in force **before** the change (London's 01:30 on 29 Mar
2026 is 01:30 UTC = 02:30 BST). ``ts_local`` keeps the wall time as sent. The vectorised and
the row-wise paths apply the same rule (``tests/pos/test_vendor_a.py``).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa

from tenpo.control.directory import Directory, RegisterAssignment, StoreRef
from tenpo.core.errors import BadInput
from tenpo.core.preetl import ParseResult, Reject
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text
from tenpo.pos._vendor_a_fast import Layout, parse_fast
from tenpo.pos.tax import ROUNDINGS, Rounding, split_inclusive

__all__ = ["VendorAMasterPreEtl", "VendorAPreEtl", "parse_master"]

log = logging.getLogger(__name__)

VENDOR = "vendor_a"
ENCODING = "cp932"
TRANSACTIONS = "raw_pos_transactions"
MASTER_TABLE = "pos_master"  # quarantine folder of rejected master rows

REGISTER, RECEIPT, TIME, KIND = "レジ番号", "レシート番号", "取引日時", "取引区分"
LINE_NO, JAN, NAME, QTY = "行番号", "JANコード", "商品名", "数量"
UNIT_PRICE, DISCOUNT, AMOUNT, RATE, TOTAL = "単価", "値引額", "金額", "税率区分", "合計金額"
SALES_COLUMNS: tuple[str, ...] = (REGISTER, RECEIPT, TIME, KIND, LINE_NO, JAN, NAME, QTY)
SALES_COLUMNS += (UNIT_PRICE, DISCOUNT, AMOUNT, RATE, TOTAL)
KINDS = {"売上": "sale", "返品": "return", "取消": "void"}
FUTURE_TOLERANCE = timedelta(hours=1)
"""How far after the file's arrival a transaction time may be (register clocks drift)."""
RATE_PERCENTS = {"標準": 10, "軽減": 8, "非課税": 0}
_FAST_NAMES = {
    "register": REGISTER, "receipt": RECEIPT, "time": TIME, "kind": KIND, "line_no": LINE_NO,
    "jan": JAN, "name": NAME, "qty": QTY, "unit": UNIT_PRICE, "discount": DISCOUNT,
    "amount": AMOUNT, "rate": RATE, "total": TOTAL,
}  # fmt: skip

_INT32 = 1 << 31

STORE_CODE, STORE_NAME, VALID_FROM, VALID_TO = "店舗コード", "店舗名", "適用開始日", "適用終了日"
MASTER_COLUMNS = (REGISTER, STORE_CODE, STORE_NAME, VALID_FROM, VALID_TO)


class _ObjectProblem(Exception):
    """The whole object is unusable (encoding, header, CSV quoting)."""


def _header_index(header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    names = [_text.nfkc(h) for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise _ObjectProblem(f"missing column(s) in header: {', '.join(missing)}")
    return {c: names.index(c) for c in required}


def _decode(data: bytes) -> str:
    try:
        return _text.decode(data, ENCODING)
    except _text.DecodeProblem as exc:
        raise _ObjectProblem(str(exc)) from exc


def _header(text: str, required: tuple[str, ...]) -> tuple[list[str], dict[str, int]]:
    """The header row and the positions of the ``required`` columns."""
    # The header alone: parsing it from the whole text would copy the whole text first.
    end = text.find("\n")
    head = text[: end + 1] if end >= 0 and '"' not in text[:end] else text
    try:
        first = next(_text.rows(head), None)
    except csv.Error as exc:
        raise _ObjectProblem(f"malformed CSV header: {exc}") from exc
    if first is None:
        raise _ObjectProblem("empty file: no header row")
    return first[1], _header_index(first[1], required)


def _records(text: str) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of every data record."""
    try:
        return list(_text.rows(text))[1:]
    except csv.Error as exc:
        raise _ObjectProblem(f"malformed CSV: {exc}") from exc


@dataclass(slots=True)
class _Receipt:
    register: str
    receipt: str
    time_text: str
    first_line: int
    rows: list[list[str]] = field(default_factory=list)


def _unit_price_excl_cents(unit_price: int, rate: int) -> int:
    """Unit price without tax in cents, rounded half up (informational; lines carry exact sums)."""
    magnitude = (2 * abs(unit_price) * 10_000 + 100 + rate) // (2 * (100 + rate))
    return -magnitude if unit_price < 0 else magnitude


# A parsed line: (line_no, sku, name, quantity, unit_price, amount, rate_percent).
_Line = tuple[int, str, str, int, int, int, int]


class VendorAPreEtl:
    """Pre-ETL of vendor A sales CSVs into ``raw_pos_transactions`` and ``raw_pos_lines``.

    ``rounding`` is the tax rounding (floor, round, ceil) and ``per_line`` computes the tax of
    each line instead of each receipt and rate; the default is the vendor's own rule.
    """

    source = "pos_vendor_a"

    def __init__(
        self,
        rounding: Rounding = "floor",
        per_line: bool = False,
        *,
        future_tolerance: timedelta = FUTURE_TOLERANCE,
        _fast: bool = True,
    ) -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {rounding!r}; expected one of {ROUNDINGS}")
        self.rounding: Rounding = rounding
        self.per_line = per_line
        self.future_tolerance = future_tolerance
        self._fast = _fast  # False forces the row-wise path (tests compare both)

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Rows of every valid receipt; a reject per bad receipt (or one for a bad object).

        A clean object goes through a column-wise fast path; any problem sends the whole
        object through the row-wise path, which names each problem.
        """
        result = ParseResult()
        if self._fast:
            tables = self._parse_fast(event, data, directory)
            if tables is not None:
                result.tables = tables
                return result
        try:
            text = _decode(data)
            header, col = _header(text, SALES_COLUMNS)
            records = _records(text)
        except _ObjectProblem as exc:
            result.rejects.append(Reject(TRANSACTIONS, str(exc)))
            return result

        receipts: dict[tuple[str, str, str], _Receipt] = {}
        c_reg, c_rec, c_time = col[REGISTER], col[RECEIPT], col[TIME]
        width = len(header)
        nfkc = _text.nfkc
        for line, row in records:
            if len(row) != width:
                result.rejects.append(
                    Reject(
                        TRANSACTIONS,
                        f"row has {len(row)} fields but the header has {width}",
                        record=",".join(row),
                        line=line,
                    )
                )
                continue
            key = (nfkc(row[c_reg]), nfkc(row[c_rec]), nfkc(row[c_time]))
            receipt = receipts.get(key)
            if receipt is None:
                receipt = receipts[key] = _Receipt(*key, first_line=line)
            receipt.rows.append(row)

        cols = _arrow.PosColumns(event.tenant_id, VENDOR, event.object_id, event.registered_at)
        ctx = _Context(event, directory, header, col)
        seen: set[str] = set()
        for receipt in receipts.values():
            reject = self._load_receipt(receipt, ctx, cols, seen)
            if reject is not None:
                result.rejects.append(reject)
        for tid, reason in cols.take_out_of_range():
            result.rejects.append(Reject(TRANSACTIONS, f"transaction {tid!r}: {reason}"))
        result.tables = cols.tables()
        log.debug(
            "vendor A object %s: %d receipts, %d rejects",
            event.object_id,
            len(receipts),
            len(result.rejects),
        )
        return result

    def _parse_fast(
        self, event: ObjectRegistered, data: bytes, directory: Directory
    ) -> dict[str, pa.Table] | None:
        """Both tables from the column-wise fast path, or None when the row-wise path must run.

        Only the header line is decoded here; the fast path reads the records' raw bytes.
        """
        end = data.find(b"\n")
        if end < 0 or b'"' in data[:end]:
            return None
        try:
            header, col = _header(_decode(data[: end + 1]), SALES_COLUMNS)
        except _ObjectProblem:
            return None
        layout = Layout(
            width=len(header),
            col={role: col[name] for role, name in _FAST_NAMES.items()},
            kinds=KINDS,
            rate_percents=RATE_PERCENTS,
            encoding=ENCODING,
            vendor=VENDOR,
            max_yen=_arrow.MAX_YEN,
            max_quantity=_arrow.MAX_QUANTITY,
        )
        return parse_fast(
            data, end + 1, layout, event, directory, self.rounding, self.per_line,
            not_after=event.registered_at + self.future_tolerance,
        )  # fmt: skip

    def _load_receipt(
        self, receipt: _Receipt, ctx: _Context, cols: _arrow.PosColumns, seen: set[str]
    ) -> Reject | None:
        problems: list[str] = []
        col = ctx.col
        if not receipt.register or not receipt.receipt:
            problems.append(f"empty {REGISTER} or {RECEIPT}")
        local = ctx.local_time(receipt.time_text)
        if local is None:
            problems.append(f"bad {TIME} {receipt.time_text!r} (expected yyyy/MM/dd HH:mm:ss)")
        c_kind = col[KIND]
        kind_texts = {_text.nfkc(row[c_kind]) for row in receipt.rows}
        kind = KINDS.get(next(iter(kind_texts))) if len(kind_texts) == 1 else None
        if len(kind_texts) > 1:
            problems.append(f"mixed {KIND} {sorted(kind_texts)} within one receipt")
        elif kind is None:
            problems.append(f"unknown {KIND} {next(iter(kind_texts))!r}")

        lines: list[_Line] = []
        totals: set[int] = set()
        for row in receipt.rows:
            try:
                lines.append(_line(row, ctx.positions, totals))
            except ValueError as exc:
                problems.append(str(exc))
        if not problems:
            line_nos = [ln[0] for ln in lines]
            if len(set(line_nos)) != len(line_nos):
                problems.append(f"duplicate {LINE_NO} in {sorted(line_nos)}")
            signs = {(ln[3] > 0) - (ln[3] < 0) for ln in lines}
            if kind == "sale" and -1 in signs:
                problems.append(
                    f"negative {QTY} on a 売上 receipt (a return must have {KIND} 返品)"
                )
            elif kind == "return" and 1 in signs:
                problems.append(f"positive {QTY} on a 返品 receipt (returns carry negative {QTY})")
            if len(totals) != 1:
                problems.append(f"{TOTAL} differs between lines: {sorted(totals)}")
            else:
                total, line_sum = next(iter(totals)), sum(ln[5] for ln in lines)
                if line_sum != total:
                    problems.append(
                        f"lines add up to {line_sum} but {TOTAL} is {total} "
                        f"(difference {line_sum - total})"
                    )

        tid = (
            f"{receipt.register}-{local:%Y%m%d}-{receipt.receipt}"
            if local is not None
            else f"{receipt.register}-?-{receipt.receipt}"
        )
        if problems:
            return ctx.reject(receipt, f"receipt {tid}: " + "; ".join(problems))
        assert local is not None and kind is not None
        day = local.date()
        store = ctx.store(receipt.register, day)
        if store is None:
            return ctx.reject(
                receipt,
                f"register {receipt.register!r} unknown on {day.isoformat()} (receipt {tid})",
                replayable=True,
            )
        aware = local.replace(tzinfo=_text.zone(store.timezone))
        if aware > ctx.event.registered_at + self.future_tolerance:
            return ctx.reject(
                receipt,
                f"receipt {tid}: {TIME} {local:%Y/%m/%d %H:%M:%S} is in the future (the file"
                f" arrived at {ctx.event.registered_at.astimezone(aware.tzinfo):%Y/%m/%d %H:%M:%S},"
                f" tolerance {self.future_tolerance})",
            )
        if tid in seen:
            return ctx.reject(receipt, f"receipt {tid}: duplicate receipt in this file")
        seen.add(tid)
        self._append(receipt.register, tid, kind, local, store, lines, cols)
        return None

    def _append(
        self,
        register: str,
        tid: str,
        kind: str,
        local: datetime,
        store: StoreRef,
        lines: list[_Line],
        cols: _arrow.PosColumns,
    ) -> None:
        by_rate: dict[int, list[int]] = {}
        for i, ln in enumerate(lines):
            by_rate.setdefault(ln[6], []).append(i)
        excl = [0] * len(lines)
        taxes = [0] * len(lines)
        for rate, idx in by_rate.items():
            e, t = split_inclusive([lines[i][5] for i in idx], rate, self.rounding, self.per_line)
            for i, e_i, t_i in zip(idx, e, t, strict=True):
                excl[i], taxes[i] = e_i, t_i

        store_id, day_no = store.store_id, _arrow.day_number(local.date())
        append = cols.ln.append
        for i, (line_no, sku, name, qty, unit, amount, rate) in enumerate(lines):
            append(
                (store_id, tid, day_no, line_no, sku, name, qty,
                 _unit_price_excl_cents(unit, rate), excl[i] * 100, rate, taxes[i] * 100,
                 amount * 100)
            )  # fmt: skip
        total, tax = sum(ln[5] for ln in lines), sum(taxes)
        cols.tx.append(
            (store_id, register, tid, day_no,
             _arrow.micros(local.replace(tzinfo=_text.zone(store.timezone))), _arrow.micros(local),
             kind, (total - tax) * 100, tax * 100, total * 100, sum(ln[3] for ln in lines))
        )  # fmt: skip


def _line(row: list[str], pos: tuple[int, ...], totals: set[int]) -> _Line:
    """One receipt line; ``ValueError`` naming the field and line for anything wrong."""
    c_line, c_jan, c_name, c_qty, c_unit, c_disc, c_amount, c_rate, c_total = pos
    parse_int = _text.parse_int
    try:
        line_no, qty, unit = parse_int(row[c_line]), parse_int(row[c_qty]), parse_int(row[c_unit])
        amount, total = parse_int(row[c_amount]), parse_int(row[c_total])
        raw_disc = row[c_disc]
        discount = parse_int(raw_disc) if raw_disc and not raw_disc.isspace() else 0
    except ValueError:
        names = (LINE_NO, QTY, UNIT_PRICE, AMOUNT, TOTAL, DISCOUNT)
        for name, c in zip(names, (c_line, c_qty, c_unit, c_amount, c_total, c_disc), strict=True):
            if name == DISCOUNT and not row[c].strip():
                continue
            try:
                parse_int(row[c])
            except ValueError:
                raise ValueError(f"bad {name} {row[c]!r}") from None
        raise
    rate_text = row[c_rate]
    rate = RATE_PERCENTS.get(rate_text)
    if rate is None:
        rate = RATE_PERCENTS.get(_text.nfkc(rate_text))
        if rate is None:
            raise ValueError(f"line {line_no}: unknown {RATE} {rate_text!r}")
    totals.add(total)
    if not -_INT32 <= line_no < _INT32:  # the column is int32
        raise ValueError(f"{LINE_NO} {line_no} is out of range")
    if qty == 0:
        raise ValueError(f"line {line_no}: {QTY} is 0")
    if discount < 0:
        raise ValueError(f"line {line_no}: negative {DISCOUNT} {discount}")
    gross = unit * abs(qty) - discount
    if amount != (-gross if qty < 0 else gross):
        raise ValueError(
            f"line {line_no}: {AMOUNT} {amount} is not {UNIT_PRICE} × {QTY} − {DISCOUNT}"
            f" = {-gross if qty < 0 else gross}"
        )
    sku = row[c_jan]
    sku = sku if sku.isascii() and sku.isalnum() else _text.nfkc(sku)
    return (line_no, sku, row[c_name], qty, unit, amount, rate)


class _Context:
    """Per-object lookups with caches (times and register→store resolutions repeat a lot)."""

    def __init__(
        self, event: ObjectRegistered, directory: Directory, header: list[str], col: dict[str, int]
    ) -> None:
        self.event = event
        self.directory = directory
        self.header = header
        self.col = col
        self.positions = tuple(
            col[c] for c in (LINE_NO, JAN, NAME, QTY, UNIT_PRICE, DISCOUNT, AMOUNT, RATE, TOTAL)
        )
        self._times: dict[str, datetime | None] = {}
        self._stores: dict[tuple[str, date], StoreRef | None] = {}

    def local_time(self, text: str) -> datetime | None:
        if text not in self._times:
            try:
                self._times[text] = _text.parse_local_ts(text)
            except ValueError:
                self._times[text] = None
        return self._times[text]

    def store(self, register: str, day: date) -> StoreRef | None:
        key = (register, day)
        if key not in self._stores:
            self._stores[key] = self.directory.register_store(
                self.event.tenant_id, VENDOR, register, day
            )
        return self._stores[key]

    def reject(self, receipt: _Receipt, reason: str, replayable: bool = False) -> Reject:
        record = {
            "register": receipt.register,
            "receipt": receipt.receipt,
            "rows": [dict(zip(self.header, row, strict=False)) for row in receipt.rows],
        }
        return Reject(
            TRANSACTIONS, reason, record=record, line=receipt.first_line, replayable=replayable
        )


# --- POS master -------------------------------------------------------------------------


def parse_master(
    data: bytes, directory: Directory, tenant_id: str
) -> tuple[list[RegisterAssignment], list[Reject]]:
    """Register assignments of a vendor-A master CSV and rejects for its bad rows.

    A register with any bad row is left out entirely (its valid rows are rejected too), so a
    partial master never replaces a register's complete history.
    """
    try:
        text = _decode(data)
        header, col = _header(text, MASTER_COLUMNS)
        records = _records(text)
    except _ObjectProblem as exc:
        return [], [Reject(MASTER_TABLE, str(exc))]
    width = len(header)
    good: list[tuple[int, list[str], RegisterAssignment]] = []
    rejects: list[Reject] = []
    bad_registers: set[str] = set()
    for line, row in records:
        record = dict(zip(header, row, strict=False))
        register = _text.nfkc(row[col[REGISTER]]) if len(row) == width else ""
        try:
            if len(row) != width:
                raise ValueError(f"row has {len(row)} fields but the header has {width}")
            assignment = _master_row(row, col, directory, tenant_id)
        except ValueError as exc:
            rejects.append(Reject(MASTER_TABLE, str(exc), record=record, line=line))
            bad_registers.add(register)
            continue
        good.append((line, row, assignment))
    overlapping = _overlaps([a for _, _, a in good if a.register_code not in bad_registers])
    rows: list[RegisterAssignment] = []
    for line, row, assignment in good:
        if assignment.register_code in overlapping:
            rejects.append(
                Reject(
                    MASTER_TABLE,
                    overlapping[assignment.register_code],
                    record=dict(zip(header, row, strict=False)),
                    line=line,
                )
            )
        elif assignment.register_code in bad_registers:
            reason = f"register {assignment.register_code!r} has invalid rows in this master"
            rejects.append(
                Reject(MASTER_TABLE, reason, record=dict(zip(header, row, strict=False)), line=line)
            )
        else:
            rows.append(assignment)
    return rows, rejects


def _overlaps(assignments: list[RegisterAssignment]) -> dict[str, str]:
    """Register → reason, for the registers with two validity periods sharing a day.

    Checked here, per register, so that the other registers of the master still apply (the
    directory refuses a master with an overlap as a whole).
    """
    by_register: dict[str, list[RegisterAssignment]] = {}
    for a in assignments:
        by_register.setdefault(a.register_code, []).append(a)
    reasons: dict[str, str] = {}
    for code, spans in by_register.items():
        ordered = sorted(spans, key=lambda a: a.valid_from)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a.valid_to is None or b.valid_from <= a.valid_to:
                until = a.valid_to.isoformat() if a.valid_to else "open-ended"
                reasons[code] = (
                    f"register {code!r}: validity periods overlap ({a.valid_from} to {until}"
                    f" in store {a.store_code!r}, and from {b.valid_from} in store"
                    f" {b.store_code!r}); none of its rows applied"
                )
                break
    return reasons


def _master_row(
    row: list[str], col: dict[str, int], directory: Directory, tenant_id: str
) -> RegisterAssignment:
    register = _text.nfkc(row[col[REGISTER]])
    store_code = _text.nfkc(row[col[STORE_CODE]])
    if not register:
        raise ValueError(f"empty {REGISTER}")
    if directory.store_by_code(tenant_id, store_code) is None:
        raise ValueError(f"register {register!r}: unknown store code {store_code!r}")
    try:
        valid_from = _text.parse_local_date(row[col[VALID_FROM]])
    except ValueError as exc:
        raise ValueError(f"register {register!r}: bad {VALID_FROM}: {exc}") from None
    valid_to: date | None = None
    if row[col[VALID_TO]].strip():
        try:
            valid_to = _text.parse_local_date(row[col[VALID_TO]])
        except ValueError as exc:
            raise ValueError(f"register {register!r}: bad {VALID_TO}: {exc}") from None
        if valid_to < valid_from:
            raise ValueError(
                f"register {register!r}: {VALID_TO} {valid_to} is before {VALID_FROM} {valid_from}"
            )
    name = row[col[STORE_NAME]].strip() or None
    return RegisterAssignment(register, store_code, valid_from, valid_to, name)


class VendorAMasterPreEtl:
    """Pre-ETL of vendor A's POS master: applies register→store assignments to the directory.

    Produces no rows; bad rows (unknown store code, bad dates) come back as rejects.
    """

    source = "pos_vendor_a_master"

    def parse(self, event: ObjectRegistered, data: bytes, directory: Directory) -> ParseResult:
        """Apply the master's valid rows for ``event.tenant_id``; reject the others."""
        rows, rejects = parse_master(data, directory, event.tenant_id)
        if rows:
            try:
                applied = directory.apply_pos_master(event.tenant_id, VENDOR, rows)
            except BadInput as exc:
                rejects.append(Reject(MASTER_TABLE, f"master not applied: {exc}"))
            else:
                log.info("applied %d vendor A master rows for tenant %s", applied, event.tenant_id)
        return ParseResult(rejects=rejects)
