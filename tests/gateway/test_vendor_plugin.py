"""A vendor is one plugin: a module outside tenpo, named by an entry point, is accepted by the
gateway, loaded by the streamer and converted by ``tenpo pos convert`` with no other edit."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenpo.core.errors import BadInput, ConfigError
from tenpo.gateway import create_app
from tenpo.pos import convert_files, offline_directory
from tenpo.pos.vendors import built_in, markdown_table, registry, routes, with_table
from tenpo.streamer import Streamer, read_table
from tests.gateway.conftest import Gateway

ROOT = Path(__file__).parents[2]

PLUGIN = '''
"""Vendor T: vendor B's JSON, landed under its own key (a test plugin)."""
import pyarrow as pa

from tenpo.pos.vendor_b import VendorBPreEtl
from tenpo.pos.vendors import JSON_UTF8, Upload, Vendor
from tenpo.pos.vendors.vendor_b import check_sales


class VendorTPreEtl(VendorBPreEtl):
    source = "pos_vendor_t"

    def parse(self, event, data, directory):
        result = super().parse(event, data, directory)
        for name, tbl in result.tables.items():
            at = tbl.schema.get_field_index("vendor")
            if at >= 0:
                result.tables[name] = tbl.set_column(
                    at, "vendor", pa.array(["vendor_t"] * tbl.num_rows, pa.string())
                )
        return result


VENDOR = Vendor(
    key="vendor_t",
    title="Vendor T: a plugin from outside tenpo",
    sales=Upload("pos_vendor_t", "json", JSON_UTF8, check_sales, VendorTPreEtl),
)
'''

RECEIPT = {
    "storeCode": "T01", "registerId": "R1", "receiptId": "T-1",
    "transactedAt": "2026-10-05T12:00:00+09:00", "type": "SALE",
    "items": [{"sku": "49", "name": "tea", "qty": 2, "unitPrice": "100", "taxRate": "8"}],
    "subtotal": "200", "tax": "16", "total": "216",
}  # fmt: skip


def install(site: Path, name: str, points: str, module: str = "") -> None:
    """A distribution on ``site`` (as pip would leave it): its module and entry points."""
    if module:
        (site / f"{name}.py").write_text(textwrap.dedent(module), encoding="utf-8")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tenpo.pos_vendors]\n{points}\n")


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``vendor_t`` installed as a plugin for the test (the registry forgets it after)."""
    site = tmp_path / "site"
    site.mkdir()
    install(site, "tenpo_vendor_t", "vendor_t = tenpo_vendor_t", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    built_in.cache_clear()
    yield site
    built_in.cache_clear()


def test_a_plugin_vendor_is_accepted_loaded_and_converted(
    gateway: Gateway, plugin: Path, tmp_path: Path
) -> None:
    assert list(built_in())[-1] == "vendor_t"  # after the package's own vendors
    assert {"vendor_a", "vendor_b", "vendor_t"} <= set(built_in())
    assert routes()["pos_vendor_t"] == ("/v1/pos/vendor_t/sales", "application/json")
    body = json.dumps({"receipts": [RECEIPT]}).encode()
    app = create_app(gateway.settings, control=gateway.control, lake=gateway.lake, bus=gateway.bus)
    with TestClient(app) as client:
        posted = client.post("/v1/pos/vendor_t/sales", content=body, headers=gateway.auth())
        assert posted.status_code == 202, posted.text
        assert posted.json()["key"].startswith("landing/pos_vendor_t/tenant=acme/")
        refused = client.post("/v1/pos/vendor_t/master", content=body, headers=gateway.auth())
        assert refused.status_code == 404
        assert "vendor_a" in refused.json()["detail"]  # the vendors that do send a master
    streamer = Streamer(
        gateway.settings, gateway.lake, gateway.bus, gateway.control.directory(), fetch_timeout=0.05
    )
    try:
        streamer.run_until_idle(0.2)
    finally:
        streamer.close()
    (tx,) = read_table(gateway.lake, "raw_pos_transactions").to_pylist()
    assert (tx["vendor"], tx["transaction_id"], str(tx["total_incl_tax"])) == (
        "vendor_t", "R1-T-1", "216.00",
    )  # fmt: skip

    src = tmp_path / "t.json"
    src.write_bytes(body)
    directory, _ = offline_directory("acme")
    result = convert_files("vendor_t", [src], directory, "acme")
    (converted,) = result.tables["raw_pos_transactions"].to_pylist()
    assert (converted["vendor"], converted["transaction_id"]) == ("vendor_t", "R1-T-1")
    assert [ln["quantity"] for ln in result.tables["raw_pos_lines"].to_pylist()] == [2]


STORELESS = '''
"""Vendor S: vendor B's JSON without store codes; the store comes with the upload."""
import json

from tenpo.pos.vendor_b import VendorBPreEtl
from tenpo.pos.vendors import JSON_UTF8, STORE_META, Upload, Vendor
from tenpo.pos.vendors.vendor_b import check_sales


class VendorSPreEtl(VendorBPreEtl):
    source = "pos_vendor_s"

    def parse(self, event, data, directory):
        doc = json.loads(data)
        for receipt in doc["receipts"]:
            receipt["storeCode"] = event.meta[STORE_META]
        return super().parse(event, json.dumps(doc).encode(), directory)


VENDOR = Vendor(
    key="vendor_s",
    title="Vendor S: files of one store, named with the upload (a test plugin)",
    sales=Upload(
        "pos_vendor_s", "json", JSON_UTF8, check_sales, VendorSPreEtl, store_from_upload=True
    ),
)
'''


def test_a_store_less_plugin_takes_the_store_from_the_upload(
    gateway: Gateway, plugin: Path, tmp_path: Path
) -> None:
    """``store_from_upload``: ``?store=`` is required, checked as the caller's, kept in the
    event's meta and part of the object's identity (one file sent for two stores is two
    objects); ``pos convert --store`` gives the Pre-ETL the same; other vendors refuse it."""
    install(plugin, "tenpo_vendor_s", "vendor_s = tenpo_vendor_s", STORELESS)
    built_in.cache_clear()
    gateway.control.create_store("acme", "T02", "二号店")
    receipt = {k: v for k, v in RECEIPT.items() if k != "storeCode"}
    body = json.dumps({"receipts": [receipt]}).encode()
    app = create_app(gateway.settings, control=gateway.control, lake=gateway.lake, bus=gateway.bus)
    url = "/v1/pos/vendor_s/sales"
    with TestClient(app) as client:
        missing = client.post(url, content=body, headers=gateway.auth())
        assert missing.status_code == 422
        assert "?store=<store code>" in missing.json()["detail"]
        foreign = client.post(f"{url}?store=B01", content=body, headers=gateway.auth())
        assert foreign.status_code == 403  # tenant beta's store
        assert gateway.landed() == []
        first = client.post(f"{url}?store=T01", content=body, headers=gateway.auth())
        again = client.post(f"{url}?store=%EF%BC%B401", content=body, headers=gateway.auth())
        other = client.post(f"{url}?store=T02", content=body, headers=gateway.auth())
        assert [r.status_code for r in (first, again, other)] == [202, 202, 202]
        assert again.json() == {**first.json(), "created": False}  # Ｔ01 is T01 (NFKC)
        assert other.json()["object_id"] != first.json()["object_id"]
        keyed = client.post(
            f"{url}?store=T02", content=body, headers={**gateway.auth(), "Idempotency-Key": "k1"}
        )
        assert keyed.status_code == 202 and keyed.json()["created"]
        refused = client.post(
            "/v1/pos/vendor_b/sales?store=T01", content=body, headers=gateway.auth()
        )
        assert refused.status_code == 422
        assert "drop the store parameter" in refused.json()["detail"]
    streamer = Streamer(
        gateway.settings, gateway.lake, gateway.bus, gateway.control.directory(), fetch_timeout=0.05
    )
    try:
        streamer.run_until_idle(0.2)
    finally:
        streamer.close()
    stores = {s.code: s.store_id for s in gateway.control.list_stores("acme")}
    rows = read_table(gateway.lake, "raw_pos_transactions").to_pylist()
    assert {r["store_id"] for r in rows} == {stores["T01"], stores["T02"]}

    src = tmp_path / "s.json"
    src.write_bytes(body)
    directory, _ = offline_directory("acme")
    with pytest.raises(BadInput, match="name no store"):
        convert_files("vendor_s", [src], directory, "acme")
    with pytest.raises(BadInput, match="drop the store parameter"):
        convert_files("vendor_b", [src], directory, "acme", store="T01")
    result = convert_files("vendor_s", [src], directory, "acme", store="T09")
    (converted,) = result.tables["raw_pos_transactions"].to_pylist()
    assert (converted["store_id"], converted["transaction_id"]) == ("T09", "R1-T-1")
    assert "| `vendor_s` | `POST /v1/pos/vendor_s/sales?store={store code}` |" in markdown_table()


def test_a_plugin_may_not_take_a_key_or_a_source_already_taken(
    plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(plugin, "again", "vendor_b = tenpo_vendor_t")
    built_in.cache_clear()
    with pytest.raises(ConfigError, match="reuses the key 'vendor_b'"):
        built_in()


def test_docs_and_readme_list_the_registry() -> None:
    for doc in (ROOT / "docs" / "vendors.md", ROOT / "README.md"):
        text = doc.read_text(encoding="utf-8")
        assert with_table(text) == text, f"{doc.name} is stale: tenpo pos vendors --write {doc}"
    table = markdown_table()
    for vendor in registry().values():
        assert f"`POST /v1/pos/{vendor.key}/sales" in table


def test_smaregi_transactions_pushed_to_the_gateway_are_loaded(gateway: Gateway) -> None:
    from tests.pos.test_smaregi import transaction

    body = json.dumps([transaction(), transaction(transactionHeadId="9", storeCode="B01")])
    refused = gateway.client.post("/v1/pos/smaregi/sales", content=body, headers=gateway.auth())
    assert refused.status_code == 403  # B01 is tenant beta's store: nothing is kept
    assert gateway.landed() == []
    body = json.dumps([transaction()])
    posted = gateway.client.post("/v1/pos/smaregi/sales", content=body, headers=gateway.auth())
    assert posted.status_code == 202, posted.text
    assert posted.json()["counts"] == {"transactions": 1}
    streamer = Streamer(
        gateway.settings, gateway.lake, gateway.bus, gateway.control.directory(), fetch_timeout=0.05
    )
    try:
        streamer.run_until_idle(0.2)
    finally:
        streamer.close()
    (tx,) = read_table(gateway.lake, "raw_pos_transactions").to_pylist()
    assert (tx["vendor"], tx["transaction_id"], str(tx["total_tax"])) == (
        "smaregi",
        "1001",
        "137.00",
    )
