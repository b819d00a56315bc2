"""Vendor A: CSV sales in CP932, amounts including tax, and a register→store POS master.

Its receipts name registers, not stores: the POS master (``/v1/pos/vendor_a/master``) maps
each register to a store for a period, so the sales check finds no store codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenpo.core import checks
from tenpo.pos.vendors import CSV_CP932, Checked, Upload, Vendor

if TYPE_CHECKING:
    from tenpo.core.preetl import PreEtl

KEY = "vendor_a"

SALES_COLUMNS: tuple[str, ...] = (
    "レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名",
    "数量", "単価", "値引額", "金額", "税率区分", "合計金額",
)  # fmt: skip
"""Header columns a vendor A sales CSV must have (FORMATS.md)."""

MASTER_COLUMNS: tuple[str, ...] = ("レジ番号", "店舗コード", "店舗名", "適用開始日", "適用終了日")
"""Header of a vendor A POS master (FORMATS.md)."""

MASTER_STORE_COLUMN = "店舗コード"


def check_sales(body: bytes) -> Checked:
    """CP932 (not re-encoded UTF-8), a CSV with the sales header; counts its data rows."""
    checks.refuse_utf8_as_cp932(body, KEY)
    header, count = checks.csv_header_and_count(checks.decode_cp932(body))
    checks.require_header(header, SALES_COLUMNS, "vendor_a sales CSV")
    return Checked({"rows": count})


def check_master(body: bytes) -> Checked:
    """CP932 CSV with a store code column; the distinct store codes it names."""
    checks.refuse_utf8_as_cp932(body, KEY)
    rows = checks.csv_rows(checks.decode_cp932(body))
    if not rows:
        raise checks.MalformedBody("POS master has no header row")
    header = [checks.normalize_code(h).lstrip("\ufeff") for h in rows[0]]
    if MASTER_STORE_COLUMN not in header:
        raise checks.MalformedBody(f"POS master has no {MASTER_STORE_COLUMN} column")
    col = header.index(MASTER_STORE_COLUMN)
    codes = {checks.normalize_code(r[col]) for r in rows[1:] if len(r) > col}
    return Checked({"rows": checks.data_row_count(rows)}, frozenset(codes - {""}))


def _sales_pre_etl() -> PreEtl:
    from tenpo.pos.vendor_a import VendorAPreEtl

    return VendorAPreEtl()


def _master_pre_etl() -> PreEtl:
    from tenpo.pos.vendor_a import VendorAMasterPreEtl

    return VendorAMasterPreEtl()


VENDOR = Vendor(
    key=KEY,
    title="Vendor A: CSV (CP932), amounts incl. tax, registers mapped by a POS master",
    sales=Upload(f"pos_{KEY}", "csv", CSV_CP932, check_sales, _sales_pre_etl),
    master=Upload(f"pos_{KEY}_master", "csv", CSV_CP932, check_master, _master_pre_etl),
    writer="vendor_a_sales",
    resolves_by_master=True,
)
