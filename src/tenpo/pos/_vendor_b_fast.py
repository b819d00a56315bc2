"""Column-wise fast path of the vendor-B Pre-ETL: orjson, then one Arrow/numpy pass per field.

The body is decoded once by orjson; each field is gathered into one column and checked as a
column (exact JSON types by Arrow's type inference, money spellings by one regex over the
column, sums, tax and allocation with numpy integers, as :mod:`tenpo.pos._vector`). Only the
receipts a column check flags are handed to the row-wise path, which names their problem; when
the row-wise path would load such a receipt after all, or anything is outside the plain case
(floats, mixed types, duplicate receipts, huge amounts, a body orjson refuses), the whole
object goes to the row-wise path. Both paths therefore give identical rows and rejects (tests
compare them on random and bad bodies).
"""

from __future__ import annotations

import logging
from datetime import timedelta, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tenpo.control.directory import Directory, StoreRef
from tenpo.core.bodies import RECEIPT_FIELDS, BodyError, split_records
from tenpo.core.preetl import ParseResult
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text, _vector
from tenpo.pos.vendor_b import (
    _RATE_INT,
    _RATE_TEXT,
    KINDS,
    VENDOR,
    VendorBPreEtl,
    _aware,
    _receipts,
)
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS

__all__ = ["parse_fast"]

log = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_MONEY = r"^(0|[1-9][0-9]{0,10})(\.[0-9]{1,2})?$"  # ≤ 11 integer digits: int64-safe products
_MAX_INT = 10**11  # money given as a JSON integer (yen): larger ones go to the row path
_MAX_QTY = 1 << 20
_MAX_CENTS = _arrow.MAX_YEN * 100
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)
_KIND_CODES = pa.array(list(KINDS))
_SIGN_OF_KIND = np.array([-1 if k == "RETURN" else 1 for k in KINDS], dtype=np.int64)
_CANONICAL_TS = (
    r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)  # what Arrow's cast and datetime.fromisoformat read alike (invalid dates: Arrow refuses)
_ONE_US = timedelta(microseconds=1)
_HOUR = 3600 * 10**6
_DAY = 24 * _HOUR
_RATES = (0, 8, 10)  # the supported percents; column r of the per-rate sums


def _strings(values: list[Any]) -> pa.Array:
    """A string column; null where the value is not a JSON string."""
    try:
        return pa.array(values, pa.string())
    except _ARROW_ERRORS:
        return pa.array([v if type(v) is str else None for v in values], pa.string())


def _valid(mask: pa.Array) -> Bools:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _inferred(values: list[Any]) -> pa.Array | None:
    try:
        return pa.array(values)
    except _ARROW_ERRORS:
        return None


def _ints(values: list[Any], low: int, high: int) -> tuple[Ints, Bools]:
    """JSON integers (not booleans) within [low, high]; (values, valid)."""
    arr = _inferred(values)
    if arr is None or not pa.types.is_integer(arr.type):
        if arr is not None and pa.types.is_null(arr.type):
            return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
        arr = pa.array([v if type(v) is int and low <= v <= high else None for v in values],
                       pa.int64())  # fmt: skip
    ints = np.asarray(pc.fill_null(arr, low - 1).to_numpy(zero_copy_only=False), dtype=np.int64)
    ok = (ints >= low) & (ints <= high)
    return np.where(ok, ints, 0), ok


def _cents(values: list[Any]) -> tuple[Ints, Bools]:
    """Money as vendor B's plain spellings ("123.45" text or a JSON integer of yen), in cents."""
    arr = _inferred(values)
    if arr is not None and pa.types.is_string(arr.type):
        return _cents_of_text(arr)
    if arr is not None and pa.types.is_integer(arr.type):
        ints, ok = _ints(values, 0, _MAX_INT)
        return ints * 100, ok
    # Mixed spellings (or none valid): each spelling on its own.
    text, text_ok = _cents_of_text(_strings(values))
    ints, int_ok = _ints(values, 0, _MAX_INT)
    return np.where(text_ok, text, ints * 100), text_ok | int_ok


def _cents_of_text(arr: pa.Array) -> tuple[Ints, Bools]:
    ok = _valid(pc.match_substring_regex(arr, _MONEY))
    plain = pc.if_else(pa.array(ok), arr, "0")
    dec = pc.cast(plain, pa.decimal128(18, 2))
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)[2 * dec.offset :: 2][: len(dec)]
    return np.where(ok, words, 0), ok


def _percents(values: list[Any]) -> tuple[Ints, Bools]:
    """Tax rates in vendor B's plain spellings as whole percents."""
    out, ok = np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    ints = [v if type(v) is int and abs(v) < 100 else None for v in values]
    spellings: list[tuple[dict[Any, int], pa.Array]] = [
        (_RATE_TEXT, _strings(values)),
        (_RATE_INT, pa.array(ints, pa.int64())),
    ]
    for table, column in spellings:
        if column.null_count == len(column):
            continue
        keys = list(table)
        found = pc.index_in(column, value_set=pa.array(keys, column.type))
        hit = _valid(pc.is_valid(found))
        idx = np.asarray(pc.fill_null(found, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out = np.where(hit, np.array([table[k] for k in keys], np.int64)[idx], out)
        ok |= hit
    return out, ok


def _instants(values: list[Any]) -> tuple[Ints, Bools]:
    """Epoch µs of aware ISO 8601 times (as ``vendor_b._aware`` reads them); (µs, valid)."""
    text = _strings(values)
    if _valid(pc.match_substring_regex(text, _CANONICAL_TS)).all():
        try:
            ts = pc.cast(text, pa.timestamp("us", "UTC"))
        except pa.ArrowInvalid:  # 2026-02-30 and the like: Python says
            pass
        else:
            return np.asarray(ts.cast(pa.int64()).to_numpy(), dtype=np.int64), np.ones(
                len(ts), bool
            )
    times = [_aware(v) for v in values]
    ok = np.array([t is not None for t in times], dtype=bool)
    return np.array([_arrow.micros(t) if t else 0 for t in times], dtype=np.int64), ok


def _offsets(ts_us: Ints, store_of: Ints, stores: list[StoreRef]) -> Ints:
    """UTC offset (µs) of each instant in its store's zone (rows with store -1: 0).

    One zone look-up per zone and UTC hour; an hour whose two ends differ (a transition
    inside it) is resolved row by row, so the result is always Python's ``astimezone``.
    """
    out = np.zeros(len(ts_us), np.int64)
    by_zone: dict[str, list[int]] = {}
    for i, store in enumerate(stores):
        by_zone.setdefault(store.timezone, []).append(i)
    for name, members in by_zone.items():
        rows = np.flatnonzero(np.isin(store_of, members))
        if not len(rows):
            continue
        zone = _text.zone(name)
        hours, inverse = np.unique(ts_us[rows] // _HOUR, return_inverse=True)
        first = [_offset(zone, h * _HOUR) for h in hours.tolist()]
        last = [_offset(zone, h * _HOUR + _HOUR - 1) for h in hours.tolist()]
        offsets = np.array(first, dtype=np.int64)[inverse]
        mixed = (np.array(first, dtype=np.int64) != np.array(last, dtype=np.int64))[inverse]
        for k in np.flatnonzero(mixed).tolist():
            offsets[k] = _offset(zone, int(ts_us[rows[k]]))
        out[rows] = offsets
    return out


def _offset(zone: tzinfo, us: int) -> int:
    offset = (_arrow.EPOCH + timedelta(microseconds=us)).astimezone(zone).utcoffset()
    return 0 if offset is None else offset // _ONE_US


def parse_fast(
    pre: VendorBPreEtl, event: ObjectRegistered, data: bytes, directory: Directory
) -> ParseResult | None:
    """The result of the object, or None when the row-wise path must run instead."""
    try:
        raws = split_records(orjson.loads(data), "receipts", RECEIPT_FIELDS, "receipt")
    except (orjson.JSONDecodeError, BodyError):
        return None
    n = len(raws)
    if n == 0 or any(type(r) is not dict for r in raws):
        return None

    # Receipt columns.
    codes = _strings([r.get("storeCode") for r in raws])
    registers = _strings([r.get("registerId") for r in raws])
    receipt_ids = _strings([r.get("receiptId") for r in raws])
    bad = np.zeros(n, bool)
    for col in (codes, registers, receipt_ids):
        bad |= ~_valid(pc.greater(pc.binary_length(col), 0))
    kinds = pc.index_in(_strings([r.get("type") for r in raws]), value_set=_KIND_CODES)
    bad |= ~_valid(pc.is_valid(kinds))
    kind_no = np.asarray(pc.fill_null(kinds, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    subtotal, ok_s = _cents([r.get("subtotal") for r in raws])
    tax, ok_t = _cents([r.get("tax") for r in raws])
    total, ok_tot = _cents([r.get("total") for r in raws])
    bad |= ~(ok_s & ok_t & ok_tot)

    item_lists = [r.get("items") for r in raws]
    n_items = np.fromiter(
        (len(x) if type(x) is list else 0 for x in item_lists), dtype=np.int64, count=n
    )
    bad |= n_items == 0
    items = [it for x in item_lists if type(x) is list for it in x]
    if not items or len(items) >= _MAX_QTY or any(type(it) is not dict for it in items):
        return None
    rid = np.repeat(np.arange(n, dtype=np.int64), n_items)

    # Item columns.
    skus = _strings([it.get("sku") for it in items])
    names = _strings([it.get("name") for it in items])
    qty, ok_q = _ints([it.get("qty") for it in items], 1, _MAX_QTY)
    unit, ok_u = _cents([it.get("unitPrice") for it in items])
    discount, ok_d = _cents([it.get("discount", 0) for it in items])
    rate, ok_r = _percents([it.get("taxRate") for it in items])
    item_ok = _valid(pc.greater(pc.binary_length(skus), 0)) & _valid(pc.is_valid(names))
    item_ok &= ok_q & ok_u & ok_d & ok_r
    bad |= np.bincount(rid, weights=~item_ok, minlength=n) > 0

    # Stores (one directory look-up per code) and times (one Arrow cast for the column).
    code_list = codes.to_pylist()
    found = {c: directory.store_by_code(event.tenant_id, c) for c in set(code_list) if c}
    known = [s for s in dict.fromkeys(found.values()) if s is not None]
    at = {s.store_id: i for i, s in enumerate(known)}
    store_of = np.array([at[s.store_id] if (s := found.get(c) if c else None) else -1
                         for c in code_list], dtype=np.int64)  # fmt: skip
    bad |= store_of < 0
    ts_us, ok_ts = _instants([r.get("transactedAt") for r in raws])
    bad |= ~ok_ts | (ts_us > _arrow.micros(event.registered_at + pre.future_tolerance))
    local_us = ts_us + _offsets(ts_us, np.where(bad, -1, store_of), known)
    day_no = local_us // _DAY

    # Sums and tax per receipt and rate, in integer cents (int64: magnitudes checked first).
    if int(qty.max()) * int(max(unit.max(), discount.max())) >= _vector.SAFE:
        return None
    amounts = qty * unit - discount
    if np.abs(amounts).max() > _MAX_CENTS:
        return None
    amounts = np.where(item_ok, amounts, 0)
    bad |= _vector.group_sum(rid, amounts, n) != subtotal
    bad |= total != subtotal + tax
    rate_col = np.searchsorted(np.array(_RATES), rate)
    group = rid * len(_RATES) + rate_col
    by_rate = _vector.group_sum(group, amounts, n * len(_RATES)).reshape(n, len(_RATES))
    present = np.bincount(group, minlength=n * len(_RATES)).reshape(n, len(_RATES)) > 0
    if np.abs(by_rate).max() > _MAX_CENTS:
        return None
    percents = np.array(_RATES, dtype=np.int64)
    expected = _vector.divide(np.abs(by_rate) * percents, 100 * 100, pre.rounding) * 100
    expected = np.where(by_rate < 0, -expected, expected)
    taxable = present & (percents > 0)
    difference = tax - expected.sum(axis=1)
    bad |= np.abs(difference) > 100 * taxable.sum(axis=1)
    rate_tax = expected.copy()
    for col in range(len(_RATES) - 1, 0, -1):  # spread the vendor's rounding: 10 %, then 8 %
        step = np.where(taxable[:, col], np.clip(difference, -100, 100), 0)
        rate_tax[:, col] += step
        difference -= step

    keep = ~bad
    tids = pc.binary_join_element_wise(registers, receipt_ids, "-")
    kept_tids = pc.filter(tids, pa.array(keep))
    if pc.count_distinct(kept_tids).as_py() != len(kept_tids):
        return None  # duplicates: the row path keeps the first and names the others

    result = ParseResult()
    if bad.any():
        first = {t: i for t, i in zip(kept_tids.to_pylist(), np.flatnonzero(keep).tolist(),
                                      strict=True)}  # fmt: skip
        if not _name_problems(pre, event, data, directory, np.flatnonzero(bad), result, first):
            return None

    # Line tax: each (receipt, rate) group's tax allocated over its lines by largest remainder.
    line_keep = keep[rid]
    weights = amounts[line_keep]
    groups, inverse = np.unique(group[line_keep], return_inverse=True)
    totals = rate_tax.reshape(-1)[groups]
    if len(weights) and int(np.abs(weights).max()) * int(np.abs(totals).max()) >= _vector.SAFE:
        return None
    den = _vector.group_sum(inverse, weights, len(groups))
    zero = den == 0  # lines that cancel out: split evenly
    sizes = np.bincount(inverse, minlength=len(groups))
    numerators = np.where(zero[inverse], totals[inverse], weights * totals[inverse])
    line_tax = _vector.largest_remainder(inverse, numerators, np.where(zero, sizes, den), totals)

    kept = np.flatnonzero(keep)
    sign = _SIGN_OF_KIND[kind_no]
    line_sign = sign[rid][line_keep]
    line_amount = line_sign * weights
    line_tax = line_sign * line_tax
    line_qty = line_sign * qty[line_keep]
    starts = np.cumsum(n_items) - n_items
    line_no = (np.arange(len(rid)) - starts[rid] + 1)[line_keep]
    tx_excl = (sign * subtotal)[kept]
    tx_tax = (sign * tax)[kept]
    item_count = (sign * _vector.group_sum(rid, qty, n))[kept]
    for values, limit in (
        (tx_excl, _MAX_CENTS), (tx_tax, _MAX_CENTS), (tx_excl + tx_tax, _MAX_CENTS),
        (item_count, _arrow.MAX_QUANTITY), (line_qty, _arrow.MAX_QUANTITY),
        (unit[line_keep], _MAX_CENTS), (line_amount, _MAX_CENTS), (line_tax, _MAX_CENTS),
        (line_amount + line_tax, _MAX_CENTS),
    ):  # fmt: skip
        if len(values) and np.abs(values).max() > limit:
            return None  # the row path rejects those receipts with their reason

    store_ids = pc.take(
        pa.array([s.store_id for s in known] + [None], pa.string()),
        pa.array(np.where(bad, len(known), store_of)),
    )
    keep_arr, line_arr = pa.array(keep), pa.array(line_keep)
    line_rid = pa.array(rid[line_keep])
    tx_store = pc.filter(store_ids, keep_arr)
    tx_day = day_no[kept]
    money = RAW_POS_TRANSACTIONS.field("total_excl_tax").type
    line_money = RAW_POS_LINES.field("amount_excl_tax").type
    received = _arrow.micros(event.registered_at)
    n_tx, n_ln = len(kept), int(line_keep.sum())
    tx = {
        "tenant_id": _repeat(event.tenant_id, n_tx),
        "store_id": tx_store,
        "register_id": pc.filter(registers, keep_arr),
        "transaction_id": kept_tids,
        "business_date": _arrow.dates(tx_day.tolist()),
        "ts": pa.array(ts_us[kept]).cast(RAW_POS_TRANSACTIONS.field("ts").type),
        "ts_local": pa.array(local_us[kept]).cast(RAW_POS_TRANSACTIONS.field("ts_local").type),
        "kind": pc.take(pa.array(list(KINDS.values())), pa.array(kind_no[kept])),
        "total_excl_tax": _arrow.money_from_cents(tx_excl, money),
        "total_tax": _arrow.money_from_cents(tx_tax, money),
        "total_incl_tax": _arrow.money_from_cents(tx_excl + tx_tax, money),
        "item_count": pa.array(item_count, pa.int32()),
        "vendor": _repeat(VENDOR, n_tx),
        "source_object_id": _repeat(event.object_id, n_tx),
        "received_at": _arrow.received_column(received, n_tx),
    }
    ln = {
        "tenant_id": _repeat(event.tenant_id, n_ln),
        "store_id": pc.take(store_ids, line_rid),
        "transaction_id": pc.take(tids, line_rid),
        "business_date": _arrow.dates(day_no[rid[line_keep]].tolist()),
        "line_no": pa.array(line_no, pa.int32()),
        "sku": pc.filter(skus, line_arr),
        "name": pc.filter(names, line_arr),
        "quantity": pa.array(line_qty, pa.int32()),
        "unit_price_excl_tax": _arrow.money_from_cents(unit[line_keep], line_money),
        "amount_excl_tax": _arrow.money_from_cents(line_amount, line_money),
        "tax_rate": _arrow.money_from_cents(rate[line_keep], RAW_POS_LINES.field("tax_rate").type),
        "tax": _arrow.money_from_cents(line_tax, line_money),
        "amount_incl_tax": _arrow.money_from_cents(line_amount + line_tax, line_money),
        "source_object_id": _repeat(event.object_id, n_ln),
        "received_at": _arrow.received_column(received, n_ln),
    }
    result.tables = {
        "raw_pos_transactions": _arrow.table(RAW_POS_TRANSACTIONS, tx),
        "raw_pos_lines": _arrow.table(RAW_POS_LINES, ln),
    }
    return result


def _name_problems(
    pre: VendorBPreEtl,
    event: ObjectRegistered,
    data: bytes,
    directory: Directory,
    flagged: Ints,
    result: ParseResult,
    loaded: dict[str, int],
) -> bool:
    """Reject each flagged receipt with the row-wise path's reason; False when that path would
    load one of them after all (then the caller leaves the whole object to it)."""
    raws = _receipts(data)  # the row path's reading (numbers as Decimal) for the records
    scratch = _arrow.PosColumns(event.tenant_id, VENDOR, event.object_id, event.registered_at)
    stores: dict[str, StoreRef | None] = {}
    for index in flagged.tolist():
        seen = {tid for tid, at in loaded.items() if at < index}  # as the row path has them
        reject = pre._load(index, raws[index], event, directory, stores, seen, scratch)
        if reject is None:
            log.debug("vendor B object %s: receipt %d left to the row path", event.object_id, index)
            return False
        result.rejects.append(reject)
    return True


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n) if n else pa.array([], pa.string())
