"""Airレジ 会計明細 CSV: columns by header name, 内税/外税, 8 %/10 %/非課税, 取消, 返品, bad rows.

The golden fixtures (``tests/pos/data/airregi/``) are CP932 exports with the columns in a
shuffled order and columns tenpo does not read (人数, 支払方法, 顧客名, 伝票メモ); every figure
is worked by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tenpo.core.checks import MalformedBody, UnsupportedEncoding
from tenpo.core.preetl import ParseResult
from tenpo.pos import convert_files, offline_directory
from tenpo.pos.vendors import STORE_META, built_in
from tenpo.pos.vendors.airregi import VENDOR, AirregiPreEtl, check_sales, find_columns
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS
from tests.data.helpers import TENANT, directory, event

DATA = Path(__file__).parent / "data" / "airregi"
GOLDEN = DATA / "kaikei_meisai.csv"
MINIMAL = DATA / "kaikei_meisai_minimal.csv"
ARRIVED = datetime(2026, 10, 6, tzinfo=UTC)


def parse(data: bytes, store: str | None = "T01", **options: Any) -> ParseResult:
    ev = event("pos_airregi", registered_at=ARRIVED)
    ev = ev.model_copy(update={"meta": {STORE_META: store} if store else {}})
    result = AirregiPreEtl(**options).parse(ev, data, directory())
    if result.tables:
        assert result.tables["raw_pos_transactions"].schema == RAW_POS_TRANSACTIONS
        assert result.tables["raw_pos_lines"].schema == RAW_POS_LINES
    return result


def csv_bytes(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def money(*values: int) -> tuple[Decimal, ...]:
    return tuple(Decimal(v).quantize(Decimal("0.01")) for v in values)


def by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["transaction_id"]: r for r in table.to_pylist()}


def test_the_registry_has_airregi_as_a_store_less_cp932_upload() -> None:
    assert built_in()["airregi"] is VENDOR
    assert VENDOR.sales.source == "pos_airregi"
    assert VENDOR.sales.content_type == "text/csv; charset=cp932"
    assert VENDOR.sales.store_from_upload


def test_golden_export_receipts() -> None:
    result = parse(GOLDEN.read_bytes())
    tx = by_id(result.tables["raw_pos_transactions"])
    assert sorted(tx) == ["000101", "000102", "000103", "000104", "000107", "000108"]
    figures = {
        tid: (r["kind"], r["total_excl_tax"], r["total_tax"], r["total_incl_tax"], r["item_count"])
        for tid, r in tx.items()
    }  # fmt: skip
    assert figures == {
        # 内税: 8 % 440 → tax floor(440 × 8/108) = 32; 10 % 250 → floor(250 × 10/110) = 22
        "000101": ("sale", *money(636, 54, 690), 4),
        # 外税: 500 + floor(500 × 0.08) = 40; 1,280 + floor(128.0) = 128
        "000102": ("sale", *money(1780, 168, 1948), 2),
        # 取消: kept, counts nowhere (kind void)
        "000103": ("void", *money(910, 90, 1000), 1),
        # 返品 with positive figures: −140 incl. tax at 8 % → tax −floor(140 × 8/108) = −10
        "000104": ("return", *money(-130, -10, -140), -1),
        # 内税 220 at 10 % (tax 20) and 外税 2 × 100 at 8 % (+16)
        "000107": ("sale", *money(400, 36, 436), 3),
        # 非課税
        "000108": ("sale", *money(420, 0, 420), 5),
    }
    first = tx["000101"]
    assert first["store_id"] == "s-01" and first["vendor"] == "airregi"
    assert first["register_id"] == "-"  # no レジ column in this export
    assert first["ts"] == datetime(2026, 10, 5, 1, 15, tzinfo=UTC)  # 10:15 JST
    assert str(first["business_date"]) == "2026-10-05"

    lines = [
        (r["transaction_id"], r["line_no"], r["sku"], r["name"], r["quantity"], r["tax_rate"],
         r["amount_excl_tax"], r["tax"], r["amount_incl_tax"])
        for r in result.tables["raw_pos_lines"].to_pylist()
        if r["transaction_id"] in ("000101", "000107")
    ]  # fmt: skip
    assert lines == [
        # 8 % tax 32 allocated 300:140 → 21.8/10.2 → 22 and 10 (largest remainder)
        ("000101", 1, "4901000000011", "おにぎり 鮭", 2, Decimal("0.08"), *money(278, 22, 300)),
        ("000101", 2, "4901000000028", "お茶 500ml", 1, Decimal("0.08"), *money(130, 10, 140)),
        ("000101", 3, "4901000000035", "ビール 350ml", 1, Decimal("0.10"), *money(228, 22, 250)),
        ("000107", 1, "4901000000073", "サンドイッチ", 1, Decimal("0.10"), *money(200, 20, 220)),
        ("000107", 2, "4901000000080", "牛乳", 2, Decimal("0.08"), *money(200, 16, 216)),
    ]


def test_golden_export_bad_rows_are_named() -> None:
    reasons = sorted(r.reason for r in parse(GOLDEN.read_bytes()).rejects)
    assert reasons == [
        "line 14: 伝票番号 is empty",
        "receipt '000105': line 10: 数量 'abc' is not an integer",
        "receipt '000106': line 11: 小計 800 is not 単価 × 数量 = 810",
    ]
    bad = next(r for r in parse(GOLDEN.read_bytes()).rejects if "000105" in r.reason)
    assert bad.line == 9 and not bad.replayable
    assert isinstance(bad.record, dict) and bad.record["lines"] == [9, 10]
    assert bad.record["rows"][1]["数量"] == "abc"  # the rows as received, by header


def test_other_column_names_and_no_tax_mode_column_mean_the_same() -> None:
    """会計ID, 会計日 + 会計時刻, メニュー名, 個数, 税率; no 内税/外税 column: 内税."""
    result = parse(MINIMAL.read_bytes())
    assert result.rejects == []
    (tx,) = result.tables["raw_pos_transactions"].to_pylist()
    assert (tx["transaction_id"], tx["register_id"], tx["kind"]) == ("A-1", "レジ1", "sale")
    assert (tx["total_excl_tax"], tx["total_tax"], tx["total_incl_tax"]) == money(636, 54, 690)
    assert tx["ts"] == datetime(2026, 10, 5, 1, 15, tzinfo=UTC)
    skus = [r["sku"] for r in result.tables["raw_pos_lines"].to_pylist()]
    assert skus == ["おにぎり 鮭", "お茶 500ml", "ビール 350ml"]  # no 商品コード: the name


HEADER = "伝票番号,会計日時,商品名,数量,単価,税率"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["1,2026/10/05 10:00,a,1,100,5%"], "tax rate '5%': unsupported"),
        (["1,2026/10/05 10:00,a,0,100,10%"], "数量 is 0"),
        (["1,2026/13/05 10:00,a,1,100,10%"], "is not a valid date and time"),
        (["1,yesterday,a,1,100,10%"], "is not a date and time"),
        (["1,2026/10/05 10:00,a,1,1.5,10%"], "単価 '1.5' is not a whole number of yen"),
        (["1,2026/10/05 10:00,,1,100,10%"], "商品名 is empty"),
        (["1,2026/10/05 10:00,a,1,100,10%", "1,2026/10/05 10:01,b,1,100,10%"],
         "its rows disagree on 会計日時"),
        (["1,2026/10/07 10:00,a,1,100,10%"], "is in the future"),
    ],
)  # fmt: skip
def test_bad_receipts_are_rejected_naming_the_column(lines: list[str], reason: str) -> None:
    result = parse(csv_bytes(HEADER, *lines))
    assert result.tables["raw_pos_transactions"].num_rows == 0
    (reject,) = result.rejects
    assert reason in reject.reason


def test_tax_and_total_columns_are_checked() -> None:
    header = "伝票番号,会計日時,商品名,数量,単価,税率,消費税,合計金額"
    # 1,000 incl. at 10 %: tax floor(90.9) = 90; a 消費税 of 91 is kept (within 1 yen)...
    kept = parse(csv_bytes(header, "1,2026/10/05 10:00,a,1,1000,10%,91,1000"))
    (tx,) = kept.tables["raw_pos_transactions"].to_pylist()
    assert (tx["total_tax"], tx["total_excl_tax"]) == money(91, 909)
    # ...93 is not, nor a 合計金額 that is not the lines
    far = parse(csv_bytes(header, "1,2026/10/05 10:00,a,1,1000,10%,93,1000"))
    assert "消費税 93 differs from the expected 90" in far.rejects[0].reason
    wrong = parse(csv_bytes(header, "1,2026/10/05 10:00,a,1,1000,10%,90,1100"))
    assert "合計金額 1100 is not the lines 1000" in wrong.rejects[0].reason


def test_rounding_is_an_option() -> None:
    body = csv_bytes(HEADER + ",内税/外税", "1,2026/10/05 10:00,a,1,1005,10%,外税")
    for rounding, tax in (("floor", 100), ("round", 101), ("ceil", 101)):
        (tx,) = parse(body, rounding=rounding).tables["raw_pos_transactions"].to_pylist()
        assert tx["total_tax"] == Decimal(tax)  # 1,005 × 0.1 = 100.5


def test_the_tax_mode_can_come_with_the_rate() -> None:
    body = csv_bytes(HEADER, "1,2026/10/05 10:00,a,1,1000,外税10%")
    (tx,) = parse(body).tables["raw_pos_transactions"].to_pylist()
    assert (tx["total_excl_tax"], tx["total_tax"]) == money(1000, 100)


def test_missing_columns_are_named_whole_file() -> None:
    body = csv_bytes("伝票番号,商品名,金額", "1,a,100")
    with pytest.raises(MalformedBody) as caught:
        check_sales(body)
    message = str(caught.value)
    for name in ("数量", "単価", "税率", "会計日時 (or 会計日 and 会計時刻)"):
        assert name in message
    assert "商品名" not in message and "伝票番号" not in message
    (reject,) = parse(body).rejects
    assert reject.reason.startswith("unreadable Airレジ 会計明細 CSV: ") and "単価" in reject.reason


def test_store_comes_from_the_upload() -> None:
    body = MINIMAL.read_bytes()
    (none,) = parse(body, store=None).rejects
    assert "?store=<store code>" in none.reason and not none.replayable
    (unknown,) = parse(body, store="T99").rejects
    assert "'T99' is not a store of tenant 't1'" in unknown.reason and unknown.replayable
    (tx,) = parse(body, store="T02").tables["raw_pos_transactions"].to_pylist()
    assert tx["store_id"] == "s-02"


def test_cheap_check() -> None:
    assert check_sales(GOLDEN.read_bytes()).counts == {"rows": 14}
    assert check_sales(GOLDEN.read_bytes()).store_codes == frozenset()
    with pytest.raises(UnsupportedEncoding):
        check_sales(GOLDEN.read_bytes().decode("cp932").encode("utf-8"))
    with pytest.raises(MalformedBody, match="no header row"):
        check_sales(b"\r\n")
    assert find_columns(["会計ID", "伝票番号"] + HEADER.split(",")[1:])["receipt"] == 0


def test_convert_files_and_the_cli(tmp_path: Path) -> None:
    directory_, _ = offline_directory(TENANT)
    result = convert_files("airregi", [GOLDEN], directory_, TENANT, store="T01")
    assert result.tables["raw_pos_transactions"].num_rows == 6
    assert {r["store_id"] for r in result.tables["raw_pos_transactions"].to_pylist()} == {"T01"}
    assert len(result.rejects) == 3

    from typer.testing import CliRunner

    from tenpo.cli import app

    out = tmp_path / "out"
    args = ["pos", "convert", "--vendor", "airregi", str(GOLDEN), "-o", str(out)]
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code != 0 and "--store" in missing.output
    res = CliRunner().invoke(app, [*args, "--store", "T01"])
    assert res.exit_code == 0, res.output
    import pyarrow.parquet as pq

    converted = pq.read_table(out / "raw_pos_transactions.parquet")
    assert sorted(converted["transaction_id"].to_pylist()) == sorted(
        result.tables["raw_pos_transactions"]["transaction_id"].to_pylist()
    )


def test_local_times_in_the_stores_zone_over_a_fall_back_night() -> None:
    """A London store: 01:30 on 2026-10-25 happens twice; the export's time is read as the
    first pass (BST, UTC+1), as vendor A's offset-less times are."""
    from tenpo.control.directory import StaticDirectory, StoreRef

    london = StaticDirectory(stores=[StoreRef("s-l", TENANT, "L01", timezone="Europe/London")])
    ev = event("pos_airregi", registered_at=datetime(2026, 10, 26, tzinfo=UTC))
    ev = ev.model_copy(update={"meta": {STORE_META: "L01"}})
    body = csv_bytes(HEADER, "1,2026/10/25 01:30,a,1,100,10%", "2,2026/10/25 03:00,b,1,100,10%")
    result = AirregiPreEtl().parse(ev, body, london)
    assert result.rejects == []
    times = {
        r["transaction_id"]: r["ts"] for r in result.tables["raw_pos_transactions"].to_pylist()
    }
    assert times == {
        "1": datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 01:30 BST
        "2": datetime(2026, 10, 25, 3, 0, tzinfo=UTC),  # 03:00 GMT
    }


def test_a_corrected_export_replaces_its_receipts(tmp_path: Path) -> None:
    """The same 伝票番号 in a later export (e.g. a quantity corrected) is kept as in the later
    file by ``pos convert`` (the streamer keeps the latest version likewise)."""
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    first.write_bytes(csv_bytes(HEADER, "1,2026/10/05 10:00,a,1,100,10%"))
    second.write_bytes(csv_bytes(HEADER, "1,2026/10/05 10:00,a,3,100,10%"))
    directory_, _ = offline_directory(TENANT)
    result = convert_files("airregi", [first, second], directory_, TENANT, store="T01")
    (tx,) = result.tables["raw_pos_transactions"].to_pylist()
    assert (tx["item_count"], tx["total_incl_tax"]) == (3, Decimal("300.00"))
    assert result.tables["raw_pos_lines"].num_rows == 1
