"""Column-wise fast path of the vendor-A Pre-ETL (Arrow CSV reader + numpy integer arithmetic).

It handles objects in which every receipt is clean and every register resolves; on anything
else it returns None and the caller runs the row-wise path, which names each problem. Both
paths produce identical tables for clean objects (tests compare them).
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tenpo.control.directory import Directory, StoreRef
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _text, _vector
from tenpo.pos.tax import Rounding
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS

log = logging.getLogger(__name__)

_INT_PATTERN = r"^[+-]?[0-9]+$"
_LOCAL_TS = r"^[0-9]{4}/[0-9]{1,2}/[0-9]{1,2} +[0-9]{1,2}:[0-9]{2}:[0-9]{2}$"  # as _text's
_DAYS = 1 << 20  # (register, day) pairs are packed as register * _DAYS + day
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _norm(column: pa.Array) -> pa.Array:
    # NFKC leaves ASCII unchanged: skip it for the (usual) all-ASCII column.
    if not pc.all(pc.string_is_ascii(column)).as_py():
        column = pc.utf8_normalize(column, "NFKC")
    return pc.utf8_trim_whitespace(column)


def _ints(column: pa.Array, empty_is_zero: bool = False) -> np.ndarray | None:
    text = pc.replace_substring(_norm(column), ",", "")
    if empty_is_zero:
        text = pc.if_else(pc.equal(text, ""), "0", text)
    if not pc.all(pc.match_substring_regex(text, _INT_PATTERN)).as_py():
        return None
    try:
        values = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # beyond int64: the row-wise path rejects that receipt alone
        return None
    # Also beyond any receipt (cents would wrap around in int64): the row-wise path decides.
    if len(values) and np.abs(values).max() > _arrow.MAX_YEN:
        return None
    return values


def _codes(column: pa.Array, normalize: bool = False) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of ``column`` and its distinct values (NFKC-normalised if asked)."""
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    return (
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        [_text.nfkc(v) for v in values] if normalize else values,
    )


def parse_fast(
    text: str,
    header: list[str],
    col: dict[str, int],
    event: ObjectRegistered,
    directory: Directory,
    names: dict[str, str],
    kinds: dict[str, str],
    rate_percents: dict[str, int],
    rounding: Rounding,
    per_line: bool,
    vendor: str,
    *,
    not_after: datetime | None = None,
) -> dict[str, pa.Table] | None:
    """Both raw tables when the whole object is clean, else None (use the row-wise path)."""
    invalid = False

    def on_invalid(_row: object) -> str:
        nonlocal invalid
        invalid = True
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(
                column_names=[f"c{i}" for i in range(len(header))], skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(len(header))},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError) as exc:
        log.debug("fast path off for %s: %s", event.object_id, exc)
        return None
    if invalid or table.num_rows == 0:
        return None

    def column(name: str) -> pa.Array:
        return table.column(f"c{col[names[name]]}").combine_chunks()

    register, receipt, time = (_norm(column(n)) for n in ("register", "receipt", "time"))
    if not pc.all(pc.and_(pc.not_equal(register, ""), pc.not_equal(receipt, ""))).as_py():
        return None
    encoded = pc.dictionary_encode(pc.binary_join_element_wise(register, receipt, time, "\x1f"))
    groups = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n_groups = len(encoded.dictionary)

    line_no, qty, unit = _ints(column("line_no")), _ints(column("qty")), _ints(column("unit"))
    amount, total = _ints(column("amount")), _ints(column("total"))
    discount = _ints(column("discount"), empty_is_zero=True)
    if line_no is None or qty is None or unit is None or amount is None or total is None:
        return None
    if discount is None or (discount < 0).any() or (qty == 0).any():
        return None
    if np.abs(qty).max() > _arrow.MAX_QUANTITY:
        return None
    gross = unit * np.abs(qty) - discount
    if not np.array_equal(amount, np.where(qty < 0, -gross, gross)):
        return None

    kind_codes, kind_texts = _codes(column("kind"), normalize=True)
    if any(k not in kinds for k in kind_texts):
        return None
    rate_codes, rate_texts = _codes(column("rate"), normalize=True)
    if any(r not in rate_percents for r in rate_texts):
        return None
    rate = np.array([rate_percents[r] for r in rate_texts], dtype=np.int64)[rate_codes]

    # Receipt-level consistency: one kind, one 合計金額, lines add up, unique line numbers.
    first_row = np.full(n_groups, len(groups), dtype=np.int64)
    np.minimum.at(first_row, groups, np.arange(len(groups)))
    for values in (kind_codes, total):
        if not np.array_equal(values, values[first_row][groups]):
            return None
    # Quantities carry the kind's sign: sales positive, returns negative (voids either).
    is_sale = np.array([kinds[k] == "sale" for k in kind_texts])[kind_codes]
    is_return = np.array([kinds[k] == "return" for k in kind_texts])[kind_codes]
    if (is_sale & (qty < 0)).any() or (is_return & (qty > 0)).any():
        return None
    receipt_total = total[first_row]
    if not np.array_equal(_vector.group_sum(groups, amount, n_groups), receipt_total):
        return None
    order = np.lexsort((np.arange(len(groups)), groups))  # rows by receipt, then file order
    by_line = np.lexsort((line_no, groups))
    if ((np.diff(groups[by_line]) == 0) & (np.diff(line_no[by_line]) == 0)).any():
        return None

    # Per receipt: time, store, transaction id; vectorised, Python only per (register, day).
    first = pa.array(first_row)
    registers, receipts, times = register.take(first), receipt.take(first), time.take(first)
    if not pc.all(pc.match_substring_regex(times, _LOCAL_TS)).as_py():
        return None
    local = pc.strptime(times, format="%Y/%m/%d %H:%M:%S", unit="us", error_is_null=True)
    if local.null_count:
        return None
    local_us = local.cast(pa.int64()).to_numpy(zero_copy_only=False)
    day_nos = local_us // 86_400_000_000
    reg_codes, reg_names = _codes(registers)
    pairs, pair_of_receipt = np.unique(reg_codes * _DAYS + (day_nos + _DAYS // 2),
                                       return_inverse=True)  # fmt: skip
    pair_of_receipt = pair_of_receipt.astype(np.int64)
    stores: list[StoreRef] = []
    for pair in pairs.tolist():
        day = date.fromordinal(_EPOCH_ORDINAL + pair % _DAYS - _DAYS // 2)
        store = directory.register_store(event.tenant_id, vendor, reg_names[pair // _DAYS], day)
        if store is None:
            return None
        stores.append(store)
    store_ids = pa.array([st.store_id for st in stores], pa.string()).take(
        pa.array(pair_of_receipt)
    )
    ts_utc = np.empty(n_groups, dtype=np.int64)
    zone_of_pair = np.array([st.timezone for st in stores], dtype=object)
    for zone_name in set(zone_of_pair.tolist()):
        mask = (zone_of_pair == zone_name)[pair_of_receipt]
        try:
            aware = pc.assume_timezone(
                local.filter(pa.array(mask)), zone_name, ambiguous="earliest", nonexistent="raise"
            )
        except (pa.ArrowInvalid, ValueError):
            return None  # a wall-clock time that does not exist there: the row-wise path decides
        ts_utc[mask] = aware.cast(pa.int64()).to_numpy(zero_copy_only=False)
    tids = pc.binary_join_element_wise(registers, pc.strftime(local, "%Y%m%d"), receipts, "-")
    if pc.count_distinct(tids).as_py() != n_groups:
        return None
    if not_after is not None and int(ts_utc.max()) > _arrow.micros(not_after):
        return None  # a transaction in the future: the row-wise path names it

    # Tax per receipt and rate, exclusive amounts allocated by largest remainder.
    if per_line:
        tax = _vector.included_tax(amount, rate, rounding)
    else:
        sub, sub_of_row = np.unique(groups * 128 + rate, return_inverse=True)
        sub_of_row = sub_of_row.astype(np.int64)
        sub_rate = sub % 128
        s = _vector.group_sum(sub_of_row, amount, len(sub))
        e = s - _vector.included_tax(s, sub_rate, rounding)
        zero = s == 0
        numerators = np.where(zero[sub_of_row], amount * 100, amount * e[sub_of_row])
        denominators = np.where(zero, 100 + sub_rate, s)
        excl = _vector.largest_remainder(sub_of_row, numerators, denominators, e)
        tax = amount - excl
    excl = amount - tax
    unit_excl = (2 * np.abs(unit) * 10_000 + 100 + rate) // (2 * (100 + rate))
    unit_excl = np.where(unit < 0, -unit_excl, unit_excl)

    n_lines = len(groups)
    g = groups[order]
    lines = {
        "tenant_id": [event.tenant_id] * n_lines,
        "store_id": store_ids.take(pa.array(g)),
        "transaction_id": tids.take(pa.array(g)),
        "business_date": pa.array(day_nos[g].astype(np.int32), pa.int32()).cast(pa.date32()),
        "line_no": pa.array(line_no[order], pa.int32()),
        "sku": _norm(column("jan")).take(pa.array(order)),
        "name": column("name").take(pa.array(order)),
        "quantity": pa.array(qty[order], pa.int32()),
        "unit_price_excl_tax": _arrow.money_from_cents(
            unit_excl[order], RAW_POS_LINES.field("unit_price_excl_tax").type
        ),
        "amount_excl_tax": _arrow.money_from_cents((excl * 100)[order], _money()),
        "tax_rate": _arrow.money_from_cents(rate[order], RAW_POS_LINES.field("tax_rate").type),
        "tax": _arrow.money_from_cents((tax * 100)[order], _money()),
        "amount_incl_tax": _arrow.money_from_cents((amount * 100)[order], _money()),
        "source_object_id": [event.object_id] * n_lines,
        "received_at": _arrow.received_column(_arrow.micros(event.registered_at), n_lines),
    }
    receipt_tax = _vector.group_sum(groups, tax, n_groups)
    kind_names = np.array([kinds[k] for k in kind_texts], dtype=object)
    transactions = {
        "tenant_id": [event.tenant_id] * n_groups,
        "store_id": store_ids,
        "register_id": registers,
        "transaction_id": tids,
        "business_date": pa.array(day_nos.astype(np.int32), pa.int32()).cast(pa.date32()),
        "ts": pa.array(ts_utc, pa.int64()).cast(RAW_POS_TRANSACTIONS.field("ts").type),
        "ts_local": pa.array(local_us, pa.int64()).cast(
            RAW_POS_TRANSACTIONS.field("ts_local").type
        ),
        "kind": kind_names[kind_codes[first_row]].tolist(),
        "total_excl_tax": _arrow.money_from_cents(((receipt_total - receipt_tax) * 100), _money()),
        "total_tax": _arrow.money_from_cents((receipt_tax * 100), _money()),
        "total_incl_tax": _arrow.money_from_cents((receipt_total * 100), _money()),
        "item_count": pa.array(_vector.group_sum(groups, qty, n_groups), pa.int32()),
        "vendor": [vendor] * n_groups,
        "source_object_id": [event.object_id] * n_groups,
        "received_at": _arrow.received_column(_arrow.micros(event.registered_at), n_groups),
    }
    return {
        "raw_pos_transactions": _arrow.table(RAW_POS_TRANSACTIONS, transactions),
        "raw_pos_lines": _arrow.table(RAW_POS_LINES, lines),
    }


def _money() -> pa.DataType:
    return RAW_POS_LINES.field("amount_excl_tax").type
