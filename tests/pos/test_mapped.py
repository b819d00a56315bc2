"""A third vendor defined only by a mapping file (tests/pos/vendors/vendor_c.toml)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tenpo.core.errors import BadInput, ConfigError
from tenpo.core.preetl import ParseResult
from tenpo.pos.convert import convert_files
from tenpo.pos.mapped import MappedVendorPreEtl, VendorMapping, load_mapping, load_mappings
from tenpo.warehouse.schemas import RAW_POS_LINES, RAW_POS_TRANSACTIONS
from tests.data.helpers import directory, event

VENDORS = Path(__file__).parent / "vendors"
MAPPING = load_mapping(VENDORS / "vendor_c.toml")
EVENT = event("pos_vendor_c", registered_at=datetime(2026, 10, 6, tzinfo=UTC))
HEADER = "Store\tTill\tTicket\tDate\tType\tLine\tEAN\tDescription\tQty\tNet Price\tDiscount\t"
HEADER += "Net Amount\tVAT\tTicket Total"


def tsv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def line(
    ticket: str = "1", kind: str = "S", no: int = 1, qty: str = "2", price: str = "120.50",
    disc: str = "", amount: str = "241.00", vat: str = "8%", total: str = "590.00",
    store: str = "T01", when: str = "05/10/2026 10:15",
) -> str:  # fmt: skip
    return "\t".join(
        [store, "C1", ticket, when, kind, str(no), "4900000000011", "Thé vert", qty, price,
         disc, amount, vat, total]
    )  # fmt: skip


GOOD = [line(), line(no=2, qty="1", price="300", amount="300", vat="10%")]


def parse(data: bytes, mapping: VendorMapping = MAPPING) -> ParseResult:
    result = MappedVendorPreEtl(mapping).parse(EVENT, data, directory())
    if result.tables:
        assert result.tables["raw_pos_transactions"].schema == RAW_POS_TRANSACTIONS
        assert result.tables["raw_pos_lines"].schema == RAW_POS_LINES
    return result


def test_mapping_file_defines_the_vendor() -> None:
    assert (MAPPING.name, MAPPING.source, MAPPING.delimiter) == ("vendor_c", "pos_vendor_c", "\t")
    assert MAPPING.tax_mode == "excluded" and MAPPING.kinds["return"] == ["R"]
    assert load_mappings([VENDORS, VENDORS / "missing"]) == {"vendor_c": MAPPING}


def test_hand_computed_sale_and_return() -> None:
    ret = line(ticket="2", kind="R", qty="-1", price="300", amount="-300.00", vat="10%",
               total="-330.00")  # fmt: skip
    result = parse(tsv(*GOOD, ret))
    assert result.rejects == []
    sale, back = result.tables["raw_pos_transactions"].to_pylist()
    # 2 × 120.50 = 241.00 at 8 %: tax floor(19.28) = 19; 300 at 10 %: tax 30; total 590.
    assert sale["transaction_id"] == "T01-C1-1" and sale["store_id"] == "s-01"
    assert (sale["total_excl_tax"], sale["total_tax"], sale["total_incl_tax"]) == (
        Decimal("541.00"), Decimal("49.00"), Decimal("590.00"),
    )  # fmt: skip
    assert sale["ts"].isoformat() == "2026-10-05T01:15:00+00:00"  # 10:15 in Tokyo
    assert sale["kind"] == "sale" and sale["item_count"] == 3 and sale["vendor"] == "vendor_c"
    assert (back["kind"], back["total_incl_tax"], back["total_tax"], back["item_count"]) == (
        "return", Decimal("-330.00"), Decimal("-30.00"), -1,
    )  # fmt: skip
    lines = result.tables["raw_pos_lines"].to_pylist()
    assert [(ln["amount_excl_tax"], ln["tax"], ln["tax_rate"]) for ln in lines] == [
        (Decimal("241.00"), Decimal("19.00"), Decimal("0.08")),
        (Decimal("300.00"), Decimal("30.00"), Decimal("0.10")),
        (Decimal("-300.00"), Decimal("-30.00"), Decimal("0.10")),
    ]
    assert lines[0]["name"] == "Thé vert" and lines[0]["unit_price_excl_tax"] == Decimal("120.50")


@pytest.mark.parametrize(
    ("bad", "reason", "replayable"),
    [
        (line(ticket="9", qty="0", amount="0", total="0"), "Qty is 0", False),
        (line(ticket="9", vat="5%"), "unknown VAT '5%'", False),
        (line(ticket="9", total="600.00"), "lines add up to 260.00 but Ticket Total is 600.00",
         False),
        (line(ticket="9", amount="240.00"), "Net Amount 240.00 is not Net Price × Qty", False),
        (line(ticket="9", qty="two"), "bad Qty 'two'", False),
        (line(ticket="9", when="2026-10-05"), "bad Date '2026-10-05'", False),
        (line(ticket="9", when="06/10/2026 10:01"), "is in the future", False),
        (line(ticket="9", kind="Z"), "unknown Type 'Z'", False),
        (line(ticket="9", qty="-2", amount="-241.00", total="-260.00"),
         "negative Qty on a sale receipt", False),
        (line(ticket="9", store="T77"), "unknown Store 'T77'", True),
        (line(ticket="9", store=""), "missing Store", False),
    ],
)  # fmt: skip
def test_bad_receipts_are_rejected_and_the_rest_loaded(
    bad: str, reason: str, replayable: bool
) -> None:
    result = parse(tsv(*GOOD, bad))
    (reject,) = result.rejects
    assert reject.reason.startswith("receipt '9': ") and reason in reject.reason, reject.reason
    assert reject.replayable is replayable and reject.line == 4
    assert result.tables["raw_pos_transactions"].num_rows == 1


def test_bad_objects() -> None:
    (reject,) = parse(b"\xff\xfe").rejects
    assert "not valid UTF-8" in reject.reason
    (reject,) = parse(b"Store\tTill\n").rejects
    assert "missing column(s) in header: Ticket, Date" in reject.reason


def test_json_vendor_with_master_resolution_and_tax_included(tmp_path: Path) -> None:
    (tmp_path / "vendor_d.toml").write_text(
        """
[vendor]
name = "vendor_d"
format = "json"
encoding = "utf-8"
receipts_key = "sales"
lines_key = "rows"
tax_mode = "included"
store_resolution = "master"
master_vendor = "vendor_a"
timestamp_format = "iso"
returns = "positive"
transaction_id = "{register}-{date}-{receipt}"

[fields]
register_id = "pos"
receipt = "no"
timestamp = "at"
kind = "kind"
sku = "jan"
quantity = "n"
unit_price = "price"
tax_rate = "rate"
total = "sum"

[kinds]
sale = ["sale"]
return = ["refund"]

[tax_rates]
"standard" = 10
"reduced" = 8
""",
        encoding="utf-8",
    )
    mapping = load_mappings([tmp_path])["vendor_d"]
    body: dict[str, Any] = {
        "sales": [
            {"pos": "0001", "no": 5, "at": "2026-10-05T10:00:00", "kind": "sale", "sum": 410,
             "rows": [{"jan": "1", "n": 1, "price": 140, "rate": "reduced"},
                      {"jan": "2", "n": 1, "price": 270, "rate": "standard"}]},
            {"pos": "0001", "no": 6, "at": "2026-10-05T11:00:00+09:00", "kind": "refund",
             "sum": 270, "rows": [{"jan": "2", "n": 1, "price": 270, "rate": "standard"}]},
            {"pos": "0099", "no": 7, "at": "2026-10-05T11:00:00", "kind": "sale", "sum": 270,
             "rows": [{"jan": "2", "n": 1, "price": 270, "rate": "standard"}]},
        ]
    }  # fmt: skip
    result = MappedVendorPreEtl(mapping).parse(EVENT, json.dumps(body).encode(), directory())
    (reject,) = result.rejects
    assert "register '0099' unknown on 2026-10-05" in reject.reason and reject.replayable
    sale, refund = result.tables["raw_pos_transactions"].to_pylist()
    # Same figures as vendor A's sample: 140 at 8 % → tax 10; 270 at 10 % → tax 24.
    assert sale["transaction_id"] == "0001-20261005-5" and sale["store_id"] == "s-01"
    assert (sale["total_excl_tax"], sale["total_tax"]) == (Decimal(376), Decimal(34))
    assert (refund["kind"], refund["total_incl_tax"], refund["total_tax"]) == (
        "return", Decimal(-270), Decimal(-24),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('name = "vendor_a"', "'vendor_a' is a built-in vendor"),
        ('name = "Vendor C"', "must be lower_snake_case"),
        ('encoding = "klingon"', "unknown encoding 'klingon'"),
        ('tax_mode = "sometimes"', "tax_mode: Input should be 'included' or 'excluded'"),
        ('transaction_id = "{till}"', "placeholders must include {receipt}"),
        ('colour = "red"', "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_mapping_files_name_the_problem(tmp_path: Path, change: str, problem: str) -> None:
    text = (VENDORS / "vendor_c.toml").read_text(encoding="utf-8")
    key = change.split(" = ")[0]
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} = ")]
    lines.insert(lines.index("[vendor]") + 1, change)
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml") as info:
        load_mapping(path)
    assert problem in str(info.value)


def test_same_vendor_twice_is_a_config_error(tmp_path: Path) -> None:
    for name in ("one.toml", "two.toml"):
        (tmp_path / name).write_text((VENDORS / "vendor_c.toml").read_text(encoding="utf-8"))
    with pytest.raises(ConfigError, match="defined twice"):
        load_mappings([tmp_path])


def test_offline_convert_with_a_mapping_and_a_correction(tmp_path: Path) -> None:
    first, fix = tmp_path / "a.tsv", tmp_path / "b.tsv"
    first.write_bytes(tsv(*GOOD))
    fix.write_bytes(tsv(line(qty="1", amount="120.50", total="129.50")))  # receipt 1 corrected
    result = convert_files(
        "vendor_c", [first, fix], directory(), "t1", mappings={"vendor_c": MAPPING}
    )
    assert result.rejects == []
    (tx,) = result.tables["raw_pos_transactions"].to_pylist()
    assert tx["total_incl_tax"] == Decimal("129.50")  # 120.50 + floor(9.64)
    assert result.tables["raw_pos_lines"].num_rows == 1
    with pytest.raises(BadInput, match=r"expected one of .*vendor_a, vendor_b, vendor_c"):
        convert_files("vendor_z", [first], directory(), "t1", mappings={"vendor_c": MAPPING})


def test_cli_convert_finds_the_mapping_in_settings(
    settings: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tenpo.cli import app
    from tenpo.core.settings import get_settings

    monkeypatch.setenv("TENPO_VENDOR_MAPPINGS_DIR", str(VENDORS))
    get_settings.cache_clear()
    src = tmp_path / "sales.tsv"
    src.write_bytes(tsv(*GOOD, line(ticket="9", vat="5%")))
    out = CliRunner().invoke(
        app, ["pos", "convert", "--vendor", "vendor_c", "--tenant", "t9", str(src), "-o",
              str(tmp_path / "out")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "raw_pos_transactions: 1 rows" in out.output and "quarantine: 1 rejects" in out.output
    import pyarrow.parquet as pq

    tx = pq.read_table(tmp_path / "out" / "raw_pos_transactions.parquet").to_pylist()
    assert [(t["tenant_id"], t["store_id"], t["total_incl_tax"]) for t in tx] == [
        ("t9", "T01", Decimal("590.00"))
    ]
    quarantine = (tmp_path / "out" / "quarantine.jsonl").read_text(encoding="utf-8")
    assert "unknown VAT '5%'" in json.loads(quarantine.splitlines()[0])["reason"]
