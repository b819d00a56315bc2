"""Offline conversion: convert_files and the `tenpo pos convert` command."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.pos import convert_files, offline_directory
from tests.data.helpers import DATA


def test_convert_files_with_master_directory() -> None:
    directory, rejects = offline_directory(
        "acme", master=(DATA / "vendor_a_master.csv").read_bytes()
    )
    assert rejects == []
    result = convert_files("vendor_a", [DATA / "vendor_a_sales.csv"], directory, "acme")
    tx = result.tables["raw_pos_transactions"].to_pylist()
    assert [(t["tenant_id"], t["store_id"], t["kind"]) for t in tx] == [
        ("acme", "T01", "sale"), ("acme", "T01", "return"),
    ]  # fmt: skip


def test_cli_convert_vendor_a(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(
        (DATA / "vendor_a_sales.csv").read_bytes()
        + "0099,1,2026/10/05 10:00:00,売上,1,4,x,1,100,,100,標準,100\r\n".encode("cp932")
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["pos", "convert", "--vendor", "vendor_a", "--master", str(DATA / "vendor_a_master.csv"),
         "--tenant", "acme", str(bad), "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert pq.read_table(out / "raw_pos_transactions.parquet").num_rows == 2
    assert pq.read_table(out / "raw_pos_lines.parquet").num_rows == 3
    (q,) = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert q["reason"].startswith("bad.csv: register '0099' unknown on 2026-10-05")
    assert q["replayable"] is True


def test_cli_convert_vendor_b_with_stores_file(tmp_path: Path) -> None:
    stores = tmp_path / "stores.csv"
    stores.write_text("store_id,code,timezone\nstore-1,T01,Asia/Tokyo\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["pos", "convert", "--vendor", "vendor_b", "--stores", str(stores),
         str(DATA / "vendor_b_sales.json"), "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    tx = pq.read_table(out / "raw_pos_transactions.parquet").to_pylist()
    assert tx[0]["store_id"] == "store-1" and tx[0]["tenant_id"] == "local"


def test_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "pos",
            "convert",
            "--vendor",
            "vendor_a",
            str(DATA / "vendor_a_sales.csv"),
            "-o",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 2 and "vendor_a needs --master" in res.output
    res = runner.invoke(
        app, ["pos", "convert", "--vendor", "vendor_z", str(DATA / "vendor_b_sales.json"),
              "-o", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 2 and "unknown POS vendor 'vendor_z'" in res.output
