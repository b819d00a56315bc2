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
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tenpo.control.directory import Directory, StoreRef
from tenpo.core.bodies import RECEIPT_FIELDS, BodyError, split_records
from tenpo.core.columns import DAY_US, inferred, instants, ints, strings, utc_offsets, valid
from tenpo.core.preetl import ParseResult
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _vector
from tenpo.pos.vendor_b import (
    KINDS,
    RATE_INT,
    RATE_PERCENTS,
    RATE_TEXT,
    VENDOR,
    VendorBPreEtl,
    aware_datetime,
    receipts_of,
)
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS, TS

__all__ = ["parse_fast", "parse_many_fast"]

log = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_MONEY = r"^(0|[1-9][0-9]{0,10})(\.[0-9]{1,2})?$"  # ≤ 11 integer digits: int64-safe products
MIN_RECEIPTS = 32
"""Bodies with fewer receipts go to the row path directly."""
_NUMBER_BYTES = bytes(49 if chr(i) in "0123456789." else 48 for i in range(256))
"""Translation table: digits and "." to b"1", every other byte to b"0"."""
_LONG_RUN = b"1" * 16


def _has_long_number(data: bytes) -> bool:
    """Whether ``data`` holds a run of 16 or more digits and dots (a number that may have more
    than 15 significant digits): one translation and a substring search, where the regex
    ``[0-9.]{16,}`` rescans every run from each of its bytes (18x slower on a 400-receipt body)."""
    return _LONG_RUN in data.translate(_NUMBER_BYTES)


_FLOAT_CENTS: dict[float, int] = {}
_MAX_INT = 10**11  # money given as a JSON integer (yen): larger ones go to the row path
_MAX_QTY = 1 << 20
_MAX_CENTS = _arrow.MAX_YEN * 100
_KIND_CODES = pa.array(list(KINDS))
_SIGN_OF_KIND = np.array([-1 if k == "RETURN" else 1 for k in KINDS], dtype=np.int64)
_RATES = (0, 8, 10)  # the supported percents; column r of the per-rate sums


def _float_cents(value: float) -> int:
    """Cents of a JSON decimal number that orjson read as a float, or -1.

    Only called when no number of the body has more than 15 significant digits: then the
    float's shortest repr is the value the text wrote (IEEE doubles keep 15 digits), exactly
    what the row path reads as a Decimal.
    """
    cents = _FLOAT_CENTS.get(value)
    if cents is None:
        if not 0 <= value < _MAX_INT:
            cents = -1
        else:
            scaled = Decimal(repr(value)) * 100
            cents = int(scaled) if scaled == scaled.to_integral_value() else -1
        if len(_FLOAT_CENTS) > 100_000:
            _FLOAT_CENTS.clear()
        _FLOAT_CENTS[value] = cents
    return cents


def _floats(values: list[Any], convert: Any) -> tuple[Ints, Bools]:
    out = np.array([convert(v) if type(v) is float else -1 for v in values], dtype=np.int64)
    return np.where(out >= 0, out, 0), out >= 0


def _cents(values: list[Any], exact_floats: bool) -> tuple[Ints, Bools]:
    """Money as vendor B's plain spellings ("123.45" text, a JSON integer of yen or, with
    ``exact_floats``, a JSON decimal number), in cents."""
    arr = inferred(values)
    if arr is not None and pa.types.is_string(arr.type):
        return _cents_of_text(arr)
    if arr is not None and pa.types.is_integer(arr.type):
        yen, ok = ints(values, 0, _MAX_INT)
        return yen * 100, ok
    # Mixed spellings (or none valid): each value as the text it spells (a JSON integer of
    # yen as its digits; with exact_floats, a JSON decimal number as its shortest repr, which
    # is the text the body wrote), then one regex and one cast for the column. Integers of 12
    # digits and -0.0, which the separate readings took, are flagged: the row path decides.
    # (Spelled out inline: a function call per value cost a third of this step.)
    text = [v if (kind := type(v)) is str else str(v) if kind is int
            else repr(v) if kind is float and exact_floats else None
            for v in values]  # fmt: skip
    return _cents_of_text(pa.array(text, pa.string()))


def _cents_of_text(arr: pa.Array) -> tuple[Ints, Bools]:
    ok = valid(pc.match_substring_regex(arr, _MONEY))
    plain = pc.if_else(pa.array(ok), arr, "0")
    dec = pc.cast(plain, pa.decimal128(18, 2))
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)[2 * dec.offset :: 2][: len(dec)]
    return np.where(ok, words, 0), ok


_FLOAT_PERCENT: dict[float, int] = {}


def _float_percent(value: float) -> int:
    found = _FLOAT_PERCENT.get(value)
    if found is None:
        percent = RATE_PERCENTS.get(Decimal(repr(value))) if math.isfinite(value) else None
        found = -1 if percent is None else percent
        if len(_FLOAT_PERCENT) > 10_000:
            _FLOAT_PERCENT.clear()
        _FLOAT_PERCENT[value] = found
    return found


def _percents(values: list[Any], exact_floats: bool) -> tuple[Ints, Bools]:
    """Tax rates in vendor B's plain spellings as whole percents."""
    out, ok = np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    whole = [v if type(v) is int and abs(v) < 100 else None for v in values]
    spellings: list[tuple[dict[Any, int], pa.Array]] = [
        (RATE_TEXT, strings(values)),
        (RATE_INT, pa.array(whole, pa.int64())),
    ]
    for table, column in spellings:
        if column.null_count == len(column):
            continue
        keys = list(table)
        found = pc.index_in(column, value_set=pa.array(keys, column.type))
        hit = valid(pc.is_valid(found))
        idx = np.asarray(pc.fill_null(found, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out = np.where(hit, np.array([table[k] for k in keys], np.int64)[idx], out)
        ok |= hit
    if exact_floats:
        from_floats, float_ok = _floats(values, _float_percent)
        out, ok = np.where(float_ok, from_floats, out), ok | float_ok
    return out, ok


@dataclass
class _Body:
    """One object's receipts as orjson read them."""

    index: int  # position in the caller's list
    event: ObjectRegistered
    data: bytes
    raws: list[dict[str, Any]]
    items: int  # how many items its receipts hold


def parse_fast(
    pre: VendorBPreEtl, event: ObjectRegistered, data: bytes, directory: Directory
) -> ParseResult | None:
    """The result of the object, or None when the row-wise path must run instead."""
    body = _decode(0, event, data)
    if body is None or len(body.raws) < MIN_RECEIPTS or body.items >= _MAX_QTY:
        return None  # small bodies: the columns' fixed cost exceeds the row path's
    return _columns(pre, [body], directory, exact=not _has_long_number(data))[0]


def parse_many_fast(
    pre: VendorBPreEtl, items: list[tuple[ObjectRegistered, bytes]], directory: Directory
) -> list[ParseResult | None]:
    """The results of several objects, in order, from shared column passes (the per-object
    fixed cost of the columns paid once per pass, so small bodies join in); None for each
    object the row-wise path must parse (see :func:`parse_fast`)."""
    out: list[ParseResult | None] = [None] * len(items)
    groups: dict[bool, list[_Body]] = {True: [], False: []}  # by: JSON numbers exact as floats
    for i, (event, data) in enumerate(items):
        body = _decode(i, event, data)
        if body is not None:
            groups[not _has_long_number(data)].append(body)
    for exact, bodies in groups.items():
        for chunk in _chunks(bodies):
            if sum(len(b.raws) for b in chunk) < MIN_RECEIPTS:
                continue
            for body, result in zip(chunk, _columns(pre, chunk, directory, exact), strict=True):
                out[body.index] = result
    return out


def _decode(index: int, event: ObjectRegistered, data: bytes) -> _Body | None:
    """The object's receipts when it is an array of receipt objects holding item objects."""
    try:
        raws = split_records(orjson.loads(data), "receipts", RECEIPT_FIELDS, "receipt")
    except (orjson.JSONDecodeError, BodyError):
        return None
    items = 0
    for r in raws:
        if type(r) is not dict:
            return None
        found = r.get("items")
        if type(found) is list:
            if any(type(it) is not dict for it in found):
                return None
            items += len(found)
    return _Body(index, event, data, raws, items)


def _chunks(bodies: list[_Body]) -> list[list[_Body]]:
    """Runs of bodies with fewer than _MAX_QTY items each (item positions stay small)."""
    chunks: list[list[_Body]] = []
    size = 0
    for body in bodies:
        if not chunks or size + body.items >= _MAX_QTY:
            chunks.append([])
            size = 0
        chunks[-1].append(body)
        size += body.items
    return [c for c in chunks if sum(b.items for b in c) < _MAX_QTY]


def _columns(
    pre: VendorBPreEtl, bodies: list[_Body], directory: Directory, exact: bool
) -> list[ParseResult | None]:
    """One column pass over the receipts of ``bodies``; per body its result, or None (the
    row-wise path decides). ``exact``: the bodies' JSON decimal numbers are exact as floats."""
    k = len(bodies)
    raws = [r for b in bodies for r in b.raws]
    n = len(raws)
    counts = np.array([len(b.raws) for b in bodies], dtype=np.int64)
    obj = np.repeat(np.arange(k, dtype=np.int64), counts)  # each receipt's body
    first_receipt = np.cumsum(counts) - counts
    if not n:
        return [None] * k

    # Receipt columns.
    codes = strings([r.get("storeCode") for r in raws])
    registers = strings([r.get("registerId") for r in raws])
    receipt_ids = strings([r.get("receiptId") for r in raws])
    bad = np.zeros(n, bool)
    for col in (codes, registers, receipt_ids):
        bad |= ~valid(pc.greater(pc.binary_length(col), 0))
    kinds = pc.index_in(strings([r.get("type") for r in raws]), value_set=_KIND_CODES)
    bad |= ~valid(pc.is_valid(kinds))
    kind_no = np.asarray(pc.fill_null(kinds, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    subtotal, ok_s = _cents([r.get("subtotal") for r in raws], exact)
    tax, ok_t = _cents([r.get("tax") for r in raws], exact)
    total, ok_tot = _cents([r.get("total") for r in raws], exact)
    bad |= ~(ok_s & ok_t & ok_tot)

    item_lists = [r.get("items") for r in raws]
    n_items = np.fromiter(
        (len(x) if type(x) is list else 0 for x in item_lists), dtype=np.int64, count=n
    )
    bad |= n_items == 0
    items = [it for x in item_lists if type(x) is list for it in x]
    if not items:
        return [None] * k
    rid = np.repeat(np.arange(n, dtype=np.int64), n_items)

    # Item columns.
    skus = strings([it.get("sku") for it in items])
    names = strings([it.get("name") for it in items])
    qty, ok_q = ints([it.get("qty") for it in items], 1, _MAX_QTY)
    unit, ok_u = _cents([it.get("unitPrice") for it in items], exact)
    discount, ok_d = _cents([it.get("discount", 0) for it in items], exact)
    rate, ok_r = _percents([it.get("taxRate") for it in items], exact)
    item_ok = valid(pc.greater(pc.binary_length(skus), 0)) & valid(pc.is_valid(names))
    item_ok &= ok_q & ok_u & ok_d & ok_r
    bad |= np.bincount(rid, weights=~item_ok, minlength=n) > 0

    # Stores (one directory look-up per tenant and code) and times (one Arrow cast).
    code_list = codes.to_pylist()
    found: dict[tuple[str, str], StoreRef | None] = {}
    for b, start in zip(bodies, first_receipt.tolist(), strict=True):
        tenant = b.event.tenant_id
        for c in set(code_list[start : start + len(b.raws)]):
            if c and (tenant, c) not in found:
                found[tenant, c] = directory.store_by_code(tenant, c)
    known = [s for s in dict.fromkeys(found.values()) if s is not None]
    at = {s.store_id: i for i, s in enumerate(known)}
    tenant_of = [b.event.tenant_id for b in bodies for _ in b.raws]
    store_of = np.array([at[s.store_id] if (s := found.get((t, c)) if c else None) else -1
                         for t, c in zip(tenant_of, code_list, strict=True)],
                        dtype=np.int64)  # fmt: skip
    bad |= store_of < 0
    ts_us, ok_ts = instants([r.get("transactedAt") for r in raws], aware_datetime)
    latest = np.array([_arrow.micros(b.event.registered_at + pre.future_tolerance)
                       for b in bodies], dtype=np.int64)  # fmt: skip
    bad |= ~ok_ts | (ts_us > latest[obj])
    zones = [s.timezone for s in known]
    local_us = ts_us + utc_offsets(ts_us, np.where(bad, -1, store_of), zones)
    day_no = local_us // DAY_US

    # Sums and tax per receipt and rate, in integer cents (int64: magnitudes checked first).
    if int(qty.max()) * int(max(unit.max(), discount.max())) >= _vector.SAFE:
        return [None] * k
    amounts = qty * unit - discount
    if np.abs(amounts).max() > _MAX_CENTS:
        return [None] * k
    amounts = np.where(item_ok, amounts, 0)
    bad |= _vector.group_sum(rid, amounts, n) != subtotal
    bad |= total != subtotal + tax
    rate_col = np.searchsorted(np.array(_RATES), rate)
    group = rid * len(_RATES) + rate_col
    by_rate = _vector.group_sum(group, amounts, n * len(_RATES)).reshape(n, len(_RATES))
    present = np.bincount(group, minlength=n * len(_RATES)).reshape(n, len(_RATES)) > 0
    if np.abs(by_rate).max() > _MAX_CENTS:
        return [None] * k
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

    # A body with a duplicate receipt goes to the row path (which keeps the first and names
    # the others); so does a body with a flagged receipt that path would load after all.
    tids = pc.binary_join_element_wise(registers, receipt_ids, "-")
    results = [ParseResult() for _ in bodies]
    row_path = np.zeros(k, bool)
    keep = ~bad
    kept_tids = pc.filter(tids, pa.array(keep))
    if pc.count_distinct(kept_tids).as_py() != len(kept_tids) or bad.any():
        kept_of = obj[keep]
        tid_list = kept_tids.to_pylist()
        kept_at = np.flatnonzero(keep)
        bounds = np.searchsorted(kept_of, np.arange(k + 1))
        for j, b in enumerate(bodies):
            lo, hi = int(bounds[j]), int(bounds[j + 1])
            body_tids = tid_list[lo:hi]
            if len(set(body_tids)) != len(body_tids):
                row_path[j] = True
                continue
            start = int(first_receipt[j])
            flagged = np.flatnonzero(bad[start : start + len(b.raws)])
            if not len(flagged):
                continue
            first = dict(zip(body_tids, (kept_at[lo:hi] - start).tolist(), strict=True))
            if not _name_problems(pre, b.event, b.data, directory, flagged, results[j], first):
                row_path[j] = True
    keep &= ~row_path[obj]  # the row path's bodies: nothing of them in the columns

    # Line tax: each (receipt, rate) group's tax allocated over its lines by largest remainder.
    line_keep = keep[rid]
    weights = amounts[line_keep]
    groups, inverse = np.unique(group[line_keep], return_inverse=True)
    totals = rate_tax.reshape(-1)[groups]
    if len(weights) and int(np.abs(weights).max()) * int(np.abs(totals).max()) >= _vector.SAFE:
        return [None] * k
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
            return [None] * k  # the row path rejects those receipts with their reason

    store_ids = pc.take(
        pa.array([s.store_id for s in known] + [None], pa.string()),
        pa.array(np.where(bad, len(known), store_of)),
    )
    keep_arr, line_arr = pa.array(keep), pa.array(line_keep)
    line_rid = rid[line_keep]
    tx_obj, ln_obj = pa.array(obj[kept]), pa.array(obj[line_rid])
    tenants = pa.array([b.event.tenant_id for b in bodies], pa.string())
    object_ids = pa.array([b.event.object_id for b in bodies], pa.string())
    received = pa.array([_arrow.micros(b.event.registered_at) for b in bodies], pa.int64())
    tx_day = day_no[kept]
    money = RAW_POS_TRANSACTIONS.field("total_excl_tax").type
    line_money = RAW_POS_LINES.field("amount_excl_tax").type
    n_tx = len(kept)
    tx = {
        "tenant_id": pc.take(tenants, tx_obj),
        "store_id": pc.filter(store_ids, keep_arr),
        "register_id": pc.filter(registers, keep_arr),
        "transaction_id": pc.filter(tids, keep_arr),
        "business_date": _arrow.dates(tx_day.tolist()),
        "ts": pa.array(ts_us[kept]).cast(RAW_POS_TRANSACTIONS.field("ts").type),
        "ts_local": pa.array(local_us[kept]).cast(RAW_POS_TRANSACTIONS.field("ts_local").type),
        "kind": pc.take(pa.array(list(KINDS.values())), pa.array(kind_no[kept])),
        "total_excl_tax": _arrow.money_from_cents(tx_excl, money),
        "total_tax": _arrow.money_from_cents(tx_tax, money),
        "total_incl_tax": _arrow.money_from_cents(tx_excl + tx_tax, money),
        "item_count": pa.array(item_count, pa.int32()),
        "vendor": _repeat(VENDOR, n_tx),
        "source_object_id": pc.take(object_ids, tx_obj),
        "received_at": pc.take(received, tx_obj).cast(TS),
    }
    ln = {
        "tenant_id": pc.take(tenants, ln_obj),
        "store_id": pc.take(store_ids, pa.array(line_rid)),
        "transaction_id": pc.take(tids, pa.array(line_rid)),
        "business_date": _arrow.dates(day_no[line_rid].tolist()),
        "line_no": pa.array(line_no, pa.int32()),
        "sku": pc.filter(skus, line_arr),
        "name": pc.filter(names, line_arr),
        "quantity": pa.array(line_qty, pa.int32()),
        "unit_price_excl_tax": _arrow.money_from_cents(unit[line_keep], line_money),
        "amount_excl_tax": _arrow.money_from_cents(line_amount, line_money),
        "tax_rate": _arrow.money_from_cents(rate[line_keep], RAW_POS_LINES.field("tax_rate").type),
        "tax": _arrow.money_from_cents(line_tax, line_money),
        "amount_incl_tax": _arrow.money_from_cents(line_amount + line_tax, line_money),
        "source_object_id": pc.take(object_ids, ln_obj),
        "received_at": pc.take(received, ln_obj).cast(TS),
    }
    all_tx = _arrow.table(RAW_POS_TRANSACTIONS, tx)
    all_ln = _arrow.table(RAW_POS_LINES, ln)
    tx_at = np.searchsorted(obj[kept], np.arange(k + 1)).tolist()
    ln_at = np.searchsorted(obj[line_rid], np.arange(k + 1)).tolist()
    for j, result in enumerate(results):
        result.tables = {
            "raw_pos_transactions": all_tx.slice(tx_at[j], tx_at[j + 1] - tx_at[j]),
            "raw_pos_lines": all_ln.slice(ln_at[j], ln_at[j + 1] - ln_at[j]),
        }
    return [None if row_path[j] else result for j, result in enumerate(results)]


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
    raws = receipts_of(data)  # the row path's reading (numbers as Decimal) for the records
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
