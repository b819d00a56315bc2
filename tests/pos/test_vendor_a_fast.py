"""Vendor A's column-wise fast path gives exactly the row-wise path's tables and rejects.

Random files in the vendor's format with odd but valid content (full-width digits and signs,
quoted thousands, commas, quotes and newlines in names, returns, voids, 非課税, LF line ends,
blank lines, spaces around numbers) must go through the fast path and give the row-wise
path's tables; files with one odd thing the fast path leaves to the row-wise path (a bad row,
strict-CSV quoting errors, receipts split over the file, ...) must give the row-wise result.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tenpo.core.preetl import ParseResult
from tenpo.pos import VendorAPreEtl
from tests.data.helpers import directory, event

HEADER = ",".join(
    ["レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名"]
    + ["数量", "単価", "値引額", "金額", "税率区分", "合計金額"]
)
EVENT = event("pos_vendor_a", registered_at=datetime(2026, 10, 6, tzinfo=UTC))
FULL = str.maketrans("0123456789-,", "０１２３４５６７８９－，")
NAMES = ("緑茶 525ml", "㈱テスト①", "ｶﾞﾑ ﾐﾝﾄ", "洗剤, 詰替", 'ｸﾞﾗｽ "大"', "二行\r\n目", "ABC")


def _number(rnd: random.Random, value: int, *, quoted_ok: bool = True) -> str:
    """``value`` written one of the ways the vendor writes numbers."""
    style = rnd.random()
    if style < 0.15:
        return str(value).translate(FULL)  # full-width digits (and sign)
    if style < 0.35 and quoted_ok:
        return f'"{value:,}"'  # quoted, with thousands separators
    if style < 0.4 and quoted_ok:
        return f'"{value:,}"'.translate(FULL)
    if style < 0.45:
        return f" {value} "  # spaces around it
    if style < 0.48 and value > 0:
        return f"+{value}"
    return str(value)


def _field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def random_rows(seed: int, receipts: int = 150) -> list[str]:
    """Rows of a valid vendor A file: every receipt clean, every register known."""
    rnd = random.Random(seed)
    out = []
    for r in range(1, receipts + 1):
        kind = rnd.choice(["売上", "売上", "売上", "返品", "取消"])
        sign = -1 if kind == "返品" else 1
        lines = []
        for i in range(rnd.randint(1, 7)):
            qty, unit = rnd.randint(1, 12), rnd.choice([1, 98, 140, 1280, 3480, 129_800])
            disc = rnd.choice([0, 0, 0, 10, 55, unit * qty])
            amount = sign * (unit * qty - disc)
            rate = rnd.choice(["標準", "軽減", "非課税", "軽減"])
            lines.append((i + 1, sign * qty, unit, disc, amount, rate))
        if rnd.random() < 0.2:
            rnd.shuffle(lines)  # line numbers out of order (still unique)
        total = sum(ln[4] for ln in lines)
        register = rnd.choice(["0001", "0001", "０００１"])
        receipt = f"{r:06d}" if rnd.random() < 0.9 else f"{r:06d}".translate(FULL)
        when = f"2026/10/{rnd.randint(1, 5):02d} {rnd.randint(0, 23):02d}:{r % 60:02d}:07"
        if rnd.random() < 0.05:
            when = when.replace(" ", "  ")
        for ln_no, qty, unit, disc, amount, rate in lines:
            disc_text = "" if disc == 0 and rnd.random() < 0.7 else _number(rnd, disc)
            jan = f"49{rnd.randint(0, 10**11 - 1):011d}"
            fields = [
                register, receipt, when, kind, _number(rnd, ln_no),
                jan.translate(FULL) if rnd.random() < 0.05 else jan,
                _field(rnd.choice(NAMES)), _number(rnd, qty), _number(rnd, unit), disc_text,
                _number(rnd, amount), rate, _number(rnd, total),
            ]  # fmt: skip
            out.append(",".join(fields))
    return out


def encode(rows: list[str], newline: str = "\r\n", header: str = HEADER) -> bytes:
    return newline.join([header, *rows]).encode("cp932") + newline.encode()


def both(data: bytes, **kwargs: object) -> tuple[ParseResult, ParseResult]:
    fast = VendorAPreEtl(**kwargs).parse(EVENT, data, directory())  # type: ignore[arg-type]
    slow = VendorAPreEtl(_fast=False, **kwargs).parse(EVENT, data, directory())  # type: ignore[arg-type]
    return fast, slow


def assert_same(fast: ParseResult, slow: ParseResult) -> None:
    assert fast.rejects == slow.rejects
    assert fast.tables.keys() == slow.tables.keys()
    for name in fast.tables:
        assert fast.tables[name].equals(slow.tables[name]), name


def fast_path_ran(data: bytes, **kwargs: object) -> bool:
    parser = VendorAPreEtl(**kwargs)  # type: ignore[arg-type]
    return parser._parse_fast(EVENT, data, directory()) is not None


@pytest.mark.parametrize("seed", range(12))
def test_random_clean_files_take_the_fast_path_and_agree(seed: int) -> None:
    rnd = random.Random(seed)
    newline = rnd.choice(["\r\n", "\n"])
    rows = random_rows(seed)
    if seed % 3 == 0:
        rows.insert(len(rows) // 2, "")  # a blank line is skipped by both
    data = encode(rows, newline)
    kwargs = {"rounding": rnd.choice(["floor", "round", "ceil"]), "per_line": seed % 4 == 3}
    assert fast_path_ran(data, **kwargs)
    fast, slow = both(data, **kwargs)
    assert slow.rejects == []
    assert_same(fast, slow)
    assert fast.tables["raw_pos_lines"].num_rows == len([r for r in rows if r])


def _replace_row(i: int, row: str) -> Callable[[list[str]], None]:
    def edit(rows: list[str]) -> None:
        rows[i] = row

    return edit


ODD: dict[str, Callable[[list[str]], None]] = {
    "text after a closing quote": lambda rows: rows.__setitem__(
        3, rows[3].replace(rows[3].split(",")[6], '"名前"x', 1)
    ),
    "quote inside an unquoted field": lambda rows: rows.__setitem__(
        4, rows[4].replace(rows[4].split(",")[6], '名"前', 1)
    ),
    "space before a quoted field": _replace_row(
        5, '0001,000999,2026/10/05 10:00:00,売上,1,4900000000001, "a",1,100,,100,標準,100'
    ),
    "short row": _replace_row(6, "0001,000006,2026/10/05"),
    "bad amount": _replace_row(
        7, "0001,000998,2026/10/05 10:00:00,売上,1,4900000000001,a,1,100,,101,標準,101"
    ),
    "unknown register": _replace_row(
        8, "9999,000997,2026/10/05 10:00:00,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "unknown rate": _replace_row(
        9, "0001,000996,2026/10/05 10:00:00,売上,1,4900000000001,a,1,100,,100,特別,100"
    ),
    "only a thousands separator as discount": _replace_row(
        10, '0001,000995,2026/10/05 10:00:00,売上,1,4900000000001,a,1,100,",",100,標準,100'
    ),
    "bad time": _replace_row(
        11, "0001,000994,2026/13/05 10:00:00,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "receipt split over the file": lambda rows: rows.append(rows[0]),
    "february 30": _replace_row(
        11, "0001,000989,2026/02/30 10:00:00,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "leap second": _replace_row(
        16, "0001,000988,2026/10/05 23:59:60,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "year zero": _replace_row(
        17, "0001,000987,0000/10/05 10:00:00,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "line number beyond int32": _replace_row(
        18,
        "0001,000986,2026/10/05 10:00:00,売上,3000000000,4900000000001,a,1,100,,100,標準,100",
    ),
    "future transaction": _replace_row(
        12, "0001,000993,2026/10/09 10:00:00,売上,1,4900000000001,a,1,100,,100,標準,100"
    ),
    "huge amount": _replace_row(
        13,
        "0001,000992,2026/10/05 10:00:00,売上,1,4900000000001,a,1,99999999999999,,"
        "99999999999999,標準,99999999999999",
    ),
    "sign only": _replace_row(
        14, "0001,000991,2026/10/05 10:00:00,売上,1,4900000000001,a,-,100,,100,標準,100"
    ),
    "NUL byte": _replace_row(
        15, "0001,000990,2026/10/05 10:00:00,売上,1,4900000000001,a\x00b,1,100,,100,標準,100"
    ),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_files_fall_back_to_the_row_wise_result(case: str) -> None:
    rows = random_rows(3, receipts=40)
    ODD[case](rows)
    data = encode(rows)
    assert not fast_path_ran(data)
    assert_same(*both(data))


def test_undecodable_bytes_fall_back() -> None:
    good = encode(random_rows(5, receipts=10))
    for data in (good.replace(b"0001", b"00\x85\x01", 1), good[:-2] + b"\x85\r\n"):
        assert not fast_path_ran(data)
        assert_same(*both(data))


@pytest.mark.parametrize("ending", [b"\x1a", b"\r\n\x1a", b"\x1a\r\n", b"\x1a\x1a"])
def test_a_trailing_ctrl_z_is_dropped_by_both_paths(ending: bytes) -> None:
    data = encode(random_rows(6, receipts=10)) + ending
    assert fast_path_ran(data)
    assert_same(*both(data))


def test_a_ctrl_z_line_before_the_last_one_is_a_bad_row_for_both() -> None:
    data = encode(random_rows(6, receipts=10)) + b"\x1a\r\n\x1a"
    assert not fast_path_ran(data)
    fast, slow = both(data)
    assert len(slow.rejects) == 1
    assert_same(fast, slow)


def test_header_with_an_extra_column_and_reordered_columns() -> None:
    rows = random_rows(8, receipts=30)
    header = HEADER.split(",")
    order = [12, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    moved = []
    for row in rows:
        (fields,) = list(csv.reader([row]))
        moved.append(",".join(_field(fields[i]) for i in order) + ",extra")
    data = encode(moved, header=",".join(header[i] for i in order) + ",備考")
    assert fast_path_ran(data)
    assert_same(*both(data))
