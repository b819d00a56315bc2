"""Vendor A Pre-ETL: the sample, hand-checked receipts, and every rejected input."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tenpo.control.directory import StoreRef
from tenpo.core.preetl import ParseResult
from tenpo.pos import VendorAMasterPreEtl, VendorAPreEtl
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS
from tests.data.helpers import DATA, TENANT, directory, event

HEADER = ",".join(
    ["レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名"]
    + ["数量", "単価", "値引額", "金額", "税率区分", "合計金額"]
)
EVENT = event("pos_vendor_a", registered_at=datetime(2026, 10, 6, tzinfo=UTC))  # after the sales


def csv_a(*rows: str, header: str = HEADER, newline: str = "\r\n") -> bytes:
    return newline.join([header, *rows]).encode("cp932") + newline.encode()


def parse(data: bytes, **kwargs: Any) -> ParseResult:
    result = VendorAPreEtl(**kwargs).parse(EVENT, data, directory())
    if result.tables:
        assert result.tables["raw_pos_transactions"].schema == RAW_POS_TRANSACTIONS
        assert result.tables["raw_pos_lines"].schema == RAW_POS_LINES
    return result


def rows(result: ParseResult, table: str) -> list[dict[str, Any]]:
    return result.tables[table].to_pylist()


def test_sample_parses_to_hand_checked_values() -> None:
    result = parse((DATA / "vendor_a_sales.csv").read_bytes())
    assert result.rejects == []
    sale, ret = rows(result, "raw_pos_transactions")
    assert sale["transaction_id"] == "0001-20261005-000101"
    assert (sale["store_id"], sale["register_id"], sale["kind"]) == ("s-01", "0001", "sale")
    assert sale["business_date"] == date(2026, 10, 5)
    assert sale["ts_local"] == datetime(2026, 10, 5, 9, 12, 44)
    assert sale["ts"].isoformat() == "2026-10-05T00:12:44+00:00"
    assert (sale["total_excl_tax"], sale["total_tax"], sale["total_incl_tax"]) == (
        Decimal("376.00"), Decimal("34.00"), Decimal("410.00"),
    )  # fmt: skip
    assert sale["item_count"] == 2 and sale["vendor"] == "vendor_a"
    assert ret["kind"] == "return" and ret["transaction_id"] == "0001-20261005-000102"
    assert (ret["total_excl_tax"], ret["total_tax"], ret["total_incl_tax"]) == (
        Decimal("-246"), Decimal("-24"), Decimal("-270"),
    )  # fmt: skip
    assert ret["item_count"] == -1
    lines = rows(result, "raw_pos_lines")
    got = [
        (ln["line_no"], ln["tax_rate"], ln["amount_incl_tax"], ln["tax"], ln["amount_excl_tax"])
        for ln in lines
    ]
    assert got == [
        (1, Decimal("0.08"), Decimal(140), Decimal(10), Decimal(130)),
        (2, Decimal("0.10"), Decimal(270), Decimal(24), Decimal(246)),
        (1, Decimal("0.10"), Decimal(-270), Decimal(-24), Decimal(-246)),
    ]
    assert lines[0]["name"] == "緑茶 525ml" and lines[0]["sku"] == "4901777000011"
    assert lines[0]["unit_price_excl_tax"] == Decimal("129.63")  # 140 / 1.08
    assert lines[2]["quantity"] == -1
    assert {ln["source_object_id"] for ln in lines} == {"obj1"}


def test_row_wise_path_gives_the_same_sample_tables() -> None:
    data = (DATA / "vendor_a_sales.csv").read_bytes()
    fast, slow = parse(data), parse(data, _fast=False)
    for name in fast.tables:
        assert fast.tables[name].equals(slow.tables[name]), name


def _random_file(seed: int) -> bytes:
    rnd = random.Random(seed)
    out = []
    for r in range(1, 120):
        kind = rnd.choice(["売上", "売上", "返品", "取消"])
        sign = -1 if kind == "返品" else 1
        lines = []
        for i in range(rnd.randint(1, 5)):
            qty, unit = rnd.randint(1, 4), rnd.randint(1, 3000)
            disc = rnd.choice([0, 0, 10, 55])
            amount = sign * (unit * qty - disc)
            rate = rnd.choice(["標準", "軽減", "非課税"])
            lines.append((i + 1, sign * qty, unit, disc, amount, rate))
        total = sum(ln[4] for ln in lines)
        for ln_no, qty, unit, disc, amount, rate in lines:
            qty_text = str(qty).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
            out.append(
                f"0001,{r:06d},2026/10/05 {8 + r % 12:02d}:{r % 60:02d}:00,{kind},{ln_no},"
                f'4900000000{ln_no:03d},"品名, {r}",{qty_text},"{unit:,}",{disc or ""},'
                f'"{amount:,}",{rate},"{total:,}"'
            )
    return csv_a(*out)


@pytest.mark.parametrize(("rounding", "per_line"), [("floor", False), ("round", False),
                                                    ("ceil", False), ("floor", True)])  # fmt: skip
def test_fast_and_row_wise_paths_agree(rounding: str, per_line: bool) -> None:
    data = _random_file(11)
    fast = parse(data, rounding=rounding, per_line=per_line)
    slow = parse(data, rounding=rounding, per_line=per_line, _fast=False)
    assert fast.rejects == slow.rejects == []
    for name in fast.tables:
        assert fast.tables[name].equals(slow.tables[name]), name
    lines = fast.tables["raw_pos_lines"].to_pylist()
    tx = fast.tables["raw_pos_transactions"].to_pylist()
    assert len(tx) == 119
    for t in tx:  # lines add up exactly to the receipt
        mine = [ln for ln in lines if ln["transaction_id"] == t["transaction_id"]]
        assert sum(ln["amount_excl_tax"] for ln in mine) == t["total_excl_tax"]
        assert sum(ln["tax"] for ln in mine) == t["total_tax"]


def test_largest_remainder_allocation_per_receipt() -> None:
    result = parse(
        csv_a(
            "0001,1,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,301",
            "0001,1,2026/10/05 10:00:00,売上,2,49000002,B,1,100,,100,標準,301",
            "0001,1,2026/10/05 10:00:00,売上,3,49000003,C,1,101,,101,標準,301",
        )
    )
    lines = rows(result, "raw_pos_lines")
    assert [ln["amount_excl_tax"] for ln in lines] == [91, 91, 92]
    assert [ln["tax"] for ln in lines] == [9, 9, 9]
    assert rows(result, "raw_pos_transactions")[0]["total_tax"] == 27


def test_rounding_options() -> None:
    data = csv_a(
        "0001,1,2026/10/05 10:00:00,売上,1,49000001,A,1,105,,105,標準,210",
        "0001,1,2026/10/05 10:00:00,売上,2,49000002,B,1,105,,105,標準,210",
    )
    tax = {
        (r, p): parse(data, rounding=r, per_line=p).tables["raw_pos_transactions"]["total_tax"][0]
        for r in ("floor", "round", "ceil")
        for p in (False, True)
    }
    # receipt: 210·10/110 = 19.09; per line: 105·10/110 = 9.55 each
    assert {k: int(v.as_py()) for k, v in tax.items()} == {
        ("floor", False): 19, ("round", False): 19, ("ceil", False): 20,
        ("floor", True): 18, ("round", True): 20, ("ceil", True): 20,
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown rounding"):
        VendorAPreEtl(rounding="bankers")  # type: ignore[arg-type]


def test_full_width_digits_thousands_separator_names_and_lf() -> None:
    name = "㈱テスト①ｶﾀｶﾅ, 特製"
    data = csv_a(
        f'０００１,０００１０５,2026/10/05 11:00:00,売上,１,４９０１２３４５６７８９４,"{name}",'
        '１,"1,280",,"1,280",標準,"１,２８０"',
        newline="\n",
    )
    result = parse(data)
    assert result.rejects == []
    (tx,) = rows(result, "raw_pos_transactions")
    (ln,) = rows(result, "raw_pos_lines")
    assert tx["transaction_id"] == "0001-20261005-000105" and tx["register_id"] == "0001"
    assert ln["name"] == name  # names are kept as sent
    assert ln["sku"] == "4901234567894"
    assert (ln["amount_incl_tax"], ln["tax"], ln["amount_excl_tax"]) == (1280, 116, 1164)


def test_discount_and_void() -> None:
    result = parse(
        csv_a(
            "0001,7,2026/10/05 12:00:00,取消,1,49000001,A,2,300,50,550,標準,550",
        )
    )
    (tx,) = rows(result, "raw_pos_transactions")
    assert tx["kind"] == "void" and tx["total_incl_tax"] == 550 and tx["total_tax"] == 50
    assert rows(result, "raw_pos_lines")[0]["quantity"] == 2


GOOD = "0001,9,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,100"


def row(
    time: str = "2026/10/05 10:00:00", kind: str = "売上", tail: str = "1,100,,100,標準,100"
) -> str:
    return f"0001,1,{time},{kind},1,49000001,A,{tail}"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (row(kind="交換"), "unknown 取引区分 '交換'"),
        (row(tail="1,100,,100,特別,100"), "unknown 税率区分 '特別'"),
        (row(time="2026/13/05 10:00:00"), "bad 取引日時 '2026/13/05 10:00:00'"),
        (row(time="05-10-2026"), "bad 取引日時"),
        (row(tail="1,100,,100,標準,120"), "lines add up to 100 but 合計金額 is 120"),
        (row(tail="2,100,,150,標準,150"), "金額 150 is not 単価 × 数量 − 値引額 = 200"),
        (row(tail="x,100,,100,標準,100"), "bad 数量 'x'"),
        (row(tail="1,100,-5,105,標準,105"), "negative 値引額"),
    ],
)
def test_bad_receipts_are_rejected_with_the_reason(row: str, reason: str) -> None:
    result = parse(csv_a(row, GOOD))
    (reject,) = result.rejects
    assert reason in reject.reason and reject.table == "raw_pos_transactions"
    assert reject.line == 2 and not reject.replayable
    assert reject.record is not None and reject.record["rows"][0]["レジ番号"] == "0001"  # type: ignore[index]
    # the good receipt of the same file is still loaded
    assert rows(result, "raw_pos_transactions")[0]["transaction_id"] == "0001-20261005-9"


def test_a_receipt_is_rejected_whole() -> None:
    result = parse(
        csv_a(
            "0001,1,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,300",
            "0001,1,2026/10/05 10:00:00,売上,2,49000002,B,1,100,,100,標準,300",
        )
    )
    assert "lines add up to 200 but 合計金額 is 300 (difference -100)" in result.rejects[0].reason
    assert len(result.rejects[0].record["rows"]) == 2  # type: ignore[index]
    assert result.tables["raw_pos_lines"].num_rows == 0


def test_unknown_register_is_replayable() -> None:
    result = parse(
        csv_a(
            "0099,1,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,100",
            "0001,2,2026/03/31 10:00:00,売上,1,49000001,A,1,100,,100,標準,100",  # before master
        )
    )
    reasons = [r.reason for r in result.rejects]
    assert "register '0099' unknown on 2026-10-05" in reasons[0]
    assert "register '0001' unknown on 2026-03-31" in reasons[1]
    assert all(r.replayable for r in result.rejects)


def test_leading_zeros_are_significant() -> None:
    result = parse(csv_a("1,1,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,100"))
    assert "register '1' unknown" in result.rejects[0].reason


def test_bad_objects() -> None:
    bad_byte = HEADER.encode("cp932") + b"\r\n0001,\x85\x40\r\n"
    (reject,) = parse(bad_byte).rejects
    offset = len(HEADER.encode("cp932")) + 7
    assert f"at byte offset {offset}" in reject.reason and "CP932" in reject.reason

    missing = csv_a(GOOD.rsplit(",", 1)[0], header=HEADER.rsplit(",", 1)[0])
    (reject,) = parse(missing).rejects
    assert reject.reason == "missing column(s) in header: 合計金額"

    (reject,) = parse(b"").rejects
    assert "no header" in reject.reason

    short = parse(csv_a("0001,1,2026/10/05", GOOD))
    assert short.rejects[0].reason == "row has 3 fields but the header has 13"
    assert short.tables["raw_pos_transactions"].num_rows == 1


def test_duplicate_line_numbers_rejected() -> None:
    result = parse(
        csv_a(
            "0001,1,2026/10/05 10:00:00,売上,1,49000001,A,1,100,,100,標準,200",
            "0001,1,2026/10/05 10:00:00,売上,1,49000002,B,1,100,,100,標準,200",
        )
    )
    assert "duplicate 行番号" in result.rejects[0].reason


# --- master -------------------------------------------------------------------------------
MASTER_HEADER = "レジ番号,店舗コード,店舗名,適用開始日,適用終了日"


def test_master_sample_applies_assignments() -> None:
    d = directory()
    d.registers.clear()
    result = VendorAMasterPreEtl().parse(
        event("pos_vendor_a_master"), (DATA / "vendor_a_master.csv").read_bytes(), d
    )
    assert result.rejects == [] and result.row_count == 0
    assert d.register_store(TENANT, "vendor_a", "0001", date(2026, 10, 5)) == StoreRef(
        "s-01", TENANT, "T01"
    )
    assert d.register_store(TENANT, "vendor_a", "0001", date(2026, 3, 31)) is None


def test_master_moves_register_and_rejects_bad_rows() -> None:
    d = directory()
    data = "\r\n".join(
        [
            MASTER_HEADER,
            "0001,T01,本町店,2026/04/01,2026/10/04",
            "0001,T02,駅前店,2026/10/05,",
            "0002,T99,謎の店,2026/04/01,",
            "0003,T01,本町店,2026/99/01,",
            "0004,T01,本町店,2026/05/01,2026/04/01",
        ]
    ).encode("cp932")
    result = VendorAMasterPreEtl().parse(event("pos_vendor_a_master"), data, d)
    reasons = [r.reason for r in result.rejects]
    assert "register '0002': unknown store code 'T99'" in reasons[0]
    assert "register '0003': bad 適用開始日" in reasons[1]
    assert "is before 適用開始日" in reasons[2]
    assert [r.line for r in result.rejects] == [4, 5, 6]
    assert d.register_store(TENANT, "vendor_a", "0001", date(2026, 10, 4)).store_id == "s-01"  # type: ignore[union-attr]
    assert d.register_store(TENANT, "vendor_a", "0001", date(2026, 10, 5)).store_id == "s-02"  # type: ignore[union-attr]
    assert d.register_store(TENANT, "vendor_a", "0002", date(2026, 10, 5)) is None


def test_master_other_tenant_store_is_unknown() -> None:
    data = f"{MASTER_HEADER}\r\n0001,T02,x,2026/04/01,\r\n".encode("cp932")
    result = VendorAMasterPreEtl().parse(
        event("pos_vendor_a_master", tenant="other"), data, directory()
    )
    assert "unknown store code 'T02'" in result.rejects[0].reason


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (row(tail="0,100,,0,標準,0"), "line 1: 数量 is 0"),
        (row(tail="-1,100,,-100,標準,-100"), "negative 数量 on a 売上 receipt (a return must"),
        (row(kind="返品"), "positive 数量 on a 返品 receipt"),
    ],
)
def test_quantity_zero_and_return_without_its_kind(row: str, reason: str) -> None:
    for fast in (True, False):  # the fast path falls back and the row-wise path names it
        result = parse(csv_a(row, GOOD), _fast=fast)
        (reject,) = result.rejects
        assert reason in reject.reason, reject.reason
        assert rows(result, "raw_pos_transactions")[0]["transaction_id"] == "0001-20261005-9"


def test_transaction_in_the_future_beyond_the_tolerance_is_rejected() -> None:
    # EVENT arrived 2026-10-06 00:00 UTC = 09:00 in Tokyo; tolerance 1 hour by default.
    late = row(time="2026/10/06 10:00:01")
    ok = row(time="2026/10/06 10:00:00").replace("0001,1,", "0001,2,")
    for fast in (True, False):
        result = parse(csv_a(late, ok, GOOD), _fast=fast)
        (reject,) = result.rejects
        assert "取引日時 2026/10/06 10:00:01 is in the future" in reject.reason
        assert "arrived at 2026/10/06 09:00:00, tolerance 1:00:00" in reject.reason
        assert not reject.replayable
        assert len(rows(result, "raw_pos_transactions")) == 2
    lenient = parse(csv_a(late, GOOD), future_tolerance=timedelta(days=1))
    assert lenient.rejects == []


@pytest.mark.parametrize("fast", [True, False])
def test_absurd_amounts_reject_that_receipt_and_load_the_rest(fast: bool) -> None:
    """10^17 yen (beyond int64 cents) and 2×10^16 yen (beyond decimal(18,2)) are each rejected
    alone with the reason; the good receipt of the same file loads (issue 11)."""
    huge, big = 10**17, 2 * 10**16
    result = parse(
        csv_a(
            f"0001,1,2026/10/05 10:00:00,売上,1,49000001,A,1,{huge},,{huge},非課税,{huge}",
            f"0001,2,2026/10/05 11:00:00,売上,1,49000001,A,1,{big},,{big},非課税,{big}",
            "0001,3,2026/10/05 12:00:00,売上,1,49000001,A,2000000,1,,2000000,非課税,2000000",
            GOOD,
        ),
        _fast=fast,
    )
    reasons = sorted(r.reason for r in result.rejects)
    assert len(reasons) == 3, reasons
    assert "transaction '0001-20261005-1': total_excl_tax ¥100,000,000,000,000,000.00" in reasons[0]
    assert "beyond the ±¥10,000,000,000 one receipt may hold" in reasons[0]
    assert "'0001-20261005-2'" in reasons[1] and "¥20,000,000,000,000,000.00" in reasons[1]
    assert "'0001-20261005-3': item_count 2,000,000 is beyond the ±1,000,000" in reasons[2]
    assert [r["transaction_id"] for r in rows(result, "raw_pos_transactions")] == [
        "0001-20261005-9"
    ]
    assert [r["transaction_id"] for r in rows(result, "raw_pos_lines")] == ["0001-20261005-9"]


def test_master_with_one_overlapping_register_applies_the_others() -> None:
    """A register whose periods overlap is rejected with the reason; the rest apply (issue 11)."""
    d = directory()
    data = "\r\n".join(
        [
            MASTER_HEADER,
            "0001,T01,本町店,2026/04/01,2026/10/05",
            "0001,T02,駅前店,2026/10/05,",  # shares 2026-10-05 with the row above
            "0002,T02,駅前店,2026/04/01,",
            "0003,T01,本町店,2026/04/01,2026/06/30",
            "0003,T02,駅前店,2026/07/01,",
        ]
    ).encode("cp932")
    result = VendorAMasterPreEtl().parse(event("pos_vendor_a_master"), data, d)
    assert [r.line for r in result.rejects] == [2, 3]
    assert all("register '0001': validity periods overlap" in r.reason for r in result.rejects)
    assert (
        "2026-04-01 to 2026-10-05 in store 'T01', and from 2026-10-05" in result.rejects[0].reason
    )
    assert d.register_store(TENANT, "vendor_a", "0002", date(2026, 10, 5)).code == "T02"  # type: ignore[union-attr]
    assert d.register_store(TENANT, "vendor_a", "0003", date(2026, 6, 30)).code == "T01"  # type: ignore[union-attr]
    assert d.register_store(TENANT, "vendor_a", "0003", date(2026, 7, 1)).code == "T02"  # type: ignore[union-attr]


def test_master_overlap_against_the_control_plane_applies_the_others(tmp_path: Any) -> None:
    """The same with the real SQL directory, which refuses an overlapping master whole."""
    from tenpo.control import ControlPlane

    control = ControlPlane.open(f"sqlite:///{tmp_path}/control.db")
    try:
        control.create_tenant(TENANT, "T")
        control.create_store(TENANT, "T01", "本町店")
        control.create_store(TENANT, "T02", "駅前店")
        data = "\r\n".join(
            [
                MASTER_HEADER,
                "0001,T01,本町店,2026/04/01,",
                "0001,T02,駅前店,2026/10/05,",  # open-ended period above: overlap
                "0002,T02,駅前店,2026/04/01,",
            ]
        ).encode("cp932")
        directory_ = control.directory()
        result = VendorAMasterPreEtl().parse(event("pos_vendor_a_master"), data, directory_)
        assert [r.line for r in result.rejects] == [2, 3]
        assert "open-ended in store 'T01'" in result.rejects[0].reason
        assert not any("master not applied" in r.reason for r in result.rejects)
        store = directory_.register_store(TENANT, "vendor_a", "0002", date(2026, 10, 5))
        assert store is not None and store.code == "T02"
        assert directory_.register_store(TENANT, "vendor_a", "0001", date(2026, 10, 5)) is None
    finally:
        control.dispose()


@pytest.mark.parametrize("ending", [b"\x1a", b"\r\n\x1a", b"\x1a\r\n", b"\x1a\x1a"])
@pytest.mark.parametrize("fast", [True, False])
def test_ctrl_z_at_the_end_is_no_record(ending: bytes, fast: bool) -> None:
    """Windows exports may end with the DOS end-of-file mark: no spurious reject (issue 11)."""
    body = csv_a(GOOD).rstrip(b"\r\n") + ending
    result = parse(body, _fast=fast)
    assert result.rejects == []
    assert [r["transaction_id"] for r in rows(result, "raw_pos_transactions")] == [
        "0001-20261005-9"
    ]
    master = f"{MASTER_HEADER}\r\n0001,T01,本町店,2026/04/01,\r\n".encode("cp932") + ending
    d = directory()
    assert VendorAMasterPreEtl().parse(event("pos_vendor_a_master"), master, d).rejects == []
    assert d.register_store(TENANT, "vendor_a", "0001", date(2026, 10, 5)) is not None


def test_ctrl_z_inside_a_field_is_kept() -> None:
    result = parse(csv_a(GOOD.replace(",A,", ",A\x1a,")))
    assert rows(result, "raw_pos_lines")[0]["name"] == "A\x1a"


def _london() -> Any:
    from tenpo.control.directory import RegisterAssignment, StaticDirectory

    d = StaticDirectory(stores=[StoreRef("s-ldn", TENANT, "L01", timezone="Europe/London")])
    d.registers[(TENANT, "vendor_a", "0009")] = [
        RegisterAssignment("0009", "L01", date(2026, 1, 1))
    ]
    return d


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("nights", ["fall-back", "both"])
def test_wall_times_without_offset_on_dst_nights(fast: bool, nights: str) -> None:
    """Vendor A sends local wall time without an offset. In the hour repeated when clocks go
    back it means the first pass (summer time, the earlier instant); in the hour skipped when
    they go forward, which no clock showed, it is read with the offset in force before the
    change (01:30 GMT = 02:30 BST). Both paths (vectorised, row-wise) agree; a file with a
    skipped wall time goes row-wise as a whole."""
    times = ["2026/10/25 00:59:59", "2026/10/25 01:30:00", "2026/10/25 02:00:00"]
    if nights == "both":
        times += ["2026/03/29 01:30:00", "2026/03/29 02:00:00"]
    data = csv_a(*(
        f"0009,{n:06d},{at},売上,1,4901777000011,緑茶,1,140,,140,軽減,140"
        for n, at in enumerate(times, start=1)
    ))  # fmt: skip
    ev = event("pos_vendor_a", registered_at=datetime(2026, 11, 1, tzinfo=UTC))
    result = VendorAPreEtl(_fast=fast).parse(ev, data, _london())
    assert result.rejects == []
    got = {r["transaction_id"][-6:]: r for r in rows(result, "raw_pos_transactions")}
    utc = {k: r["ts"].astimezone(UTC).replace(tzinfo=None) for k, r in got.items()}
    expected = {
        "000001": datetime(2026, 10, 24, 23, 59, 59),  # BST
        "000002": datetime(2026, 10, 25, 0, 30),  # the first 01:30 (BST, +01:00)
        "000003": datetime(2026, 10, 25, 2, 0),  # GMT
        "000004": datetime(2026, 3, 29, 1, 30),  # skipped hour: read at +00:00 (= 02:30 BST)
        "000005": datetime(2026, 3, 29, 1, 0),  # BST
    }
    assert utc == {k: v for k, v in expected.items() if k in got} and len(got) == len(times)
    assert got["000002"]["ts_local"] == datetime(2026, 10, 25, 1, 30)  # as sent
    assert got["000002"]["business_date"] == date(2026, 10, 25)
