"""Column-wise fast path of the vendor-A Pre-ETL: the raw CP932 bytes, parsed in C and numpy.

It never decodes the whole file. CP932 never uses ``,``, ``"``, CR or LF inside a multi-byte
character, so Arrow's CSV reader splits the raw bytes exactly as Python's ``csv`` module splits
the decoded text. ASCII columns (codes, numbers, times: most bytes) are then used as they are;
the others are decoded once per distinct value (one C call for all of them) and NFKC-normalised
with ``pyarrow.compute.utf8_normalize``. Receipts are runs of consecutive rows, tax is computed
per receipt and rate with numpy integers.

It handles objects in which every receipt is clean and every register resolves; on anything
else (a bad field, a receipt split over the file, odd quoting, ...) it returns None and the
caller runs the row-wise path, which names each problem. Both paths produce identical tables
for the objects the fast path accepts (tests compare them on random and odd files).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tenpo.control.directory import Directory, StoreRef
from tenpo.lake.landing import ObjectRegistered
from tenpo.pos import _arrow, _vector
from tenpo.pos.tax import Rounding
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS

log = logging.getLogger(__name__)

Bytes = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]

_LOCAL_TS = (  # as _text's
    r"^(?P<year>[0-9]{4})/(?P<month>[0-9]{1,2})/(?P<day>[0-9]{1,2}) +"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})$"
)
_DAYS = 1 << 20  # (register, day) pairs are packed as register * _DAYS + day
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_QUOTE, _COMMA, _CR, _LF = 0x22, 0x2C, 0x0D, 0x0A
# What str.strip() removes among the characters NFKC-normalised CP932 text can hold.
_STRIP = " \t\n\v\f\r\x1c\x1d\x1e\x1f"
_IS_STRIPPED = np.zeros(256, dtype=bool)
_IS_STRIPPED[list(_STRIP.encode())] = True
_BOUNDARY = np.zeros(256, dtype=bool)  # the bytes a field can end at
_BOUNDARY[[_COMMA, _CR, _LF]] = True
_MINUS_SIGNS = ("\u2212", "\u2010", "\u2012", "\u2013")  # read as "-" (as _text.nfkc)
_MAX_DIGITS = 15  # longer integers: the row-wise path decides (int64 products stay exact)
_FIELD_LIMIT = 100_000  # bytes; Python's csv refuses fields over 131,072 characters


@dataclass(frozen=True)
class Layout:
    """Where vendor A's fields are and what their codes mean (from :mod:`tenpo.pos.vendor_a`)."""

    width: int
    """Fields per row (the header's)."""
    col: Mapping[str, int]
    """Field position of each role: register, receipt, time, kind, line_no, jan, name, qty,
    unit, discount, amount, rate, total."""
    kinds: Mapping[str, str]
    rate_percents: Mapping[str, int]
    encoding: str
    vendor: str
    max_yen: int
    max_quantity: int


def parse_fast(
    data: bytes,
    body_start: int,
    layout: Layout,
    event: ObjectRegistered,
    directory: Directory,
    rounding: Rounding,
    per_line: bool,
    *,
    not_after: datetime | None = None,
) -> dict[str, pa.Table] | None:
    """Both raw tables when the whole object is clean, else None (use the row-wise path).

    ``data[body_start:]`` are the records after the header line.
    """
    body = _body(data, body_start)
    if body is None:
        return None
    fields = _read(body, layout.width)
    if fields is None:
        return None
    return _Object(fields, layout, event, directory).tables(rounding, per_line, not_after)


def _body(data: bytes, start: int) -> pa.Buffer | None:
    """The records as one buffer, when its quoting is read the same by Arrow and ``csv``."""
    last = len(data)
    while last > start and data[last - 1] in b"\r\n":
        last -= 1
    if last == start:
        return None
    if data[last - 1] == 0x1A:  # a DOS end-of-file mark, dropped as _text.decode does
        cut = last
        while cut > start and data[cut - 1] == 0x1A:
            cut -= 1
        data = data[:cut] + data[last:]
    if b"\x00" in data:
        return None
    if not _quoting_is_plain(np.frombuffer(data, dtype=np.uint8), start):
        return None
    return pa.py_buffer(data).slice(start)


def _quoting_is_plain(buf: Bytes, start: int) -> bool:
    """Every quote of ``buf[start:]`` opens a field, closes one, or is half of a doubled quote
    inside one (``buf[start - 1]`` ends the header line).

    Python's strict ``csv`` refuses text after a closing quote (``"a"b``) where Arrow reads on,
    and a quote inside an unquoted field is literal for both but tells neither apart locally:
    anything but plain quoting goes to the row-wise path.
    """
    quotes = _positions(buf[start:], _QUOTE) + start
    if len(quotes) == 0:
        return True
    if len(quotes) % 2:
        return False  # a quoted field runs to the end of the file
    opening, closing = quotes[0::2], quotes[1::2]
    starts_field = _BOUNDARY[buf[opening - 1]]
    if not starts_field.all():
        # ... or the second quote of a doubled pair (the previous quote closed just before it).
        doubled = np.zeros(len(opening), dtype=bool)
        doubled[1:] = closing[:-1] == opening[1:] - 1
        if not (starts_field | doubled).all():
            return False
    if closing[-1] == len(buf) - 1:  # the last byte: the end of the file ends the field
        closing = closing[:-1]
    ends_field = _BOUNDARY[buf[closing + 1]]
    if not ends_field.all():
        pair = np.zeros(len(closing), dtype=bool)
        pair[: len(opening) - 1] = opening[1:] == closing[: len(opening) - 1] + 1
        return bool((ends_field | pair).all())
    return True


def _positions(buf: Bytes, byte: int, step: int = 1 << 20) -> npt.NDArray[np.integer]:
    """Offsets of ``byte`` in ``buf``, a slice at a time (the masks stay in the CPU cache)."""
    dtype = np.int32 if len(buf) < 1 << 31 else np.int64  # int32 halves the memory traffic
    parts = [
        np.flatnonzero(buf[at : at + step] == byte).astype(dtype) + at
        for at in range(0, len(buf), step)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _read(body: pa.Buffer, width: int) -> list[pa.Array] | None:
    """The fields of every record as binary columns, or None if a row is malformed."""
    names = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            body,
            # One thread: the work is the same, and the machine's other cores are for others.
            # Big blocks: fewer chunks to copy together afterwards.
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=False, block_size=16 << 20
            ),
            # A row of another width raises (no handler: it would decode the row as UTF-8).
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError) as exc:
        log.debug("fast path off: %s", exc)
        return None
    if table.num_rows == 0:
        return None
    columns = [
        chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
        for chunked in table.columns
    ]
    for column in columns:
        offsets, _ = _flat(column)
        if len(offsets) > 1 and int(np.diff(offsets).max()) > _FIELD_LIMIT:
            return None
    return columns


# --- Arrow binary/string arrays as numpy buffers ------------------------------------------


def _flat(column: pa.Array) -> tuple[Ints, Bytes]:
    """(offsets from 0, value bytes) of a binary or string array without nulls."""
    n = len(column)
    offsets_buf, data_buf = column.buffers()[1:3]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[column.offset : column.offset + n + 1]
    offsets = offsets.astype(np.int64)
    values = (
        np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data_buf is not None
        else np.empty(0, dtype=np.uint8)
    )
    return offsets - offsets[0], values


def _string(offsets: Ints, values: Bytes) -> pa.Array:
    """A string array over ``values`` (valid UTF-8) split at ``offsets``."""
    n = len(offsets) - 1
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(values))],
    )


def _is_ascii(column: pa.Array) -> bool:
    _, values = _flat(column)
    return not (values >= 0x80).any()


def _decode(column: pa.Array, encoding: str) -> pa.Array | None:
    """Each value of a binary array decoded strictly, by one decode call for all of them."""
    offsets, values = _flat(column)
    n = len(offsets) - 1
    if (values == 0).any():
        return None
    # Values joined by NUL (CP932 never has it inside a character), decoded, split again.
    lengths = np.diff(offsets)
    joined = np.zeros(len(values) + n, dtype=np.uint8)
    joined[np.arange(len(values)) + np.repeat(np.arange(n), lengths)] = values
    try:
        utf8 = np.frombuffer(joined.tobytes().decode(encoding).encode("utf-8"), dtype=np.uint8)
    except UnicodeDecodeError:
        return None  # the row-wise path names the byte
    ends = np.flatnonzero(utf8 == 0)
    if len(ends) != n:
        return None
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    new_offsets[1:] = ends - np.arange(n)
    return _string(new_offsets, utf8[utf8 != 0])


def _strip(column: pa.Array) -> pa.Array:
    """``str.strip()`` of every value (a no-op pass when no value starts or ends with space)."""
    offsets, values = _flat(column)
    if len(values) == 0:
        return column
    starts, ends = offsets[:-1], offsets[1:]
    if (starts == ends).any():  # empty values have no first or last character
        nonempty = starts != ends
        starts, ends = starts[nonempty], ends[nonempty]
    first, last = values[starts], values[ends - 1]
    if not (_IS_STRIPPED[first].any() or _IS_STRIPPED[last].any()):
        return column
    return pc.utf8_trim(column, _STRIP)


def _nfkc(column: pa.Array) -> pa.Array:
    """``_text.nfkc`` of every value: NFKC, dashes read as minus signs, stripped."""
    if not _is_ascii(column):
        column = pc.utf8_normalize(column, "NFKC")
        for sign in _MINUS_SIGNS:
            column = pc.replace_substring(column, sign, "-")
    return _strip(column)


def _ints(column: pa.Array, max_abs: int, empty_is_zero: bool = False) -> Ints | None:
    """``_text.parse_int`` of every (NFKC-normalised) value, or None if one is not an integer
    within ±``max_abs``. Thousands separators are dropped; an empty value is 0 if allowed."""
    offsets, values = _flat(column)
    empty = np.diff(offsets) == 0
    if empty.any() and not empty_is_zero:
        return None
    comma = values == _COMMA
    if comma.any():
        before = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum(comma, dtype=np.int32, out=before[1:])
        offsets = offsets - before[offsets]  # separators before each value's start
        values = values[~comma]
    lengths = np.diff(offsets)
    if (lengths > _MAX_DIGITS + 1).any() or ((lengths == 0) & ~empty).any():
        return None  # too long, or nothing but thousands separators
    # Anything but digits must be a sign that starts a value with digits after it.
    others = np.flatnonzero((values - np.uint8(0x30)) >= 10)
    plus = False
    if len(others):
        row = np.searchsorted(offsets, others, side="right") - 1
        sign = values[others]
        if not (
            (offsets[row] == others) & (lengths[row] > 1) & ((sign == 0x2B) | (sign == 0x2D))
        ).all():
            return None
        plus = bool((sign == 0x2B).any())
    text = _string(offsets, values)
    if plus:
        text = pc.utf8_ltrim(text, "+")  # Arrow reads "-5" but not "+5"
    if empty.any():
        text = pc.if_else(empty, "0", text)
    try:
        out = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None
    if len(out) and np.abs(out).max() > max_abs:
        return None
    return out


def _codes(column: pa.Array) -> tuple[Ints, list[str]]:
    """Dictionary codes of a (short-alphabet) string column and its distinct values."""
    encoded = pc.dictionary_encode(column)
    return (
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        encoded.dictionary.to_pylist(),
    )


def _changes(column: pa.Array) -> npt.NDArray[np.bool_]:
    """Per row but the first: does its value differ from the previous row's?"""
    n = len(column)
    same = pc.equal(column.slice(1), column.slice(0, n - 1))
    return ~same.to_numpy(zero_copy_only=False)


# --- one object -------------------------------------------------------------------------------


class _Object:
    """The binary columns of one object and the derived, validated per-row values."""

    def __init__(
        self,
        fields: list[pa.Array],
        layout: Layout,
        event: ObjectRegistered,
        directory: Directory,
    ) -> None:
        self.fields = fields
        self.layout = layout
        self.event = event
        self.directory = directory

    def text(self, role: str, normalize: bool = True) -> pa.Array | None:
        """The decoded values of a field (NFKC and stripped as ``_text.nfkc`` if asked)."""
        raw = self.fields[self.layout.col[role]]
        if _is_ascii(raw):
            column = raw.view(pa.string())
            return _strip(column) if normalize else column
        # Decode and normalise each distinct value once (names and kinds repeat a lot).
        encoded = pc.dictionary_encode(raw)
        values = _decode(encoded.dictionary, self.layout.encoding)
        if values is None:
            return None
        if normalize:
            values = _nfkc(values)
        return values.take(encoded.indices)

    def ints(self, role: str, empty_is_zero: bool = False) -> Ints | None:
        column = self.text(role)
        if column is None:
            return None
        return _ints(column, self.layout.max_yen, empty_is_zero)

    def tables(
        self, rounding: Rounding, per_line: bool, not_after: datetime | None
    ) -> dict[str, pa.Table] | None:
        """Both raw tables, or None at the first thing the row-wise path must look at."""
        layout, event = self.layout, self.event
        register, receipt, time = self.text("register"), self.text("receipt"), self.text("time")
        if register is None or receipt is None or time is None:
            return None
        n_lines = len(register)

        # Receipts are runs of rows with the same (register, receipt, time); a receipt whose
        # rows are not together repeats its transaction id below and goes to the row path.
        new = np.ones(n_lines, dtype=bool)
        if n_lines > 1:
            new[1:] = _changes(register) | _changes(receipt) | _changes(time)
        first_row = np.flatnonzero(new)
        n_groups = len(first_row)
        sizes = np.diff(np.append(first_row, n_lines))
        groups = np.repeat(np.arange(n_groups), sizes)
        inner = ~new[1:]  # row i + 1 is in the same receipt as row i

        line_no, qty, unit = self.ints("line_no"), self.ints("qty"), self.ints("unit")
        amount, total = self.ints("amount"), self.ints("total")
        discount = self.ints("discount", empty_is_zero=True)
        if line_no is None or qty is None or unit is None or amount is None or total is None:
            return None
        if discount is None or (discount < 0).any() or (qty == 0).any():
            return None
        if np.abs(qty).max() > layout.max_quantity:
            return None
        if line_no.min() < -(1 << 31) or line_no.max() >= 1 << 31:  # the column is int32
            return None
        gross = unit * np.abs(qty) - discount
        if not np.array_equal(amount, np.where(qty < 0, -gross, gross)):
            return None

        kind_text, rate_text = self.text("kind"), self.text("rate")
        if kind_text is None or rate_text is None:
            return None
        kind_codes, kind_texts = _codes(kind_text)
        rate_codes, rate_texts = _codes(rate_text)
        if any(k not in layout.kinds for k in kind_texts):
            return None
        if any(r not in layout.rate_percents for r in rate_texts):
            return None
        rate_of_code = np.array([layout.rate_percents[r] for r in rate_texts], dtype=np.int64)
        rate = rate_of_code[rate_codes]

        # Receipt-level consistency: one kind, one 合計金額, lines add up, unique line numbers.
        for values in (kind_codes, total):
            if (inner & (np.diff(values) != 0)).any():
                return None
        is_sale = np.array([layout.kinds[k] == "sale" for k in kind_texts])[kind_codes]
        is_return = np.array([layout.kinds[k] == "return" for k in kind_texts])[kind_codes]
        if (is_sale & (qty < 0)).any() or (is_return & (qty > 0)).any():
            return None
        receipt_total = total[first_row]
        if not np.array_equal(np.add.reduceat(amount, first_row), receipt_total):
            return None
        item_count = np.add.reduceat(qty, first_row)
        if np.abs(item_count).max() > layout.max_quantity:
            return None
        if (inner & (np.diff(line_no) <= 0)).any():  # not ascending: look for duplicates
            by_line = np.lexsort((line_no, groups))
            if ((np.diff(groups[by_line]) == 0) & (np.diff(line_no[by_line]) == 0)).any():
                return None

        # Per receipt: time, store, transaction id; Python only per (register, day).
        first = pa.array(first_row)
        registers, receipts, times = register.take(first), receipt.take(first), time.take(first)
        if not pc.all(pc.and_(pc.not_equal(registers, ""), pc.not_equal(receipts, ""))).as_py():
            return None
        if not pc.all(pc.match_substring_regex(times, _LOCAL_TS)).as_py():
            return None
        local = _local_times(times)
        if local is None:
            return None
        local_us = local.cast(pa.int64()).to_numpy(zero_copy_only=False)
        day_nos = local_us // 86_400_000_000
        stores = self._stores(registers, day_nos)
        if stores is None:
            return None
        store_refs, store_of_receipt = stores
        store_ids = pa.array([st.store_id for st in store_refs], pa.string()).take(
            pa.array(store_of_receipt)
        )
        ts_utc = _utc(local, store_refs, store_of_receipt)
        if ts_utc is None:
            return None
        tids = pc.binary_join_element_wise(registers, _day_texts(day_nos), receipts, "-")
        if len(pc.unique(tids)) != n_groups:  # no nulls; unique is faster than count_distinct
            return None  # a receipt split over the file, or a duplicate: the row path decides
        if not_after is not None and int(ts_utc.max()) > _arrow.micros(not_after):
            return None  # a transaction in the future: the row-wise path names it

        tax = _tax(groups, n_groups, amount, rate_codes, rate_of_code, rounding, per_line)
        if tax is None:
            return None
        excl = amount - tax
        receipt_tax = np.add.reduceat(tax, first_row)
        for values in (excl, tax, receipt_tax, receipt_total - receipt_tax):
            if np.abs(values).max() > layout.max_yen:
                return None  # the row-wise path rejects that receipt alone, naming the field
        unit_excl = (2 * np.abs(unit) * 10_000 + 100 + rate) // (2 * (100 + rate))
        unit_excl = np.where(unit < 0, -unit_excl, unit_excl)

        money = RAW_POS_LINES.field("amount_excl_tax").type
        received = _arrow.micros(event.registered_at)
        jan = self.text("jan")
        name = self.text("name", normalize=False)
        if jan is None or name is None:
            return None
        per_line_groups = pa.array(groups)
        lines = {
            "tenant_id": _repeat(event.tenant_id, n_lines),
            "store_id": store_ids.take(per_line_groups),
            "transaction_id": tids.take(per_line_groups),
            "business_date": pa.array(day_nos[groups].astype(np.int32)).cast(pa.date32()),
            "line_no": pa.array(line_no.astype(np.int32)),
            "sku": jan,
            "name": name,
            "quantity": pa.array(qty.astype(np.int32)),
            "unit_price_excl_tax": _arrow.money_from_cents(
                unit_excl, RAW_POS_LINES.field("unit_price_excl_tax").type
            ),
            "amount_excl_tax": _arrow.money_from_cents(excl * 100, money),
            "tax_rate": _arrow.money_from_cents(rate, RAW_POS_LINES.field("tax_rate").type),
            "tax": _arrow.money_from_cents(tax * 100, money),
            "amount_incl_tax": _arrow.money_from_cents(amount * 100, money),
            "source_object_id": _repeat(event.object_id, n_lines),
            "received_at": _arrow.received_column(received, n_lines),
        }
        kind_names = pa.array([layout.kinds[k] for k in kind_texts], pa.string())
        transactions = {
            "tenant_id": _repeat(event.tenant_id, n_groups),
            "store_id": store_ids,
            "register_id": registers,
            "transaction_id": tids,
            "business_date": pa.array(day_nos.astype(np.int32)).cast(pa.date32()),
            "ts": pa.array(ts_utc).cast(RAW_POS_TRANSACTIONS.field("ts").type),
            "ts_local": pa.array(local_us).cast(RAW_POS_TRANSACTIONS.field("ts_local").type),
            "kind": kind_names.take(pa.array(kind_codes[first_row])),
            "total_excl_tax": _arrow.money_from_cents((receipt_total - receipt_tax) * 100, money),
            "total_tax": _arrow.money_from_cents(receipt_tax * 100, money),
            "total_incl_tax": _arrow.money_from_cents(receipt_total * 100, money),
            "item_count": pa.array(item_count.astype(np.int32)),
            "vendor": _repeat(layout.vendor, n_groups),
            "source_object_id": _repeat(event.object_id, n_groups),
            "received_at": _arrow.received_column(received, n_groups),
        }
        return {
            "raw_pos_transactions": _arrow.table(RAW_POS_TRANSACTIONS, transactions),
            "raw_pos_lines": _arrow.table(RAW_POS_LINES, lines),
        }

    def _stores(self, registers: pa.Array, day_nos: Ints) -> tuple[list[StoreRef], Ints] | None:
        """The store of each distinct (register, day) and, per receipt, the index of its own."""
        encoded = pc.dictionary_encode(registers)
        reg_codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        reg_names = encoded.dictionary.to_pylist()
        pairs, pair_of_receipt = np.unique(
            reg_codes * _DAYS + (day_nos + _DAYS // 2), return_inverse=True
        )
        stores: list[StoreRef] = []
        for pair in pairs.tolist():
            day = date.fromordinal(_EPOCH_ORDINAL + pair % _DAYS - _DAYS // 2)
            store = self.directory.register_store(
                self.event.tenant_id, self.layout.vendor, reg_names[pair // _DAYS], day
            )
            if store is None:
                return None
            stores.append(store)
        return stores, pair_of_receipt.astype(np.int64)


def _local_times(times: pa.Array) -> pa.Array | None:
    """Naive timestamps of ``yyyy/MM/dd HH:mm:ss`` texts, or None if one is not a valid
    ``datetime`` (Arrow's strptime rolls 02/30 and 23:59:60 over to the next day)."""
    local = pc.strptime(times, format="%Y/%m/%d %H:%M:%S", unit="us", error_is_null=True)
    if local.null_count:
        return None
    parts = pc.extract_regex(times, _LOCAL_TS)
    for name, part in (
        ("year", pc.year), ("month", pc.month), ("day", pc.day),
        ("hour", pc.hour), ("minute", pc.minute), ("second", pc.second),
    ):  # fmt: skip
        written = pc.cast(parts.field(name), pa.int64())
        if not pc.all(pc.equal(written, pc.cast(part(local), pa.int64()))).as_py():
            return None
    if not pc.all(pc.greater_equal(pc.year(local), 1)).as_py():
        return None  # year 0000: no such datetime
    return local


def _day_texts(day_nos: Ints) -> pa.Array:
    """``f"{day:%Y%m%d}"`` of each day number, formatted once per distinct day."""
    days, day_of_row = np.unique(day_nos, return_inverse=True)
    texts = [f"{date.fromordinal(_EPOCH_ORDINAL + int(d)):%Y%m%d}" for d in days]
    return pa.array(texts, pa.string()).take(pa.array(day_of_row.astype(np.int64)))


def _utc(local: pa.Array, stores: list[StoreRef], store_of_receipt: Ints) -> Ints | None:
    """Epoch microseconds of each receipt's local time in its store's timezone."""
    ts_utc = np.empty(len(local), dtype=np.int64)
    zone_of_pair = np.array([st.timezone for st in stores], dtype=object)
    for zone_name in set(zone_of_pair.tolist()):
        mask = (zone_of_pair == zone_name)[store_of_receipt]
        try:
            aware = pc.assume_timezone(
                local.filter(pa.array(mask)), zone_name, ambiguous="earliest", nonexistent="raise"
            )
        except (pa.ArrowInvalid, ValueError):
            return None  # a wall-clock time that does not exist there: the row-wise path decides
        ts_utc[mask] = aware.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return ts_utc


def _tax(
    groups: Ints,
    n_groups: int,
    amount: Ints,
    rate_codes: Ints,
    rate_of_code: Ints,
    rounding: Rounding,
    per_line: bool,
) -> Ints | None:
    """Tax of each line: per line, or per receipt and rate allocated by largest remainder
    (None when the exact integer arithmetic would not fit int64)."""
    rate = rate_of_code[rate_codes]
    if per_line:
        return _vector.included_tax(amount, rate, rounding)
    # Sub-group (receipt, rate) ids without sorting: receipt × number of rates + rate code.
    n_rates = len(rate_of_code)
    sub_of_row = groups * n_rates + rate_codes
    n_sub = n_groups * n_rates
    sub_rate = np.tile(rate_of_code, n_groups)
    s = _vector.group_sum(sub_of_row, amount, n_sub)
    e = s - _vector.included_tax(s, sub_rate, rounding)
    if int(np.abs(amount).max()) * int(np.abs(e).max()) >= _vector.SAFE:
        return None  # amount × share would not fit int64: the row-wise path uses big ints
    zero = s == 0
    numerators = np.where(zero[sub_of_row], amount * 100, amount * e[sub_of_row])
    denominators = np.where(zero, 100 + sub_rate, s)
    excl = _vector.largest_remainder(sub_of_row, numerators, denominators, e)
    return amount - excl


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)
